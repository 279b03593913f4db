"""How much of the EHR's rate limit the hub uses, without a 429 (``python -m bench.rate_limit``).

The sandbox and the practice get the same per-minute limit; readings are posted far faster than
the limit allows, and after ``--seconds`` the sandbox's own counters (FHIR and token requests for
the practice) are compared with what its bucket allows over the window: burst + rate x time.
Prints achieved/allowed (1.0 = every allowed call used) and the 429 count (should be 0).

Options: ``--per-minute`` (default 300), ``--seconds`` (default 30), ``--readings`` (default 600).
The sandbox runs the ``generic`` profile, whose continuous bucket this arithmetic describes;
``bench.delivery_calls`` measures the ``ecw`` profile.
"""

from __future__ import annotations

import argparse
import threading
import time

from vitalbridge.demo.drive import send_readings
from vitalbridge.demo.environment import demo_environment
from vitalbridge.sandbox.profile import Profile


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rate_limit")
    parser.add_argument("--per-minute", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--readings", type=int, default=600)
    args = parser.parse_args(argv)
    with demo_environment(
        sandbox_rate_per_minute=args.per_minute,
        practice_rate_per_minute=args.per_minute,
        settings_overrides={"delivery_concurrency": 8, "ecw_rate_limit": 100_000.0},
        profile=Profile.generic,
    ) as env:
        assert env.sandbox_http is not None
        started = time.monotonic()
        sender = threading.Thread(target=send_readings, args=(env, args.readings), daemon=True)
        sender.start()
        time.sleep(args.seconds)
        stats = env.sandbox_http.get("/_sandbox/stats").json()
        elapsed = time.monotonic() - started
        code = env.practice_code
        achieved = stats["fhir_requests_by_practice"].get(code, 0) + stats["token_requests_by_practice"].get(code, 0)
        allowed = args.per_minute + args.per_minute / 60.0 * elapsed
        print(
            f"rate limit {args.per_minute}/min over {elapsed:.1f} s: {achieved} calls of {allowed:.0f} allowed, "
            f"ratio {achieved / allowed:.3f}, 429s {stats['rate_limited']}"
        )
        sender.join(120)


if __name__ == "__main__":
    main()
