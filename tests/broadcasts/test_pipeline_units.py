"""Unit tests of the pipeline's pure parts: the Pacer's schedule (on a fake clock, so no timing
assertions), window and batch sizes, and `classify` (a provider error → the row's next state)."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

import pytest

from broadcasts.pipeline import (
    BATCH_MAX,
    MAX_ATTEMPTS,
    WINDOW_MAX,
    ClaimedRow,
    Pacer,
    batch_size_for,
    classify,
    window_size_for,
)
from broadcasts.pipeline.batch import ANSWERS_TIMED_MIN, ON_THE_WIRE_MAX, ON_THE_WIRE_MIN, AnswerTimes, _Batch
from messengers.adapters.base import UNREACHABLE_KINDS, ErrorKind, ProviderError
from messengers.models import Connection
from messengers.ratelimit import PACING_FACTOR

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class FakeClock:
    """Time that moves only when the Pacer sleeps or the test says so."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def send_times(pacer: Pacer, clock: FakeClock, count: int) -> list[float]:
    """When each of `count` requests in a row would go out."""

    async def take() -> list[float]:
        times = []
        for _ in range(count):
            await pacer.wait()
            times.append(clock.now)
        return times

    return asyncio.run(take())


def paced(start: float, interval: float, clock: FakeClock) -> Pacer:
    return Pacer(start, interval, clock=clock, sleep=clock.sleep)


# --------------------------------------------------------------------------------------------
# Pacer
# --------------------------------------------------------------------------------------------
def test_slots_are_one_interval_apart_from_the_reserved_start() -> None:
    clock = FakeClock()
    pacer = paced(start=2.0, interval=0.25, clock=clock)
    assert send_times(pacer, clock, 5) == pytest.approx([2.0, 2.25, 2.5, 2.75, 3.0])


def test_concurrent_waiters_take_the_slots_in_order() -> None:
    clock = FakeClock()
    pacer = paced(start=0.0, interval=0.5, clock=clock)
    times: list[float] = []

    async def one() -> None:
        await pacer.wait()
        times.append(clock.now)

    async def many() -> None:
        await asyncio.gather(*(one() for _ in range(4)))

    asyncio.run(many())
    assert times == pytest.approx([0.0, 0.5, 1.0, 1.5])


def test_a_little_lateness_is_made_up_but_a_stall_moves_the_schedule_back() -> None:
    clock = FakeClock()
    pacer = paced(start=0.0, interval=1.0, clock=clock)
    assert send_times(pacer, clock, 1) == [0.0]
    clock.now = 2.0  # one slot late: within the slack of one and a half slots, caught up
    assert send_times(pacer, clock, 3) == pytest.approx([2.0, 2.0, 3.0])
    clock.now = 100.0  # a long stall: no burst of the missed slots, at most the slack
    assert send_times(pacer, clock, 4) == pytest.approx([100.0, 100.0, 100.5, 101.5])


def test_back_off_pushes_the_next_slots_and_never_pulls_them_forward() -> None:
    clock = FakeClock()
    pacer = paced(start=0.0, interval=0.1, clock=clock)
    assert send_times(pacer, clock, 2) == pytest.approx([0.0, 0.1])
    pacer.back_off(3.0)  # a 429 with retry_after 3 s at time 0.1
    assert send_times(pacer, clock, 3) == pytest.approx([3.1, 3.2, 3.3])
    pacer.back_off(0.0)  # nothing to wait for: the schedule stays
    assert send_times(pacer, clock, 1) == pytest.approx([3.4])


