"""EHR calls per delivered Observation, per sandbox profile (``python -m bench.delivery_calls``).

eCW's 250 calls/minute per practice include token calls, and without conditional create each
Observation needs a search as well as a create, so calls per Observation sets the throughput a
practice can get. For each profile this sends readings through the webhook, waits until every
row is delivered, and prints the calls the EHR saw, by kind, per stored Observation (from the
sandbox's counters), with the exactly-once verdict.

Options: ``--readings`` (default 100), ``--fault-rate`` (default 0.0), ``--profiles`` (default
``ecw,generic``).
"""

from __future__ import annotations

import argparse
import json
import sys

from vitalbridge.demo.drive import send_readings, verify, wait_settled
from vitalbridge.demo.environment import demo_environment
from vitalbridge.sandbox.profile import Profile


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery_calls")
    parser.add_argument("--readings", type=int, default=100)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--profiles", default="ecw,generic")
    args = parser.parse_args(argv)
    for name in args.profiles.split(","):
        profile = Profile(name.strip())
        with demo_environment(
            fault_rate=args.fault_rate, profile=profile, settings_overrides={"ecw_rate_limit": 100_000.0}
        ) as env:
            sent = send_readings(env, args.readings)
            counts = wait_settled(env, 600.0, lambda _counts: None)
            summary = verify(env, sent, counts)
        print(
            f"profile {profile.value}: {summary.calls_per_observation} EHR calls per Observation "
            f"({summary.observations_found} stored, calls {json.dumps(summary.ehr_calls, sort_keys=True)}, "
            f"duplicates {summary.duplicates}, ok {summary.ok})"
        )
        if not summary.ok:
            sys.exit(1)


if __name__ == "__main__":
    main()
