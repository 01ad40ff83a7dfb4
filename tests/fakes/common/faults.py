"""Fault injection: `Fault` (one injected failure) and `FaultInjector` (the deterministic queue,
per-recipient rules and seeded probabilistic rates). Each fake turns a fault into its own error
envelope."""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

FAULT_KINDS = frozenset({"5xx", "timeout", "reset", "rate_limit", "error", "async_fail"})


@dataclass
class Fault:
    """One injected failure.

    kind: "5xx" (server error envelope), "timeout" (hold the request past the client's timeout),
    "reset" (abort the TCP connection), "rate_limit" (the provider's 429-style error with
    retry_after), "error" (the provider error `code`, e.g. 131026, 403 for Telegram, 21211),
    "async_fail" (accept, then report the message failed with `code` in a status webhook).
    """

    kind: str
    code: int | None = None
    http_status: int | None = None
    retry_after: float | None = None
    message: str = ""

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if self.kind in ("error", "async_fail") and self.code is None:
            raise ValueError(f"fault kind {self.kind!r} needs a code")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known - {"count", "rate"}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(
            kind=str(data["kind"]),
            code=None if data.get("code") is None else int(data["code"]),
            http_status=None if data.get("http_status") is None else int(data["http_status"]),
            retry_after=None if data.get("retry_after") is None else float(data["retry_after"]),
            message=str(data.get("message", "")),
        )


class FaultInjector:
    """Decides, per request, whether to fail it and how.

    Order: the deterministic queue ("fail the next N requests with X"), then the per-recipient
    rules, then the probabilistic rates (one seedable RNG draw per request).
    """

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self._queue: deque[list[Any]] = deque()  # [fault, remaining]
        self._recipients: dict[str, list[Any]] = {}  # recipient -> [fault, remaining or None]
        self._random: list[tuple[float, Fault]] = []
        self._total_rate = 0.0
        self.injected: Counter[str] = Counter()

    def reseed(self, seed: int | None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)

    def fail_next(self, count: int, fault: Fault) -> None:
        if count > 0:
            self._queue.append([fault, count])

    def set_recipient(self, recipient: str, fault: Fault | None, count: int | None = None) -> None:
        if fault is None:
            self._recipients.pop(recipient, None)
        else:
            self._recipients[recipient] = [fault, count]

    def set_rate(self, rate: float, fault: Fault) -> None:
        """Fail a fraction `rate` of requests with `fault` (replaces an earlier rate of the same kind+code)."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("a fault rate is a probability between 0 and 1")
        self._random = [(r, f) for r, f in self._random if (f.kind, f.code) != (fault.kind, fault.code)]
        if rate > 0:
            self._random.append((rate, fault))
        total = sum(r for r, _ in self._random)
        if total > 1.0 + 1e-9:
            raise ValueError("fault rates add up to more than 1")
        self._total_rate = total

    def clear(self) -> None:
        self._queue.clear()
        self._recipients.clear()
        self._random = []
        self._total_rate = 0.0

    def pick(self, recipient: str | None) -> Fault | None:
        if self._queue:
            entry = self._queue[0]
            entry[1] -= 1
            if entry[1] <= 0:
                self._queue.popleft()
            return self._count(entry[0])
        if self._recipients and recipient is not None:
            fault = self.pick_recipient(recipient)
            if fault is not None:
                return fault
        if self._total_rate > 0.0:
            draw = self.rng.random()
            for rate, fault in self._random:
                if draw < rate:
                    return self._count(fault)
                draw -= rate
        return None

    def pick_recipient(self, recipient: str) -> Fault | None:
        """Only the per-recipient rule (the SMTP sink applies it at RCPT time)."""
        rule = self._recipients.get(recipient)
        if rule is None:
            return None
        if rule[1] is not None:
            rule[1] -= 1
            if rule[1] <= 0:
                del self._recipients[recipient]
        return self._count(rule[0])

    def _count(self, fault: Fault) -> Fault:
        self.injected[fault.kind if fault.code is None else f"{fault.kind}:{fault.code}"] += 1
        return fault

    def snapshot(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "queue": [{**_fault_dict(f), "count": n} for f, n in self._queue],
            "recipients": {r: {**_fault_dict(f), "count": n} for r, (f, n) in self._recipients.items()},
            "rates": [{**_fault_dict(f), "rate": r} for r, f in self._random],
            "injected": dict(self.injected),
        }


def _fault_dict(fault: Fault) -> dict[str, Any]:
    return {k: v for k, v in asdict(fault).items() if v not in (None, "")}