def test_catching_up_never_puts_more_requests_into_a_second_than_it_has_slots() -> None:
    clock = FakeClock()
    pacer = paced(start=0.0, interval=0.25, clock=clock)  # four slots a second
    assert send_times(pacer, clock, 1) == [0.0]
    clock.now = 0.6  # late for the slot at 0.25, within the slack: the one at 0.5 follows at once
    assert send_times(pacer, clock, 3) == pytest.approx([0.6, 0.6, 0.75])
    # 1.0 is still the fourth request in [0.6, 1.6); the slot at 1.25 would be the fifth: it waits
    assert send_times(pacer, clock, 2) == pytest.approx([1.0, 1.6])
    times = send_times(pacer, clock, 40)
    assert all(sum(1 for u in times if t <= u < t + 1.0) <= 4 for t in times)


def test_the_one_second_cap_never_slows_an_on_time_schedule() -> None:
    for rate in (78.0, 29.25, 2.925, 975.0):  # 80, 30, 3 and 1,000/s paced at 97.5 %
        clock = FakeClock()
        pacer = paced(start=0.0, interval=1.0 / rate, clock=clock)
        times = send_times(pacer, clock, int(rate * 3))
        assert times[-1] == pytest.approx((len(times) - 1) / rate)


def test_a_back_off_says_how_far_the_shared_clock_must_move_once_per_burst() -> None:
    clock = FakeClock()
    pacer = paced(start=0.0, interval=0.1, clock=clock)
    pacer.left = 3
    pacer.add(0.3, 5)
    assert send_times(pacer, clock, 1) == [0.0]
    # a 429 at 0.0: nothing before 1.0, and the 7 slots still held go out after it
    assert pacer.back_off(1.0) == pytest.approx(1.0 + 7 * 0.1)
    assert pacer.back_off(0.5) is None  # another 429 of the same burst: already that late
    assert send_times(pacer, clock, 3) == pytest.approx([1.0, 1.1, 1.2])


def test_a_back_off_during_a_sleep_is_honoured_by_the_sleeper() -> None:
    clock = FakeClock()
    pacer = paced(start=1.0, interval=0.1, clock=clock)

    async def go() -> float:
        async def hit() -> None:  # a 429 arrives while the next request sleeps towards 1.0
            await asyncio.sleep(0)
            pacer.back_off(5.0)

        async def slow_sleep(seconds: float) -> None:
            await asyncio.sleep(0.01)
            clock.now += seconds

        pacer.sleep = slow_sleep
        _, _ = await asyncio.gather(pacer.wait(), hit())
        return clock.now

    assert asyncio.run(go()) == pytest.approx(5.0)


def test_the_pacer_runs_on_the_event_loop_clock_by_default() -> None:
    async def go() -> float:
        pacer = Pacer(asyncio.get_running_loop().time(), 0.001)
        await pacer.wait()
        await pacer.wait()
        return pacer.next - asyncio.get_running_loop().time()

    assert asyncio.run(go()) <= 0.002


# --------------------------------------------------------------------------------------------
# Window and batch sizes
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rate", "window"),
    [(0.5, 1), (1, 1), (4, 1), (20, 4), (80, 19), (400, 97), (1000, WINDOW_MAX), (50_000, WINDOW_MAX)],
)
def test_a_window_is_about_a_quarter_second_of_sending(rate: float, window: int) -> None:
    assert window_size_for(rate) == window


@pytest.mark.parametrize(("rate", "batch"), [(0.01, 1), (1, 30), (10, 300), (80, BATCH_MAX), (5000, BATCH_MAX)])
def test_a_batch_is_about_thirty_seconds_of_sending(rate: float, batch: int) -> None:
    assert batch_size_for(rate) == batch


# --------------------------------------------------------------------------------------------
# classify
# --------------------------------------------------------------------------------------------
def row(attempts: int = 0, contact_id: int | None = 7) -> ClaimedRow:
    return ClaimedRow(
        delivery_id=42,
        subscriber_id=3,
        contact_id=contact_id,
        connection_id=1,
        language="de",
        use_template=False,
        attempts=attempts,
        address="+491701234567",
    )


def seconds_until(moment: datetime | None) -> float:
    assert moment is not None
    return (moment - NOW).total_seconds()


