"""The ``vitalbridge`` command (Typer). Each command group lives in its own module."""

from __future__ import annotations

import typer

from vitalbridge.cli import hub_commands, sandbox_commands, smart_commands, tenancy_commands

app = typer.Typer(
    name="vitalbridge",
    help="Remote patient monitoring integration hub: device readings to the EHR as FHIR R4.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

hub_commands.register(app)
tenancy_commands.register(app)
sandbox_commands.register(app)
smart_commands.register(app)


def main() -> None:
    app()
