"""``vitalbridge demo``: readings through the webhook to the (sandbox) EHR, verified (SPEC §7; docs/demo.md)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer


def demo(
    readings: Annotated[int, typer.Option(min=1, max=100_000, help="How many readings to send.")] = 40,
    fault_rate: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="Share of EHR requests failing transiently (5xx, timeouts, ...).")
    ] = 0.0,
    sandbox: Annotated[str | None, typer.Option(help="A running sandbox EHR's URL (default: start one).")] = None,
    practice: Annotated[str, typer.Option(help="Practice code in the sandbox.")] = "JAFJCD",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every reading to settle.")] = 600.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
    profile: Annotated[
        str, typer.Option(help="Profile of the sandbox the demo starts: ecw or generic (docs/sandbox.md).")
    ] = "ecw",
    progress_every: Annotated[
        float, typer.Option(min=0.0, help="Seconds between progress lines when stderr is not a terminal.")
    ] = 5.0,
    hub_log_level: Annotated[str, typer.Option(help="Log level of the demo's own in-process hub.")] = "ERROR",
) -> None:
    """Send N mixed readings, wait until each is delivered or dead, and check the EHR holds every
    Observation exactly once. Exits 1 on any loss or duplicate."""
    from vitalbridge.cli.progress import JobProgress
    from vitalbridge.demo.drive import Tally, send_readings, verify, wait_settled
    from vitalbridge.demo.environment import demo_environment
    from vitalbridge.sandbox.profile import Profile

    if profile not in {p.value for p in Profile}:
        raise typer.BadParameter("use ecw or generic", param_hint="--profile")

    # The in-process hub's request logs and its warnings about the demo's own alerts (no clinician
    # to notify) would bury the progress.
    quiet = {"ecw_log_level": hub_log_level}
    with (
        demo_environment(
            sandbox_url=sandbox,
            practice_code=practice,
            fault_rate=fault_rate,
            settings_overrides=quiet,
            profile=Profile(profile),
        ) as env,
        JobProgress("demo", interval_s=progress_every) as progress,
    ):
        print(f"demo: sending {readings} readings to {env.hub_url}", file=sys.stderr, flush=True)
        progress.phase("sending", readings)
        sent = send_readings(env, readings, progress.update)

        started: list[bool] = []

        def delivering(now: Tally) -> None:
            if not started:
                progress.phase("delivering", now.total)
                started.append(True)
            progress.update(now.settled, total=now.total, faults=now.faults, retries=now.retries)

        counts = wait_settled(env, timeout, delivering)
        summary = verify(env, sent, counts)
    if as_json:
        typer.echo(json.dumps(summary.as_dict()))
    else:
        for key, value in summary.as_dict().items():
            typer.echo(f"{key:<22} {value}")
    if not summary.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
