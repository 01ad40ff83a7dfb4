"""The shared fake machinery: faults, sliding windows, statistics, pusher retries, command lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.fakes.common import (
    Fault,
    FaultInjector,
    RecordingServer,
    SlidingWindowLimiter,
    Stats,
    max_in_window,
)
from tests.fakes.whatsapp import FakeWhatsApp

ROOT = Path(__file__).resolve().parents[2]


def test_fault_queue_then_recipient_rule_then_rates() -> None:
    faults = FaultInjector(seed=1)
    faults.fail_next(2, Fault("5xx"))
    faults.set_recipient("alice", Fault("error", code=131026), count=1)
    assert faults.pick("alice").kind == "5xx"  # type: ignore[union-attr]
    assert faults.pick("bob").kind == "5xx"  # type: ignore[union-attr]
    rule = faults.pick("alice")
    assert rule is not None and rule.code == 131026
    assert faults.pick("alice") is None  # the rule was for one send only
    assert faults.snapshot()["injected"] == {"5xx": 2, "error:131026": 1}


def test_fault_rates_are_reproducible_with_a_seed() -> None:
    def run(seed: int) -> list[str | None]:
        faults = FaultInjector(seed=seed)
        faults.set_rate(0.3, Fault("5xx"))
        faults.set_rate(0.2, Fault("rate_limit"))
        return [f.kind if (f := faults.pick(None)) else None for _ in range(200)]

    first, second = run(42), run(42)
    assert first == second
    assert 30 < first.count("5xx") < 90
    assert 15 < first.count("rate_limit") < 70


def test_fault_validation() -> None:
    with pytest.raises(ValueError):
        Fault("explode")
    with pytest.raises(ValueError):
        Fault("error")  # needs a code
    faults = FaultInjector()
    faults.set_rate(0.7, Fault("5xx"))
    with pytest.raises(ValueError):
        faults.set_rate(0.5, Fault("timeout"))


def test_sliding_window_limiter() -> None:
    limiter = SlidingWindowLimiter(3)
    assert [limiter.try_acquire("k", t) for t in (0.0, 0.1, 0.2)] == [None, None, None]
    wait = limiter.try_acquire("k", 0.5)
    assert wait == pytest.approx(0.5)
    assert limiter.try_acquire("other", 0.5) is None  # keys are independent
    assert limiter.try_acquire("k", 1.0) is None  # the first slot left the window
    assert SlidingWindowLimiter(None).try_acquire("k", 0.0) is None


def test_max_in_window_and_stats_summary() -> None:
    assert max_in_window([]) == 0
    assert max_in_window([0.0, 0.5, 0.99, 1.0, 1.2, 1.3]) == 5
    stats = Stats()
    for i in range(81):
        stats.attempt(i / 80)
        stats.accepted(i / 80)
    summary = stats.summary()
    assert summary["sends"]["accepted"] == 81
    assert summary["sends"]["max_in_any_second"] == 80
    assert summary["sends"]["mean_per_s"] == pytest.approx(80.0)
    stats.webhook_result(0.002, 200, 3)
    stats.webhook_result(0.004, 500, 1, "boom")
    hooks = stats.summary()["webhooks"]
    assert hooks["events"] == 3 and hooks["non_2xx"] == 1 and hooks["latency_ms"]["max"] == pytest.approx(4.0)


def test_pusher_retries_non_2xx_and_records_latency(sink: RecordingServer) -> None:
    sink.fail_next(2, 503)
    with FakeWhatsApp(webhook_url=sink.url + "/hook", speed=0, webhook_retry_delay=0.01) as fake:
        fake.inbound(sender="491701111111", text="hallo")
        assert fake.wait_idle(10)
        hooks = fake.stats_summary()["webhooks"]
    received = sink.received()
    assert len(received) == 3
    assert received[0].body == received[2].body  # retried with the very same signed bytes
    assert hooks["non_2xx"] == 2 and hooks["ok"] == 1 and hooks["retries"] == 2
    assert hooks["latency_ms"]["count"] == 3 and hooks["latency_ms"]["p99"] > 0


def test_pusher_gives_up_after_max_attempts(sink: RecordingServer) -> None:
    sink.fail_next(10, 500)
    with FakeWhatsApp(webhook_url=sink.url, speed=0, webhook_retry_delay=0.01, webhook_max_attempts=3) as fake:
        fake.inbound(text="x")
        assert fake.wait_idle(10)
        assert fake.stats_summary()["webhooks"]["gave_up"] == 1
    assert len(sink.received()) == 3


def test_control_api_rejects_bad_input() -> None:
    with FakeWhatsApp() as fake:
        assert requests.post(fake.url + "/_fake/config", json={"no_such_setting": 1}, timeout=5).status_code == 400
        assert requests.post(fake.url + "/_fake/faults", json={"rates": {"explode": 0.1}}, timeout=5).status_code == 400
        assert requests.post(fake.url + "/_fake/config", data=b"[1]", timeout=5).status_code == 400
        assert requests.get(fake.url + "/_fake/health", timeout=5).json() == {"ok": True, "name": "whatsapp"}


def test_reset_restores_construction_settings() -> None:
    with FakeWhatsApp(rate=50) as fake:
        fake.configure(rate=5, speed=3)
        fake.fail_next(3, "5xx")
        fake.reset()
        config = requests.get(fake.url + "/_fake/config", timeout=5).json()
        assert config["settings"]["rate"] == 50 and config["settings"]["speed"] == 1.0
        assert fake.set_faults()["queue"] == []


@pytest.mark.parametrize(
    ("module", "args", "banner"),
    [
        ("tests.fakes.whatsapp", ["--app-secret", "s", "--access-token", "t", "--rate", "80"], "whatsapp fake"),
        ("tests.fakes.telegram", ["--bot-token", "123456:ABCDEFGHIJKLMNOP", "--rate", "30"], "telegram fake"),
        ("tests.fakes.twilio", ["--auth-token", "tok", "--rate", "10"], "twilio fake"),
        ("tests.fakes.smtp", ["--http-port", "0"], "smtp fake"),
    ],
)
def test_fakes_run_standalone(module: str, args: list[str], banner: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert banner in line, line + (process.stderr.read() if process.poll() is not None and process.stderr else "")
        control = line.split("control API: ")[1].strip().rstrip(")")
        health = requests.get(control + "health", timeout=10).json()
        assert health["ok"] is True
        stats = requests.get(control + "stats", timeout=10).json()
        assert json.dumps(stats)
    finally:
        process.terminate()
        process.wait(20)
    assert process.returncode == 0
