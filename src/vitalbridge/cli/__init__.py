"""The ``vitalbridge`` command (Typer). Each command group lives in its own module.

Failures print one line (``cli.failures``); ``--debug`` shows the traceback instead. One-shot
commands log at ``VB_CLI_LOG_LEVEL`` (warnings by default) so their output is not buried; the
servers (``serve``, ``up`` once its servers start, ``worker``, ``hl7 listen``) re-configure
logging at ``ECW_LOG_LEVEL`` when they start.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from vitalbridge.cli import (
    audit_commands,
    billing_commands,
    delivery_commands,
    demo_commands,
    devices_commands,
    fhir_commands,
    gateway_commands,
    hl7_commands,
    hub_commands,
    notify_commands,
    patients_commands,
    sandbox_commands,
    smart_commands,
    tenancy_commands,
    triage_commands,
)

app = typer.Typer(
    name="vitalbridge",
    help="Remote patient monitoring integration hub: device readings to the EHR as FHIR R4.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _start(
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback when a command fails.")] = False,
) -> None:
    """Every command logs through the hub's redacting JSON logging (SPEC §9)."""
    from vitalbridge.cli.failures import STATE
    from vitalbridge.observability.logging import configure_logging
    from vitalbridge.settings import load_settings

    STATE.debug = debug
    settings = load_settings()
    # Servers re-configure at ECW_LOG_LEVEL once they start (their logs are their output).
    configure_logging(settings, level=settings.cli_log_level)


hub_commands.register(app)
tenancy_commands.register(app)
sandbox_commands.register(app)
hl7_commands.register(app)
audit_commands.register(app)
gateway_commands.register(app)
fhir_commands.register(app)
triage_commands.register(app)
smart_commands.register(app)
delivery_commands.register(app)
demo_commands.register(app)
patients_commands.register(app)
notify_commands.register(app)
billing_commands.register(app)
devices_commands.register(app)


def main() -> None:
    from vitalbridge.cli.failures import run

    sys.exit(run(app))