@pytest.mark.parametrize("kind", [ErrorKind.TEMPORARY, ErrorKind.RATE_LIMITED, ErrorKind.PAIR_RATE])
def test_retryable_errors_queue_the_row_again_with_a_growing_back_off(kind: ErrorKind) -> None:
    first = classify(row(attempts=0), ProviderError(kind, "try later", code="x1"), NOW)
    assert (first.status, first.error_kind, first.error_code) == ("queued", kind.value, "x1")
    assert 1.5 <= seconds_until(first.next_attempt_at) <= 2.5  # 2 s ± 25 % jitter
    third = classify(row(attempts=2), ProviderError(kind, "try later"), NOW)
    assert 6.0 <= seconds_until(third.next_attempt_at) <= 10.0  # 8 s ± 25 %
    late = classify(row(attempts=MAX_ATTEMPTS - 2), ProviderError(kind, "try later"), NOW)
    assert seconds_until(late.next_attempt_at) <= 300 * 1.25  # capped


def test_retry_after_is_a_floor_and_is_kept_for_the_shared_limiter() -> None:
    error = ProviderError(ErrorKind.RATE_LIMITED, "slow down", http_status=429, retry_after=120.0)
    outcome = classify(row(), error, NOW)
    assert outcome.status == "queued"
    assert seconds_until(outcome.next_attempt_at) == 120.0
    assert outcome.retry_after == 120.0
    assert outcome.error_code == "429"  # no provider code: the HTTP status


def test_when_the_attempts_are_used_up_a_retryable_error_fails_the_row() -> None:
    outcome = classify(row(attempts=MAX_ATTEMPTS - 1), ProviderError(ErrorKind.TEMPORARY, "503 from upstream"), NOW)
    assert outcome.status == "failed"
    assert outcome.next_attempt_at is None
    assert outcome.error_detail == f"gave up after {MAX_ATTEMPTS} attempts: 503 from upstream"


@pytest.mark.parametrize("kind", [ErrorKind.BAD_CREDENTIALS, ErrorKind.ACCOUNT_PROBLEM])
def test_connection_errors_keep_the_row_for_a_minute_however_often_it_was_tried(kind: ErrorKind) -> None:
    for attempts in (0, MAX_ATTEMPTS - 1, MAX_ATTEMPTS + 3):
        outcome = classify(row(attempts=attempts), ProviderError(kind, "token expired", code="190"), NOW)
        assert outcome.status == "queued"
        assert seconds_until(outcome.next_attempt_at) == 60.0
        assert outcome.unreachable_contact is None


@pytest.mark.parametrize("kind", sorted(UNREACHABLE_KINDS))
def test_unreachable_kinds_fail_the_row_and_mark_the_contact(kind: ErrorKind) -> None:
    outcome = classify(row(contact_id=7), ProviderError(kind, "not on WhatsApp", code="131026"), NOW)
    assert (outcome.status, outcome.unreachable_contact, outcome.next_attempt_at) == ("failed", 7, None)
    assert classify(row(contact_id=None), ProviderError(kind, "gone"), NOW).unreachable_contact is None


@pytest.mark.parametrize("kind", [ErrorKind.BAD_REQUEST, ErrorKind.TEMPLATE_PROBLEM, ErrorKind.WINDOW_CLOSED])
def test_other_permanent_errors_fail_the_row_and_leave_the_contact_alone(kind: ErrorKind) -> None:
    outcome = classify(row(), ProviderError(kind, "x" * 400, code="c" * 50), NOW)
    assert (outcome.status, outcome.unreachable_contact, outcome.next_attempt_at) == ("failed", None, None)
    assert len(outcome.error_detail) == 300


def test_every_error_kind_is_either_retried_or_final() -> None:
    for kind in ErrorKind:
        outcome = classify(row(), ProviderError(kind, "x"), NOW)
        assert outcome.status in ("queued", "failed")
        assert (outcome.next_attempt_at is None) == (outcome.status == "failed")
        assert outcome.next_attempt_at is None or outcome.next_attempt_at > NOW - timedelta(seconds=1)


