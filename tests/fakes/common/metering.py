"""What a fake counts and records: `SlidingWindowLimiter` (at most N per key in any window),
`Stats` (send pacing, outcomes, webhook figures) and `RequestLog` (the capped request record)."""

from __future__ import annotations

import bisect
import time
from array import array
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

from aiohttp import web


class SlidingWindowLimiter:
    """At most `limit` acquisitions per key in any `window`-second interval (half-open [t, t+window))."""

    def __init__(self, limit: float | None, window: float = 1.0) -> None:
        self.limit = limit
        self.window = window
        self._times: dict[str, deque[float]] = {}

    def try_acquire(self, key: str, now: float) -> float | None:
        """None when acquired; otherwise the number of seconds until a slot frees up."""
        if not self.limit:
            return None
        times = self._times.get(key)
        if times is None:
            times = self._times[key] = deque()
        horizon = now - self.window
        while times and times[0] <= horizon:
            times.popleft()
        if len(times) >= self.limit:
            return max(times[0] + self.window - now, 0.001)
        times.append(now)
        return None

    def clear(self) -> None:
        self._times.clear()


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def max_in_window(times: Iterable[float] | array, window: float = 1.0) -> int:
    """Most timestamps (sorted ascending) in any half-open interval [t, t+window)."""
    values = times if isinstance(times, array) else array("d", times)
    best = 0
    for i, t in enumerate(values):
        j = bisect.bisect_left(values, t + window, lo=i)
        best = max(best, j - i)
    return best


class Stats:
    """Counters a benchmark reads back: send pacing, outcomes and webhook delivery figures."""

    TIME_CAP = 5_000_000  # timestamps kept for the sliding-window maximum (40 MB of doubles)
    LATENCY_CAP = 1_000_000

    def __init__(self) -> None:
        self.wall_offset = time.time() - time.monotonic()
        self.accepted_times = array("d")
        self.attempt_times = array("d")
        self.attempts = 0
        self.per_second: Counter[int] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.http_status: Counter[int] = Counter()
        self.webhook_latencies: deque[float] = deque(maxlen=self.LATENCY_CAP)
        self.webhook_posts = 0
        self.webhook_events = 0
        self.webhook_ok = 0
        self.webhook_non_2xx = 0
        self.webhook_errors = 0
        self.webhook_retries = 0
        self.webhook_gave_up = 0
        self.webhook_dropped = 0  # events with no webhook target configured
        self.webhook_statuses: Counter[int] = Counter()
        self.webhook_failures: deque[dict[str, Any]] = deque(maxlen=100)

    def attempt(self, now: float) -> None:
        self.attempts += 1
        if len(self.attempt_times) < self.TIME_CAP:
            self.attempt_times.append(now)

    def accepted(self, now: float) -> None:
        if len(self.accepted_times) < self.TIME_CAP:
            self.accepted_times.append(now)
        self.per_second[int(now + self.wall_offset)] += 1
        self.outcomes["accepted"] += 1

    def outcome(self, name: str, http_status: int) -> None:
        self.outcomes[name] += 1
        self.http_status[http_status] += 1

    def webhook_result(self, latency: float, status: int | None, events: int, detail: str = "") -> None:
        self.webhook_posts += 1
        self.webhook_latencies.append(latency)
        if status is None:
            self.webhook_errors += 1
            self.webhook_failures.append({"status": None, "error": detail, "at": time.time()})
            return
        self.webhook_statuses[status] += 1
        if 200 <= status < 300:
            self.webhook_ok += 1
            self.webhook_events += events
        else:
            self.webhook_non_2xx += 1
            self.webhook_failures.append({"status": status, "body": detail, "at": time.time()})

    def summary(self, pending: int = 0) -> dict[str, Any]:
        accepted = self.accepted_times
        count = len(accepted)
        span = accepted[-1] - accepted[0] if count > 1 else 0.0
        latencies = sorted(self.webhook_latencies)
        return {
            "sends": {
                "attempts": self.attempts,
                "accepted": self.outcomes["accepted"],
                "max_in_any_second": max_in_window(accepted),
                "attempts_max_in_any_second": max_in_window(self.attempt_times),
                "max_per_calendar_second": max(self.per_second.values(), default=0),
                "mean_per_s": round((count - 1) / span, 3) if span > 0 else float(count),
                "first_at": accepted[0] + self.wall_offset if count else None,
                "last_at": accepted[-1] + self.wall_offset if count else None,
                "per_second": sorted(self.per_second.items()),
            },
            "outcomes": dict(self.outcomes),
            "http_status": {str(k): v for k, v in sorted(self.http_status.items())},
            "webhooks": {
                "posts": self.webhook_posts,
                "events": self.webhook_events,
                "ok": self.webhook_ok,
                "non_2xx": self.webhook_non_2xx,
                "errors": self.webhook_errors,
                "retries": self.webhook_retries,
                "gave_up": self.webhook_gave_up,
                "dropped_no_target": self.webhook_dropped,
                "pending": pending,
                "statuses": {str(k): v for k, v in sorted(self.webhook_statuses.items())},
                "latency_ms": {
                    "count": len(latencies),
                    "p50": round(_percentile(latencies, 0.50) * 1000, 3),
                    "p90": round(_percentile(latencies, 0.90) * 1000, 3),
                    "p99": round(_percentile(latencies, 0.99) * 1000, 3),
                    "max": round(latencies[-1] * 1000, 3) if latencies else 0.0,
                },
                "recent_failures": list(self.webhook_failures),
            },
        }


class RequestLog:
    """The last `cap` API requests a fake received (control requests are not recorded)."""

    def __init__(self, cap: int) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=max(cap, 0) or None)
        self.enabled = cap > 0
        self.seq = 0

    def add(
        self,
        request: web.Request,
        body: Any,
        *,
        kind: str,
        recipient: str | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        self.seq += 1
        entry = {
            "seq": self.seq,
            "at": time.time(),
            "monotonic": time.monotonic() if now is None else now,
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": dict(request.headers),
            "body": body,
            "kind": kind,
            "recipient": recipient,
            "status": None,
        }
        if self.enabled:
            self.entries.append(entry)
        return entry

    def select(
        self,
        *,
        kind: str | None = None,
        method: str | None = None,
        path_contains: str | None = None,
        recipient: str | None = None,
        since: int = 0,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        out = [
            e
            for e in self.entries
            if e["seq"] > since
            and (kind is None or e["kind"] == kind)
            and (method is None or e["method"] == method.upper())
            and (path_contains is None or path_contains in e["path"])
            and (recipient is None or e["recipient"] == recipient)
        ]
        return out[-limit:] if limit else out

    def clear(self) -> None:
        self.entries.clear()
