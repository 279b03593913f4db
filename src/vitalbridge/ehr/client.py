"""``EhrClient``: the one way the hub calls a practice's FHIR server (SPEC §3, §7, §9).

Each call

1. takes a token for the practice from the shared cache: the grant the practice is set to use
   (``ehr_access``: backend services by default, or the standalone user grant for EHRs that allow
   only user consent), or the one a caller names with ``grant=``;
2. takes a slot from the practice's and the hub's rate-limit buckets (token requests take
   slots too);
3. sends the request with ``Authorization: Bearer …`` and ``Accept: application/fhir+json``;
   on 401 it invalidates that token and retries exactly once with a fresh one;
4. writes an ``ehr.call`` audit entry per HTTP exchange: method, interaction, resource type and
   ids, status, latency, correlation id and the *names* of query parameters — never their values,
   which may be a patient's name or birth date;
5. returns an ``EhrResponse`` for 2xx/3xx or raises from the error tree: ``EhrUnavailable``
   (5xx, 408, timeout, connection failure; transient), ``EhrRateLimited`` (429, after telling the
   rate limiter to back off), ``EhrForbidden`` / ``EhrNotFound`` / ``EhrInvalid`` / ``EhrRejected``
   (other 4xx, permanent, with the OperationOutcome text in ``diagnostics``), ``EhrAuthError``
   (tokens refused).

Retrying is the caller's policy (the delivery worker's), decided by ``exc.transient``. Calls are
synchronous and thread-safe; asyncio callers run them in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import json as jsonlib
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from vitalbridge import audit
from vitalbridge.ehr import call_meter, logfilter, metrics
from vitalbridge.ehr.calls import CallTarget, EhrResponse, Interaction, describe
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.ehr.failures import refusal, response_json, transport_error
from vitalbridge.errors import (
    ConfigurationError,
    EhrAuthError,
    EhrRateLimited,
    UpstreamError,
)
from vitalbridge.runtime import Hub
from vitalbridge.smart.models import GrantKind
from vitalbridge.smart.services import Smart, smart_for
from vitalbridge.smart.tokens import AccessToken
from vitalbridge.tenancy.models import Practice

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
DEFAULT_ACTOR = audit.Actor.service("ehr-client")
_EXTRA = "ehr_client"
_CREATE_LOCK = threading.Lock()


class EhrClient:
    def __init__(self, hub: Hub, smart: Smart | None = None) -> None:
        logfilter.install()
        self._hub = hub
        self.smart = smart or smart_for(hub)
        self._http = self.smart.http

    def __repr__(self) -> str:
        return "EhrClient()"

    def close(self) -> None:
        """The HTTP pool belongs to the hub's ``Smart``; closing the hub closes it."""

    # -- public interface ----------------------------------------------------------------------

    def request(
        self,
        practice: Practice | PracticeConnection,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | Iterable[str]] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        grant: GrantKind | None = None,
        scopes: Iterable[str] | None = None,
        resource_type: str | None = None,
        resource_ids: Iterable[str] = (),
        correlation_id: str | None = None,
        actor: audit.Actor | str = DEFAULT_ACTOR,
        timeout: float | None = None,
    ) -> EhrResponse:
        """Call ``path`` (relative to the practice's FHIR base, e.g. ``"Patient/123"``, or an
        absolute URL on the same server, e.g. a paging link) and return the parsed answer."""
        conn = PracticeConnection.of(practice)
        grant = grant or GrantKind(conn.grant.value)
        correlation_id = correlation_id or uuid.uuid4().hex
        target = self._target(conn, method, path, resource_type, resource_ids)
        body = None if json is None else jsonlib.dumps(json, separators=(",", ":")).encode()
        wanted_scopes = tuple(scopes) if scopes is not None else None
        for attempt in (1, 2):
            token = self._token(conn, grant, wanted_scopes)
            self.smart.limiter.acquire(conn)
            started = time.perf_counter()
            try:
                resp = self._http.request(
                    method.upper(),
                    target.url,
                    params=_params(params),
                    content=body,
                    headers=self._headers(token, correlation_id, headers, has_body=body is not None),
                    timeout=timeout or conn.request_timeout_s,
                )
            except httpx.TransportError as exc:
                latency = (time.perf_counter() - started) * 1000
                error = transport_error(conn, method, target, exc)
                self._audit(conn, method, target, params, None, latency, correlation_id, actor, attempt, error)
                raise error from None
            latency = (time.perf_counter() - started) * 1000
            if resp.status_code == 401 and attempt == 1:
                self._audit(conn, method, target, params, 401, latency, correlation_id, actor, attempt, "invalid_token")
                self._invalidate(conn, grant, wanted_scopes, token)
                continue
            if resp.status_code >= 400:
                refused = self._failure(conn, method, target, resp, token, grant, wanted_scopes)
                self._audit(
                    conn, method, target, params, resp.status_code, latency, correlation_id, actor, attempt, refused
                )
                raise refused
            parsed = response_json(resp)
            result = EhrResponse(resp.status_code, resp.headers, parsed, latency, correlation_id)
            created = result.created_id() if target.interaction is Interaction.create else None
            self._audit(
                conn, method, target, params, resp.status_code, latency, correlation_id, actor, attempt, None, created
            )
            return result
        raise AssertionError("unreachable: the second attempt returns or raises")  # pragma: no cover

    def get(self, practice: Practice | PracticeConnection, path: str, **kwargs: Any) -> EhrResponse:
        return self.request(practice, "GET", path, **kwargs)

    def post(self, practice: Practice | PracticeConnection, path: str, **kwargs: Any) -> EhrResponse:
        return self.request(practice, "POST", path, **kwargs)

    def put(self, practice: Practice | PracticeConnection, path: str, **kwargs: Any) -> EhrResponse:
        return self.request(practice, "PUT", path, **kwargs)

    @contextmanager
    def stream(
        self,
        practice: Practice | PracticeConnection,
        path: str,
        *,
        params: Mapping[str, str | int | Iterable[str]] | None = None,
        headers: Mapping[str, str] | None = None,
        grant: GrantKind | None = None,
        correlation_id: str | None = None,
        actor: audit.Actor | str = DEFAULT_ACTOR,
        timeout: float | None = None,
    ) -> Iterator[httpx.Response]:
        """GET with the body left unread, for large downloads (Bulk Data NDJSON files): iterate
        ``response.iter_lines()`` in bounded memory. Same auth, limits, errors and audit."""
        conn = PracticeConnection.of(practice)
        grant = grant or GrantKind(conn.grant.value)
        correlation_id = correlation_id or uuid.uuid4().hex
        target = self._target(conn, "GET", path, None, ())
        for attempt in (1, 2):
            token = self._token(conn, grant, None)
            self.smart.limiter.acquire(conn)
            request = self._http.build_request(
                "GET",
                target.url,
                params=_params(params),
                headers=self._headers(token, correlation_id, headers, has_body=False, accept="*/*"),
                timeout=timeout or conn.request_timeout_s,
            )
            started = time.perf_counter()
            try:
                resp = self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                error = transport_error(conn, "GET", target, exc)
                latency = (time.perf_counter() - started) * 1000
                self._audit(conn, "GET", target, params, None, latency, correlation_id, actor, attempt, error)
                raise error from None
            try:
                latency = (time.perf_counter() - started) * 1000
                if resp.status_code == 401 and attempt == 1:
                    self._audit(
                        conn, "GET", target, params, 401, latency, correlation_id, actor, attempt, "invalid_token"
                    )
                    self._invalidate(conn, grant, None, token)
                    continue
                if resp.status_code >= 400:
                    resp.read()
                    refused = self._failure(conn, "GET", target, resp, token, grant, None)
                    self._audit(
                        conn, "GET", target, params, resp.status_code, latency, correlation_id, actor, attempt, refused
                    )
                    raise refused
                self._audit(
                    conn, "GET", target, params, resp.status_code, latency, correlation_id, actor, attempt, None
                )
                yield resp
                return
            finally:
                resp.close()

    def slow_down(
        self, practice: Practice | PracticeConnection | str, retry_after: float, *, minute_window: bool = False
    ) -> None:
        """Hold off the practice for ``retry_after`` seconds and halve its pace (after a 429), or
        with ``minute_window`` until the next minute and pace it per minute from then on."""
        practice_id = practice if isinstance(practice, str) else PracticeConnection.of(practice).id
        self.smart.limiter.slow_down(practice_id, retry_after, minute_window=minute_window)

    # -- internals -----------------------------------------------------------------------------

    def _target(
        self, conn: PracticeConnection, method: str, path: str, resource_type: str | None, resource_ids: Iterable[str]
    ) -> CallTarget:
        base = conn.fhir_base_url.rstrip("/")
        if path.startswith(("http://", "https://")):
            # Tokens go only to the practice's own FHIR server, whatever a response links to.
            if _origin(path) != _origin(base):
                raise ConfigurationError(
                    f"refusing to send practice {conn.practice_code}'s credentials to {_origin(path)}: "
                    "it is not the practice's FHIR server"
                )
            url = path
            relative = path[len(base) :] if path.startswith(base) else urlsplit(path).path
        else:
            relative = path.lstrip("/")
            url = f"{base}/{relative}"
        rtype, ids, interaction = describe(method, relative)
        given_ids = tuple(resource_ids)
        names = tuple(sorted({name for name, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}))
        return CallTarget(url, resource_type or rtype, given_ids or ids, interaction, names)

    def _token(self, conn: PracticeConnection, grant: GrantKind, scopes: tuple[str, ...] | None) -> AccessToken:
        if grant is GrantKind.standalone:
            return self.smart.standalone.token(conn)
        return self.smart.backend.token(conn, scopes)

    def _invalidate(
        self, conn: PracticeConnection, grant: GrantKind, scopes: tuple[str, ...] | None, token: AccessToken
    ) -> None:
        if grant is GrantKind.standalone:
            self.smart.standalone.invalidate(conn, token)
        else:
            self.smart.backend.invalidate(conn, token, scopes)

    @staticmethod
    def _headers(
        token: AccessToken,
        correlation_id: str,
        extra: Mapping[str, str] | None,
        *,
        has_body: bool,
        accept: str = FHIR_JSON,
    ) -> dict[str, str]:
        headers = {"Accept": accept, "X-Request-ID": correlation_id}
        if has_body:
            headers["Content-Type"] = FHIR_JSON
        headers.update(extra or {})
        # Set last so no caller-supplied header can replace the practice's credentials.
        headers["Authorization"] = token.authorization
        return headers

    def _failure(
        self,
        conn: PracticeConnection,
        method: str,
        target: CallTarget,
        resp: httpx.Response,
        token: AccessToken,
        grant: GrantKind,
        scopes: tuple[str, ...] | None,
    ) -> UpstreamError | EhrRateLimited:
        error = refusal(conn, method, target, resp, granted_scope=token.scope)
        if isinstance(error, EhrRateLimited):
            self.slow_down(conn.id, error.retry_after, minute_window=error.minute_window)
        elif isinstance(error, EhrAuthError):
            # A freshly issued token refused too: drop it so the next call starts clean.
            self._invalidate(conn, grant, scopes, token)
        return error

    def _audit(
        self,
        conn: PracticeConnection,
        method: str,
        target: CallTarget,
        params: Mapping[str, Any] | None,
        status: int | None,
        latency_ms: float,
        correlation_id: str,
        actor: audit.Actor | str,
        attempt: int,
        error: Exception | str | None,
        created_id: str | None = None,
    ) -> None:
        detail: dict[str, Any] = {"method": method.upper(), "interaction": target.interaction.value, "attempt": attempt}
        names = set(params or ()) | set(target.query_names)
        if names:
            # Names only: values can be a patient's name, birth date or MRN.
            detail["params"] = sorted(names)
        if isinstance(error, str):
            detail["error"] = error
        elif error is not None:
            detail["error"] = getattr(error, "error_code", type(error).__name__)
        ids = list(target.resource_ids)
        if created_id and created_id not in ids:
            ids.append(created_id)
        outcome = audit.Outcome.success if error is None else audit.Outcome.failure
        metrics.EHR_REQUESTS.labels(target.interaction.value, metrics.result_of(status)).inc()
        call_meter.count(target.interaction.value)
        metrics.EHR_LATENCY.labels(target.interaction.value).observe(latency_ms / 1000)
        if status == 429:
            metrics.RATE_LIMITED.labels("ehr").inc()
        with self._hub.sessions() as session, session.begin():
            audit.record(
                session,
                action="ehr.call",
                outcome=outcome,
                actor=actor,
                organization_id=conn.organization_id,
                practice_id=conn.id,
                resource_type=target.resource_type,
                resource_ids=ids,
                status_code=status,
                latency_ms=latency_ms,
                correlation_id=correlation_id,
                detail=detail,
            )
        log.debug(
            "ehr call practice=%s %s %s status=%s ms=%.0f correlation=%s",
            conn.practice_code,
            method.upper(),
            target.resource_type or target.interaction.value,
            status,
            latency_ms,
            correlation_id,
        )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _params(params: Mapping[str, Any] | None) -> httpx.QueryParams | None:
    if not params:
        return None
    flat: list[tuple[str, str | int | float | bool | None]] = []
    for name, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        flat.extend((name, str(v)) for v in values)
    return httpx.QueryParams(flat)


def ehr_client(hub: Hub) -> EhrClient:
    """The hub's shared client (one HTTP pool, one token cache view)."""
    with _CREATE_LOCK:
        existing = hub.extras.get(_EXTRA)
        if isinstance(existing, EhrClient):
            return existing
        client = EhrClient(hub)
        hub.extras[_EXTRA] = client
        return client
