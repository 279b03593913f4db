"""``vitalbridge hl7 listen|send|messages|show|configure``: HL7 v2 over MLLP (docs/hl7.md)."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Annotated

import typer

from vitalbridge.cli.common import hub_session

hl7 = typer.Typer(help="HL7 v2 over MLLP (ADT patient feed in, ORU^R01 results out).", no_args_is_help=True)

TlsFile = Annotated[Path | None, typer.Option(exists=True, dir_okay=False, readable=True)]


@hl7.command("listen")
def listen(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default VB_HL7_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default VB_HL7_PORT, else 2575).")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate (chain): serve MLLP over TLS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")] = None,
    tls_client_ca: Annotated[
        Path | None, typer.Option(help="PEM CA bundle: require client certificates signed by it.")
    ] = None,
) -> None:
    """Receive ADT messages over MLLP until Ctrl-C (run `vitalbridge migrate` first)."""
    from vitalbridge.cli.common import open_hub
    from vitalbridge.errors import VitalbridgeError
    from vitalbridge.observability.logging import configure_logging
    from vitalbridge.settings import load_settings

    settings = load_settings()
    configure_logging(settings)
    overrides: dict[str, object] = {}
    if tls_cert is not None or tls_key is not None or tls_client_ca is not None:
        overrides.update(hl7_tls_cert=tls_cert, hl7_tls_key=tls_key, hl7_tls_client_ca=tls_client_ca)
    settings = settings.model_copy(update=overrides)
    bind_host = host or settings.hl7_host
    bind_port = port if port is not None else (settings.hl7_port or 2575)
    try:
        hub = open_hub(settings)
    except VitalbridgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        asyncio.run(_listen(hub, bind_host, bind_port))
    except VitalbridgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(f"error: cannot listen on {bind_host}:{bind_port}: {exc.strerror or type(exc).__name__}", err=True)
        raise typer.Exit(1) from None
    finally:
        hub.close()


async def _listen(hub: object, host: str, port: int) -> None:
    from vitalbridge.hl7v2.listener import build_listener
    from vitalbridge.runtime import Hub

    assert isinstance(hub, Hub)
    server = build_listener(hub)
    await server.start(host, port)
    typer.echo(f"MLLP listener on {host}:{server.port} (TLS {'on' if server.ssl else 'off'}); Ctrl-C stops it")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


@hl7.command("send")
def send(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="File of HL7 messages.")],
    host: Annotated[str, typer.Option(help="Receiver host.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Receiver port.")] = 2575,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each ACK.")] = 30.0,
    tls: Annotated[bool, typer.Option("--tls", help="Use TLS (verify the server with the system CAs).")] = False,
    tls_ca: Annotated[
        Path | None, typer.Option(help="PEM CA bundle to verify the server with (implies --tls).")
    ] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM client certificate (implies --tls).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM key of --tls-cert.")] = None,
    tls_server_name: Annotated[str | None, typer.Option(help="Name to verify the server certificate against.")] = None,
    tls_insecure: Annotated[
        bool, typer.Option("--tls-insecure", help="Do not verify the server certificate (lab use only).")
    ] = False,
) -> None:
    """Send each message in FILE, wait for its ACK, print `n<TAB>control id<TAB>MSA-1<TAB>text`.

    Exits 1 when any message was answered AE/AR, or an ACK did not come (the rest are not sent).
    """
    from vitalbridge.hl7v2.files import split_messages
    from vitalbridge.hl7v2.mllp.tls import client_context

    messages = split_messages(file.read_bytes())
    if not messages:
        typer.echo(f"error: no HL7 messages in {file}", err=True)
        raise typer.Exit(2)
    ctx = None
    if tls or tls_ca or tls_cert or tls_insecure:
        if tls_insecure:
            typer.echo("warning: not verifying the server certificate", err=True)
        ctx = client_context(tls_ca, tls_cert, tls_key, verify=not tls_insecure)
    code = asyncio.run(_send_all(messages, host, port, timeout, ctx, tls_server_name))
    raise typer.Exit(code)


async def _send_all(
    messages: list[bytes], host: str, port: int, timeout: float, ctx: object, server_name: str | None
) -> int:
    import ssl

    from vitalbridge.hl7v2.codes import AckCode
    from vitalbridge.hl7v2.delivery import answers, read_reply
    from vitalbridge.hl7v2.errors import Hl7DeliveryError, Hl7MessageError
    from vitalbridge.hl7v2.mllp.client import MllpClient
    from vitalbridge.hl7v2.parsing import read_header

    assert ctx is None or isinstance(ctx, ssl.SSLContext)
    client = MllpClient(host, port, ssl=ctx, server_hostname=server_name)
    failures = 0
    try:
        for n, message in enumerate(messages, start=1):
            try:
                control_id = read_header(message).control_id
            except Hl7MessageError:
                control_id = ""
            try:
                reply = await client.request(message, timeout=timeout, is_reply=answers(control_id))
            except Hl7DeliveryError as exc:
                typer.echo(f"{n}\t{control_id}\t-\t{exc}")
                if n < len(messages):
                    typer.echo(f"error: stopped; {len(messages) - n} message(s) not sent", err=True)
                return 1
            ack = read_reply(reply)
            if ack is None:
                typer.echo(f"{n}\t{control_id}\t-\tthe reply is not an HL7 ACK")
                failures += 1
                continue
            typer.echo(f"{n}\t{control_id}\t{ack.code.value}\t{ack.text}".rstrip("\t"))
            if ack.code not in (AckCode.AA, AckCode.CA):
                failures += 1
    finally:
        await client.close()
    return 1 if failures else 0


@hl7.command("messages")
def messages(
    org: Annotated[str | None, typer.Option(help="Organization id or name (default: all).")] = None,
    status: Annotated[
        str | None, typer.Option(help="accepted, error, rejected, duplicate, delivered, failed, unconfirmed")
    ] = None,
    unrouted: Annotated[bool, typer.Option("--unrouted", help="Only messages that matched no practice.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (no raw content).")] = False,
) -> None:
    """List stored HL7 messages, newest first (the operator's view, across organizations)."""
    from vitalbridge.hl7v2 import service
    from vitalbridge.hl7v2.models import Hl7MessageStatus
    from vitalbridge.hl7v2.schemas import Hl7MessageOut
    from vitalbridge.tenancy.service import get_organization

    try:
        wanted = Hl7MessageStatus(status) if status else None
    except ValueError:
        raise typer.BadParameter(f"unknown status {status!r}", param_hint="--status") from None
    with hub_session() as (_hub, session):
        org_id = get_organization(session, org).id if org else None
        rows = service.list_messages(session, org_id, status=wanted, limit=limit, unrouted=unrouted)
        if as_json:
            typer.echo(json.dumps([Hl7MessageOut.of(r).model_dump(mode="json") for r in rows], indent=2))
            return
        for r in rows:
            typer.echo(
                "\t".join(
                    [
                        r.id,
                        r.received_at.isoformat(timespec="seconds"),
                        r.direction.value,
                        r.message_type or "-",
                        r.control_id or "-",
                        r.status.value,
                        r.ack_code or "-",
                        r.sending_facility or "-",
                        r.error or "",
                    ]
                ).rstrip("\t")
            )


@hl7.command("show")
def show(
    message_id: str,
    raw: Annotated[bool, typer.Option("--raw", help="Print the message itself (contains patient data).")] = False,
) -> None:
    """Show one stored HL7 message."""
    from vitalbridge.hl7v2 import service
    from vitalbridge.hl7v2.schemas import Hl7MessageOut, decode_raw

    with hub_session() as (_hub, session):
        row = service.get_message(session, None, message_id)
        typer.echo(json.dumps(Hl7MessageOut.of(row).model_dump(mode="json"), indent=2))
        if raw:
            typer.echo(decode_raw(row).replace("\r", "\n"))


@hl7.command("configure")
def configure(
    org: Annotated[str, typer.Option(help="Organization id or name.")],
    practice: Annotated[str, typer.Option(help="Practice id or code.")],
    sending_facility: Annotated[
        str | None, typer.Option(help="MSH-4 namespace id whose ADT messages belong to this practice.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="The practice's HL7 interface host, for ORU^R01 results.")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="The practice's HL7 interface port.")] = None,
    results_over_hl7: Annotated[
        bool | None, typer.Option("--results-over-hl7/--results-over-fhir", help="Delivery channel for readings.")
    ] = None,
) -> None:
    """Map a sending facility to a practice and/or set where its ORU^R01 results go."""
    from vitalbridge.audit import Outcome, record
    from vitalbridge.cli.common import operator
    from vitalbridge.tenancy.models import DeliveryChannel
    from vitalbridge.tenancy.schemas import PracticePatch
    from vitalbridge.tenancy.service import get_organization, get_practice, update_practice

    with hub_session() as (hub, session):
        organization = get_organization(session, org)
        row = get_practice(session, organization.id, practice)
        if sending_facility is not None:
            # The service holds the hub-wide rule (one practice per facility), as for the API.
            patch = PracticePatch(hl7_sending_facility=sending_facility.strip() or None)
            row, changed = update_practice(
                session, organization.id, row.id, patch, hub.sealer, hub.settings, resolver=hub.resolver
            )
            record(
                session,
                action="practice.updated",
                outcome=Outcome.success,
                actor=operator(),
                organization_id=organization.id,
                practice_id=row.id,
                resource_type="Practice",
                resource_ids=[row.id],
                detail={"fields": sorted(changed)},
            )
        if host is not None:
            row.hl7_host = host or None
        if port is not None:
            row.hl7_port = port
        if results_over_hl7 is not None:
            row.delivery_channel = DeliveryChannel.hl7v2 if results_over_hl7 else DeliveryChannel.fhir
        typer.echo(
            f"{row.practice_code}\tfacility={row.hl7_sending_facility or '-'}\t"
            f"interface={row.hl7_host or '-'}:{row.hl7_port or '-'}\tchannel={row.delivery_channel.value}"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(hl7, name="hl7")