def test_requests_on_the_wire_follow_the_providers_fastest_answer() -> None:
    """Enough requests on the wire for the rate at the provider's answer time, twice over: the
    fastest recent answer counts (a mean grows with every request queued, and the limit with it)."""
    times = AnswerTimes()
    assert times.on_the_wire(50_000) == ON_THE_WIRE_MAX  # nothing timed yet: the windows' whole 600
    for _ in range(ANSWERS_TIMED_MIN - 1):
        times.add(0.001)
    assert times.on_the_wire(50_000) == ON_THE_WIRE_MAX  # too few answers to go by
    times.add(0.040)  # a slow answer does not count against the fast ones
    assert times.on_the_wire(50_000) == math.ceil(2 * 50_000 * PACING_FACTOR * 0.001)  # loopback: 98
    assert times.on_the_wire(80) == ON_THE_WIRE_MIN  # 80/s needs 1: never fewer than 32

    far = AnswerTimes()
    for _ in range(ANSWERS_TIMED_MIN):
        far.add(0.25)
    assert far.on_the_wire(1_000) == math.ceil(2 * 1_000 * PACING_FACTOR * 0.25)  # Meta's top tier: 488
    assert far.on_the_wire(80) == math.ceil(2 * 80 * PACING_FACTOR * 0.25)  # 39
    for _ in range(ANSWERS_TIMED_MIN):
        far.add(2.0)
    assert far.on_the_wire(1_000) == 488  # a slow spell: the fastest recent answer still counts
    for _ in range(ANSWERS_TIMED_MIN):
        far.add(0.0001)
    assert far.on_the_wire(10) == ON_THE_WIRE_MIN

    recent = AnswerTimes(sample=ANSWERS_TIMED_MIN)
    for seconds in (0.001, 0.3):  # the provider slowed down: old fast answers roll out
        for _ in range(ANSWERS_TIMED_MIN):
            recent.add(seconds)
    assert recent.on_the_wire(1_000) == math.ceil(2 * 1_000 * PACING_FACTOR * 0.3)  # 585
    assert recent.on_the_wire(2_000) == ON_THE_WIRE_MAX  # 1,170 … at most the windows' 600


def test_a_batch_puts_more_requests_on_the_wire_when_the_provider_slows_down() -> None:
    async def main() -> None:
        times = AnswerTimes()
        for _ in range(ANSWERS_TIMED_MIN):
            times.add(0.002)  # loopback-fast
        batch = _Batch(
            broadcast_id=1,
            connection=Connection(provider="whatsapp", rate_limit_per_second=1_000),
            adapter=None,  # type: ignore[arg-type]
            composer=None,  # type: ignore[arg-type]
            dbt=None,  # type: ignore[arg-type]
            worker="w",
            session=None,
            answer_times=times,
        )
        assert batch.wire_limit == ON_THE_WIRE_MIN  # 2 × 975/s × 2 ms = 4 → 32
        for _ in range(ON_THE_WIRE_MIN):
            await batch.on_the_wire.acquire()
        assert batch.on_the_wire.locked()
        for _ in range(times.recent.maxlen or 0):
            times.add(0.2)  # the provider now answers in 0.2 s: the fast answers rolled out
        batch.widen()  # what the next window does before it starts
        assert batch.wire_limit == math.ceil(2 * 1_000 * PACING_FACTOR * 0.2)  # 390
        for _ in range(batch.wire_limit - ON_THE_WIRE_MIN):
            await asyncio.wait_for(batch.on_the_wire.acquire(), timeout=1)
        assert batch.on_the_wire.locked()
        times.add(0.0001)
        batch.widen()  # never narrower within a batch
        assert batch.wire_limit == 390

    asyncio.run(main())
