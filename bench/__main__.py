"""`make bench`: run the benchmark scenarios and write bench/report.md and bench/report.json.

python -m bench                    # everything (about 15 minutes)
python -m bench --only P1,P2       # some scenarios
python -m bench --smoke            # tiny sizes: checks correctness, not speed (CI)
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

from bench import harness

SCENARIOS = {
    "P1": "bench.p1_throughput",
    "P1_4WORKERS": "bench.p1_4workers",
    "P2": "bench.p2_pacing",
    "P3": "bench.p3_tenants",
    "P3_BUSY": "bench.p3_busy",
    "P4": "bench.p4_webhooks",
    "P5": "bench.p5_schedule",
    "P5_BUSY": "bench.p5_busy",
    "P6": "bench.p6_analytics",
    "P8": "bench.p8_inbox",
    "P9": "bench.p9_admin_pages",
    "R1": "bench.r1_worker_kill",
    "R2": "bench.r2_faults",
    "R3": "bench.r3_db_restart",
    "IMPORT": "bench.import_subscribers",
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--only", default="", help="comma-separated scenario ids, e.g. P1,P4")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI: correctness only")
    args = parser.parse_args(argv)
    wanted = [s.strip().upper() for s in args.only.split(",") if s.strip()] or list(SCENARIOS)
    unknown = [s for s in wanted if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {sorted(SCENARIOS)}")
    harness.setup_django()
    from django.core.management import call_command

    call_command("platform_setup", verbosity=0)
    failed = []
    for key in wanted:
        module_name = SCENARIOS[key]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                harness.log(f"{key}: no scenario module {module_name}")
                continue
            raise
        harness.log(f"{key}: starting")
        started = time.monotonic()
        try:
            result = module.run(smoke=args.smoke)
            # a scenario says whether its guarantee held as `ok`, or (P1) as `complete`
            held = result.get("ok", result.get("complete")) if isinstance(result, dict) else None
            if args.smoke and held is False:
                raise AssertionError(f"{key} smoke run broke its guarantee: {result}")
        except Exception:
            traceback.print_exc()
            failed.append(key)
            harness.log(f"{key}: FAILED after {time.monotonic() - started:.0f}s")
        else:
            harness.log(f"{key}: done in {time.monotonic() - started:.0f}s")
    harness.log(f"report: {harness.REPORT_MD}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
