"""``/oauth/oauth2/authorize``: SMART App Launch 2.0 standalone launch with PKCE (RFC 6749 §4.1.1,
§4.1.2.1; RFC 7636 §4.3; SPEC §3 "Standalone launch").

Before the client and redirect URI are trusted, errors are shown to the browser (400 JSON);
after, they travel back to the client as ``?error=…&state=…`` (RFC 6749 §4.1.2.1). A valid
request shows a minimal consent page whose Approve/Deny forms POST back here. Tests skip the
page with ``sandbox_auto_approve=1`` (sandbox-only; eCW has no such switch).
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from vitalbridge.sandbox.oauth.scopes import Context, parse_resource_scope
from vitalbridge.sandbox.oauth.token import practice_from_aud
from vitalbridge.sandbox.oauth.tokens import AuthorizationCode, PendingAuthorization
from vitalbridge.sandbox.responses import oauth_json
from vitalbridge.sandbox.state import AUTHORIZE_PATH, SandboxState, sandbox_state

router = APIRouter()

# A consent page left open longer than this must be started again.
PENDING_LIFETIME_S = 600


class _Redirected(Exception):
    """An authorization error to send back to the client's redirect URI."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _redirect(uri: str, params: Mapping[str, str]) -> Response:
    separator = "&" if "?" in uri else "?"
    return RedirectResponse(uri + separator + urlencode(params), status_code=302)


def _browser_error(error: str, description: str, status: int = 400) -> Response:
    return oauth_json({"error": error, "error_description": description}, status)


@router.get(AUTHORIZE_PATH)
async def authorize_get(request: Request) -> Response:
    return _authorization_request(request, dict(request.query_params))


@router.post(AUTHORIZE_PATH)
async def authorize_post(request: Request) -> Response:
    form = dict(parse_qsl((await request.body()).decode(errors="replace"), keep_blank_values=True))
    if "request_id" in form:
        return _decision(request, form)
    # SMART "authorize-post": the same parameters, form-encoded.
    return _authorization_request(request, form)


def _authorization_request(request: Request, params: Mapping[str, str]) -> Response:
    state = sandbox_state(request)
    state.stats.count("authorize_requests")
    client_id = params.get("client_id", "")
    client = state.clients.get(client_id) if client_id else None
    if client is None:
        return _browser_error("invalid_request", f"unknown or missing client_id {client_id!r}")
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri or redirect_uri not in client.redirect_uris:
        return _browser_error(
            "invalid_request", "redirect_uri is missing or does not exactly match one registered for this client"
        )
    client_state = params.get("state", "")
    try:
        pending = _validate(request, state, params, client.client_id, client.scopes, client.practices)
    except _Redirected as exc:
        reply = {"error": exc.error, "error_description": exc.description}
        if client_state:
            reply["state"] = client_state
        return _redirect(redirect_uri, reply)
    wait = state.limiter.acquire([pending.practice])
    if wait is not None:
        state.stats.count("rate_limited_by_practice", pending.practice)
        return oauth_json(
            {"error": "temporarily_unavailable", "error_description": "rate limit reached"},
            429,
            state.retry_after(wait),
        )
    if params.get("sandbox_auto_approve") == "1":
        return _approve(state, pending)
    request_id = state.tokens.hold_pending(pending)
    return HTMLResponse(_consent_page(request_id, pending))


