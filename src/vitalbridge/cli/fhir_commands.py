"""``vitalbridge fhir validate FILE…``: offline FHIR R4 validation (SPEC §7, §10)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vitalbridge.fhir.validation import element_path, validate_any

fhir = typer.Typer(help="FHIR R4 tools.", no_args_is_help=True)


@fhir.command("validate")
def validate(
    files: Annotated[
        list[Path], typer.Argument(help="JSON files (a resource or a Bundle); NDJSON is read line by line.")
    ],
    hub_rules: Annotated[
        bool,
        typer.Option(
            "--hub-rules",
            help="Also apply the hub's own delivery rules to Observations (measurement identifier, "
            "Patient/{id} subject, a measured valueQuantity, only systolic/diastolic BP components).",
        ),
    ] = False,
) -> None:
    """Validate FHIR R4 resources offline. Exit 1 if any fails.

    Any resource type: structure and datatypes (fhir.resources R4B models, which match R4 4.0.1),
    JSON types of primitives ("95" is not a decimal) and required-binding codes such as status.
    Observations in the vital-signs category or claiming the vital-signs profile are also checked
    against the R4 vital-signs profile (dataAbsentReason and hasMember are allowed there).
    """
    failed = 0
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            typer.echo(f"{path}: cannot read ({exc.strerror})", err=True)
            failed += 1
            continue
        docs: list[tuple[str, object]]
        if path.suffix == ".ndjson":
            docs = [(f"{path}:{n}", line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        else:
            docs = [(str(path), text)]
        for where, raw in docs:
            try:
                resource = json.loads(str(raw))
            except json.JSONDecodeError as exc:
                typer.echo(f"{where}: not JSON (line {exc.lineno}, column {exc.colno})")
                failed += 1
                continue
            if not isinstance(resource, dict):
                typer.echo(f"{where}: not a FHIR resource (expected a JSON object)")
                failed += 1
                continue
            errors = validate_any(resource, hub_rules=hub_rules)
            if errors:
                failed += 1
                for e in errors:
                    typer.echo(f"{where}: {element_path(e.loc)}: {e.msg}")
            else:
                typer.echo(f"{where}: ok ({resource.get('resourceType')})")
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(fhir, name="fhir")
