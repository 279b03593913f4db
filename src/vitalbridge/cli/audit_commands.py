"""``vitalbridge audit verify|export|prune``: the audit trail for operators and reviewers (SPEC §9)."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated

import typer

from vitalbridge.audit.export import ExportFormat, export
from vitalbridge.audit.retention import prune
from vitalbridge.audit.verify import verify_chain
from vitalbridge.cli.common import hub_session, operator

audit = typer.Typer(help="Audit trail: verify the hash chain, export for review, prune past retention.")


def parse_when(value: str, option: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 timestamp (UTC unless it says otherwise)."""
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(0), tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("use YYYY-MM-DD or an ISO 8601 timestamp", param_hint=option) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@audit.command("verify")
def verify(
    anchor: Annotated[
        str | None, typer.Option(help="SEQ:HASH of a head you kept earlier; it must still be in the chain.")
    ] = None,
) -> None:
    """Walk the chain in seq order; exit 1 and name the first broken link if there is one."""
    kept: tuple[int, str] | None = None
    if anchor is not None:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise typer.BadParameter("expected SEQ:HASH (the values `audit verify` printed)", param_hint="--anchor")
        kept = (int(seq), digest.lower())
    with hub_session() as (_hub, session):
        result = verify_chain(session, anchor=kept)
    if result.broken is not None:
        typer.echo(
            f"BROKEN at seq {result.broken.seq} ({result.broken.kind.value}): {result.broken.message}; "
            f"{result.checked} entries verified before it",
            err=True,
        )
        raise typer.Exit(1)
    if result.head_seq is None:
        typer.echo("audit chain is empty")
        return
    start = f" (after prune checkpoint through seq {result.checkpoint_through})" if result.checkpoint_through else ""
    typer.echo(f"audit chain intact: {result.checked} entries, seq {result.first_seq}..{result.head_seq}{start}")
    typer.echo(f"head {result.head_seq}:{result.head_hash}  (keep it elsewhere; check later with --anchor)")


@audit.command("export")
def export_cmd(
    since: Annotated[str, typer.Option(help="From this date/time (inclusive), UTC unless stated.")],
    until: Annotated[str, typer.Option(help="To this date/time (exclusive).")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="ndjson or csv.")] = ExportFormat.ndjson,
    org: Annotated[str | None, typer.Option(help="Only this organization (id or name).")] = None,
    output: Annotated[Path | None, typer.Option(help="Write here instead of standard output.")] = None,
) -> None:
    """Stream entries in seq order for compliance review (bounded memory)."""
    start, end = parse_when(since, "--since"), parse_when(until, "--until")
    if end <= start:
        raise typer.BadParameter("must be after --since", param_hint="--until")
    from vitalbridge.tenancy.service import get_organization

    with hub_session() as (_hub, session):
        org_id = get_organization(session, org).id if org else None
        if output is None:
            count = export(session, sys.stdout, fmt, since=start, until=end, organization_id=org_id)
        else:
            with output.open("w", encoding="utf-8", newline="") as fh:
                count = export(session, fh, fmt, since=start, until=end, organization_id=org_id)
    typer.echo(f"exported {count} entries", err=True)


@audit.command("prune")
def prune_cmd(
    before: Annotated[str, typer.Option(help="Remove entries that occurred before this date (UTC).")],
) -> None:
    """Remove entries older than the retention window (VB_AUDIT_RETENTION_DAYS), keeping the chain verifiable."""
    cutoff = parse_when(before, "--before")
    with hub_session() as (hub, session):
        result = prune(session, before=cutoff, settings=hub.settings, actor=operator())
    if result.pruned == 0:
        typer.echo("nothing to prune")
        return
    typer.echo(
        f"pruned {result.pruned} entries through seq {result.through_seq}; "
        f"checkpoint recorded as entry {result.record_seq}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(audit, name="audit")
