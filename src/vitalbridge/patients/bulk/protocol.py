"""Bulk Data Access IG v2 on the wire, through the one EHR client (auth, rate limits, audit).

- kick-off: ``GET [base]/Patient/$export`` or ``[base]/Group/{id}/$export`` with
  ``Prefer: respond-async`` and ``Accept: application/fhir+json`` → 202 + ``Content-Location``;
- status: ``GET {status URL}`` → 202 (+ ``Retry-After``, ``X-Progress``) while running, 200 with
  the manifest when done; 429 when polled too early;
- files: ``GET {output url}`` with the bearer token when the manifest says
  ``requiresAccessToken: true`` (then only from the practice's own FHIR server: credentials never
  go elsewhere); with ``requiresAccessToken: false`` the files may sit on another host (object
  storage, pre-signed URLs) and are fetched WITHOUT the token, after the SSRF guard;
- cancel: ``DELETE {status URL}``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from vitalbridge import audit
from vitalbridge.ehr.calls import CallTarget, Interaction
from vitalbridge.ehr.client import ehr_client
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.ehr.failures import refusal, transport_error
from vitalbridge.ehr.headers import parse_retry_after
from vitalbridge.errors import EhrRejected, UpstreamError
from vitalbridge.runtime import Hub
from vitalbridge.security.urls import check_outbound_url
from vitalbridge.smart.services import smart_for

PREFER_ASYNC = {"Prefer": "respond-async"}


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def kick_off(
    hub: Hub,
    conn: PracticeConnection,
    *,
    group: str | None,
    since: datetime | None,
    actor: audit.Actor | str,
    correlation_id: str | None = None,
) -> str:
    """Start an export of Patients; returns the status URL."""
    path = f"Group/{group}/$export" if group else "Patient/$export"
    params: dict[str, str] = {"_type": "Patient"}
    if since is not None:
        params["_since"] = _instant(since)
    resp = ehr_client(hub).get(
        conn,
        path,
        params=params,
        headers=PREFER_ASYNC,
        resource_type="Group" if group else "Patient",
        actor=actor,
        correlation_id=correlation_id,
    )
    location = resp.headers.get("content-location")
    if resp.status_code != 202 or not location:
        raise EhrRejected(
            f"the EHR of practice {conn.practice_code} did not start an asynchronous export "
            f"(HTTP {resp.status_code}{', no Content-Location' if not location else ''})",
            status_code=resp.status_code,
        )
    return str(location)


@dataclass(frozen=True)
class Status:
    done: bool
    retry_after: float | None = None
    progress: str | None = None
    manifest: dict[str, Any] | None = None


def poll(
    hub: Hub, conn: PracticeConnection, status_url: str, *, actor: audit.Actor | str, correlation_id: str | None
) -> Status:
    """One status request. 429/5xx raise (the caller's policy decides); 202 and 200 return."""
    resp = ehr_client(hub).get(conn, status_url, actor=actor, correlation_id=correlation_id)
    if resp.status_code == 202:
        raw = resp.headers.get("retry-after")
        return Status(
            done=False,
            retry_after=parse_retry_after(raw) if raw else None,
            progress=resp.headers.get("x-progress"),
        )
    if resp.status_code == 200 and isinstance(resp.body, dict) and isinstance(resp.body.get("output"), list):
        return Status(done=True, manifest=resp.body)
    raise UpstreamError(
        f"the EHR of practice {conn.practice_code} answered the export status with HTTP {resp.status_code} "
        "and no manifest",
        status_code=resp.status_code,
    )


def cancel(
    hub: Hub, conn: PracticeConnection, status_url: str, *, actor: audit.Actor | str, correlation_id: str | None
) -> None:
    """``DELETE`` the export (also tells the server a finished export's files may go)."""
    ehr_client(hub).request(conn, "DELETE", status_url, actor=actor, correlation_id=correlation_id)


@contextmanager
def download(
    hub: Hub,
    conn: PracticeConnection,
    url: str,
    *,
    from_byte: int,
    actor: audit.Actor | str,
    correlation_id: str | None,
    bearer: bool = True,
) -> Iterator[tuple[httpx.Response, int]]:
    """Stream one output file; yields the response and the file offset its body starts at.

    With ``from_byte`` > 0 it asks for ``Range: bytes={from_byte}-``; a server that ignores
    Range answers 200 with the whole file (start offset 0) and the caller skips what it has.
    """
    headers = {"Accept": "application/fhir+ndjson"}
    if from_byte > 0:
        headers["Range"] = f"bytes={from_byte}-"
    if not bearer:
        with _download_without_token(hub, conn, url, headers, actor, correlation_id) as resp:
            yield resp, from_byte if from_byte > 0 and resp.status_code == 206 else 0
        return
    with ehr_client(hub).stream(conn, url, headers=headers, actor=actor, correlation_id=correlation_id) as resp:
        start = from_byte if from_byte > 0 and resp.status_code == 206 else 0
        yield resp, start


@contextmanager
def _download_without_token(
    hub: Hub,
    conn: PracticeConnection,
    url: str,
    headers: dict[str, str],
    actor: audit.Actor | str,
    correlation_id: str | None,
) -> Iterator[httpx.Response]:
    """A manifest file with ``requiresAccessToken: false``: no Authorization header at all, so a
    file host that is not the EHR (object storage) never sees the practice's token."""
    check_outbound_url(url, hub.settings, field="export file url")
    target = CallTarget(url, None, (), Interaction.other)
    host = urlsplit(url).netloc
    http = smart_for(hub).http
    request = http.build_request("GET", url, headers=headers, timeout=conn.request_timeout_s)
    started = time.perf_counter()
    try:
        resp = http.send(request, stream=True)
    except httpx.TransportError as exc:
        _audit_file(hub, conn, host, None, started, actor, correlation_id)
        raise transport_error(conn, "GET", target, exc) from None
    try:
        _audit_file(hub, conn, host, resp.status_code, started, actor, correlation_id)
        if resp.status_code >= 400:
            resp.read()
            raise refusal(conn, "GET", target, resp, granted_scope="")
        yield resp
    finally:
        resp.close()


def _audit_file(
    hub: Hub,
    conn: PracticeConnection,
    host: str,
    status: int | None,
    started: float,
    actor: audit.Actor | str,
    correlation_id: str | None,
) -> None:
    # The host only: a pre-signed URL's query is a credential of its own.
    with hub.sessions() as session, session.begin():
        audit.record(
            session,
            action="ehr.call",
            outcome=audit.Outcome.success if status is not None and status < 400 else audit.Outcome.failure,
            actor=actor,
            organization_id=conn.organization_id,
            practice_id=conn.id,
            status_code=status,
            latency_ms=(time.perf_counter() - started) * 1000,
            correlation_id=correlation_id,
            detail={"method": "GET", "interaction": "bulk-file", "host": host, "authorization": "none"},
        )