def _validate(
    request: Request,
    state: SandboxState,
    params: Mapping[str, str],
    client_id: str,
    registered: tuple[str, ...],
    practices: frozenset[str],
) -> PendingAuthorization:
    if params.get("response_type") != "code":
        raise _Redirected("unsupported_response_type", "response_type must be code")
    if not params.get("state"):
        raise _Redirected("invalid_request", "state is required (CSRF protection)")
    aud = params.get("aud", "")
    practice = practice_from_aud(request, state, aud) if aud else None
    if practice is None:
        raise _Redirected("invalid_request", "aud must be the FHIR base URL of a practice, e.g. {issuer}/fhir/r4/CODE")
    if practice not in practices:
        raise _Redirected("unauthorized_client", f"this client is not activated at practice {practice}")
    challenge, method = params.get("code_challenge", ""), params.get("code_challenge_method", "")
    if not challenge:
        raise _Redirected("invalid_request", "code_challenge is required (PKCE)")
    if method != "S256":
        raise _Redirected("invalid_request", "code_challenge_method must be S256 (plain is refused)")
    if not 43 <= len(challenge) <= 128:
        raise _Redirected("invalid_request", "code_challenge must be BASE64URL(SHA256(code_verifier)), 43 characters")
    scopes = tuple(dict.fromkeys(params.get("scope", "").split()))
    if not scopes:
        raise _Redirected("invalid_scope", "scope is required")
    problems = []
    for scope in scopes:
        try:
            parsed = parse_resource_scope(scope)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if parsed is not None and parsed.context is Context.system:
            problems.append(f"{scope}: system/ scopes are for client_credentials, not user launches")
        elif scope not in registered:
            problems.append(f"{scope}: not registered for this client")
    if problems:
        raise _Redirected("invalid_scope", "; ".join(problems))
    return PendingAuthorization(
        client_id=client_id,
        redirect_uri=params["redirect_uri"],
        state=params["state"],
        scopes=scopes,
        practice=practice,
        code_challenge=challenge,
        patient=_launch_patient(state, practice, scopes, params.get("sandbox_patient")),
        expires_at=time.time() + PENDING_LIFETIME_S,
    )


def _launch_patient(state: SandboxState, practice: str, scopes: tuple[str, ...], chosen: str | None) -> str | None:
    wants_patient = "launch/patient" in scopes or any(s.startswith("patient/") for s in scopes)
    if not wants_patient:
        return None
    patients = state.patients_of(practice)
    if chosen and patients.index_of(chosen) is not None:
        return chosen
    return patients.id_for(0)


def _approve(state: SandboxState, pending: PendingAuthorization) -> Response:
    code = state.tokens.issue_code(
        AuthorizationCode(
            client_id=pending.client_id,
            redirect_uri=pending.redirect_uri,
            code_challenge=pending.code_challenge,
            practice=pending.practice,
            scopes=pending.scopes,
            patient=pending.patient,
            expires_at=time.time() + state.config.code_lifetime_s,
        )
    )
    return _redirect(pending.redirect_uri, {"code": code, "state": pending.state})


def _decision(request: Request, form: Mapping[str, str]) -> Response:
    state = sandbox_state(request)
    pending = state.tokens.take_pending(form["request_id"])
    if pending is None:
        return _browser_error("invalid_request", "this consent page expired or was already answered; start again")
    if form.get("decision") != "approve":
        return _redirect(
            pending.redirect_uri,
            {"error": "access_denied", "error_description": "the user denied access", "state": pending.state},
        )
    return _approve(state, pending)


def _consent_page(request_id: str, pending: PendingAuthorization) -> str:
    scopes = "".join(f"<li><code>{html.escape(s)}</code></li>" for s in pending.scopes)
    patient = f"<p>Patient in context: <code>{html.escape(pending.patient)}</code></p>" if pending.patient else ""
    hidden = f'<input type="hidden" name="request_id" value="{html.escape(request_id)}">'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sandbox EHR — authorize</title></head>
<body>
<h1>vitalbridge sandbox EHR</h1>
<p>Application <strong>{html.escape(pending.client_id)}</strong> asks for access to practice
<strong>{html.escape(pending.practice)}</strong> with these scopes:</p>
<ul>{scopes}</ul>{patient}
<form method="post" action="{AUTHORIZE_PATH}">{hidden}
<button type="submit" name="decision" value="approve">Approve</button></form>
<form method="post" action="{AUTHORIZE_PATH}">{hidden}
<button type="submit" name="decision" value="deny">Deny</button></form>
<p><small>Sandbox only: no real patient data. Add <code>sandbox_auto_approve=1</code> to skip this page.</small></p>
</body></html>
"""
