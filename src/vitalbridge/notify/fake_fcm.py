"""A fake Firebase Cloud Messaging endpoint on loopback, speaking the HTTP v1 wire format.

For demos (``make run``) and tests; it shares nothing with the hub. It says "no" where FCM
would:

    POST /token                                  OAuth2 JWT bearer grant (RFC 7523 §2.1): the
                                                 assertion must be RS256, signed by the service
                                                 account's key, iss/aud/scope/iat/exp right
    POST /v1/projects/{project}/messages:send    bearer access token from /token; project must
                                                 match; message shape checked (one target, data
                                                 values strings, android/apns fields typed,
                                                 4 KB payload); errors in FCM's v1 error body
    GET  /_fake/messages                         messages accepted so far (DELETE clears)
    GET  /_fake/attempts                         every send with its answer (status, error code)
    POST /_fake/faults                           {"error", "token"?, "times"?, "retry_after"?}
    DELETE /_fake/faults                         clear faults
    POST /_fake/revoke-access-tokens             every issued access token becomes invalid
    GET  /_fake/stats                            token requests, sends

Error injection by token value too: a registration token starting with ``unregistered-`` answers
UNREGISTERED, ``sender-mismatch-`` SENDER_ID_MISMATCH, and one that is not token-shaped
INVALID_ARGUMENT (as FCM does).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from vitalbridge.notify.codes import FcmErrorCode
from vitalbridge.notify.fake_fcm_rules import validate_message
from vitalbridge.notify.fcm import FCM_ERROR_TYPE, JWT_BEARER_GRANT, SCOPE

BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_:\-.]{20,4096}$")
ACCESS_TOKEN_LIFETIME_S = 3600

# FCM error code → (HTTP status, google.rpc status)
ERRORS: dict[FcmErrorCode, tuple[int, str]] = {
    FcmErrorCode.UNSPECIFIED_ERROR: (500, "UNKNOWN"),
    FcmErrorCode.INVALID_ARGUMENT: (400, "INVALID_ARGUMENT"),
    FcmErrorCode.UNREGISTERED: (404, "NOT_FOUND"),
    FcmErrorCode.SENDER_ID_MISMATCH: (403, "PERMISSION_DENIED"),
    FcmErrorCode.QUOTA_EXCEEDED: (429, "RESOURCE_EXHAUSTED"),
    FcmErrorCode.UNAVAILABLE: (503, "UNAVAILABLE"),
    FcmErrorCode.INTERNAL: (500, "INTERNAL"),
    FcmErrorCode.THIRD_PARTY_AUTH_ERROR: (401, "UNAUTHENTICATED"),
}


@dataclass
class Fault:
    error: FcmErrorCode
    remaining: int | None  # None: every time
    retry_after: int | None = None


class ServiceAccountKey:
    """A service account made up for the fake: its key pair and the JSON file the hub reads."""

    def __init__(self, project_id: str = "vitalbridge-demo", client_email: str | None = None) -> None:
        self.project_id = project_id
        self.client_email = client_email or f"vitalbridge-push@{project_id}.iam.gserviceaccount.com"
        self.key = RSAKey.generate_key(2048)
        self.key_id = secrets.token_hex(20)

    @property
    def public_key(self) -> RSAKey:
        return RSAKey.import_key(self.key.as_pem(private=False))

    def document(self, token_uri: str) -> dict[str, str]:
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.key_id,
            "private_key": self.key.as_pem(private=True).decode(),
            "client_email": self.client_email,
            "client_id": "100000000000000000000",
            "token_uri": token_uri,
        }

    def write(self, path: Path, token_uri: str) -> Path:
        """Write the JSON (mode 0600: it holds a private key)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.document(token_uri), fh, indent=2)
        return path

    @classmethod
    def read(cls, path: Path) -> ServiceAccountKey:
        """Load a file written by ``write`` (make run reuses its demo account across restarts)."""
        data = json.loads(path.read_text(encoding="utf-8"))
        account = cls(data["project_id"], data["client_email"])
        account.key = RSAKey.import_key(data["private_key"])
        account.key_id = data.get("private_key_id", account.key_id)
        return account


def _error(code: FcmErrorCode, message: str, *, retry_after: int | None = None) -> JSONResponse:
    status, rpc = ERRORS[code]
    details: list[dict[str, Any]] = [{"@type": FCM_ERROR_TYPE, "errorCode": code.value}]
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    body = {"error": {"code": status, "message": message, "status": rpc, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


def _bad_request(field: str, description: str) -> JSONResponse:
    body = {
        "error": {
            "code": 400,
            "message": description,
            "status": "INVALID_ARGUMENT",
            "details": [{"@type": BAD_REQUEST_TYPE, "fieldViolations": [{"field": field, "description": description}]}],
        }
    }
    return JSONResponse(body, status_code=400)


def _rpc_error(status: int, rpc: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": status, "message": message, "status": rpc}}, status_code=status)


def _oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


class FakeFcm:
    """The fake's state and its ASGI app (``.app``). Thread-safe: tests read it while it serves."""

    def __init__(self, account: ServiceAccountKey, *, clock: Any = time.time) -> None:
        self.project_id = account.project_id
        self.client_email = account.client_email
        self._public_key = account.public_key
        self._clock = clock
        self._lock = threading.Lock()
        self._access_tokens: dict[str, float] = {}
        self._faults: deque[tuple[str | None, Fault]] = deque()
        self.messages: list[dict[str, Any]] = []
        self.attempts: list[dict[str, Any]] = []
        self.token_requests = 0
        self.app = self._build()

    # --- control, also used by tests directly -------------------------------------------

    def add_fault(
        self,
        error: FcmErrorCode | str,
        *,
        token: str | None = None,
        times: int | None = 1,
        retry_after: int | None = None,
    ) -> None:
        with self._lock:
            self._faults.append((token, Fault(FcmErrorCode(error), times, retry_after)))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.messages.clear()
            self.attempts.clear()

    def issued_access_tokens(self) -> list[str]:
        """Every access token issued and not revoked (leak tests search for them)."""
        with self._lock:
            return list(self._access_tokens)

    def revoke_access_tokens(self) -> None:
        with self._lock:
            self._access_tokens.clear()

    def _take_fault(self, token: str) -> Fault | None:
        with self._lock:
            for i, (target, fault) in enumerate(self._faults):
                if target is not None and target != token:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del self._faults[i]
                return fault
        if token.startswith("unregistered-"):
            return Fault(FcmErrorCode.UNREGISTERED, None)
        if token.startswith("sender-mismatch-"):
            return Fault(FcmErrorCode.SENDER_ID_MISMATCH, None)
        return None

    # --- OAuth2 token endpoint -------------------------------------------------------------

    def _grant(self, form: dict[str, str], token_url: str) -> JSONResponse:
        with self._lock:
            self.token_requests += 1
        if form.get("grant_type") != JWT_BEARER_GRANT:
            return _oauth_error("unsupported_grant_type", "Invalid grant_type")
        assertion = form.get("assertion", "")
        try:
            token = jwt.decode(assertion, self._public_key, algorithms=["RS256"])
        except (JoseError, ValueError):
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        claims = token.claims
        now = self._clock()
        if token.header.get("alg") != "RS256":
            return _oauth_error("invalid_grant", "Invalid JWT: algorithm must be RS256")
        if claims.get("iss") != self.client_email:
            return _oauth_error("invalid_grant", "Invalid JWT: iss is not this service account")
        if claims.get("aud") != token_url:
            return _oauth_error("invalid_grant", "Invalid JWT: aud must be the token URI")
        if SCOPE not in str(claims.get("scope", "")).split():
            return _oauth_error("invalid_scope", "the firebase.messaging scope is required")
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int):
            return _oauth_error("invalid_grant", "Invalid JWT: iat and exp are required")
        if exp - iat > 3600 or iat > now + 60 or exp <= now:
            return _oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes)")
        access = "ya29.fake-" + secrets.token_urlsafe(32)
        with self._lock:
            self._access_tokens[access] = now + ACCESS_TOKEN_LIFETIME_S
        return JSONResponse({"access_token": access, "expires_in": ACCESS_TOKEN_LIFETIME_S, "token_type": "Bearer"})

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        with self._lock:
            expires = self._access_tokens.get(header[7:])
        return expires is not None and expires > self._clock()

    # --- messages:send -----------------------------------------------------------------------

    def _send(self, project: str, authorization: str | None, body: Any) -> JSONResponse:
        if not self._authorized(authorization):
            return _rpc_error(
                401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token"
            )
        if project != self.project_id:
            return _rpc_error(403, "PERMISSION_DENIED", "Permission denied on this project")
        if not isinstance(body, dict) or set(body) - {"message", "validate_only"} or "message" not in body:
            return _bad_request("message", 'the request body must be {"message": …}')
        message = body["message"]
        problem = validate_message(message)
        token = message.get("token") if isinstance(message, dict) else None
        response: JSONResponse
        fault = None
        if problem:
            response = _bad_request(*problem)
        elif isinstance(token, str) and not _TOKEN_SHAPE.match(token):
            response = _error(
                FcmErrorCode.INVALID_ARGUMENT, "The registration token is not a valid FCM registration token"
            )
        else:
            fault = self._take_fault(token or "")
            if fault is not None:
                response = _error(fault.error, f"injected {fault.error.value}", retry_after=fault.retry_after)
            else:
                name = f"projects/{self.project_id}/messages/{uuid.uuid4().hex}"
                with self._lock:
                    self.messages.append({"name": name, "received_at": self._clock(), "message": message})
                response = JSONResponse({"name": name})
        with self._lock:
            self.attempts.append(
                {
                    "status": response.status_code,
                    "error": fault.error.value if fault else (problem[0] if problem else None),
                    "token": token,
                    "at": self._clock(),
                }
            )
        return response

    def _build(self) -> FastAPI:
        app = FastAPI(title="fake FCM", docs_url=None, redoc_url=None, openapi_url=None)

        @app.post("/token")
        async def token_endpoint(request: Request) -> JSONResponse:
            form = await request.form()
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            return self._grant(fields, str(request.url))

        @app.post("/v1/projects/{project}/messages:send")
        async def send(project: str, request: Request) -> JSONResponse:
            try:
                body = json.loads(await request.body())
            except ValueError:
                return _bad_request("message", "Invalid JSON payload received")
            return self._send(project, request.headers.get("authorization"), body)

        @app.get("/_fake/messages")
        def messages() -> dict[str, Any]:
            with self._lock:
                return {"count": len(self.messages), "messages": list(self.messages)}

        @app.delete("/_fake/messages")
        def clear_messages() -> dict[str, Any]:
            with self._lock:
                self.messages.clear()
            return {"cleared": True}

        @app.get("/_fake/attempts")
        def attempts() -> dict[str, Any]:
            with self._lock:
                return {"attempts": list(self.attempts)}

        @app.post("/_fake/faults")
        async def add_fault(request: Request) -> JSONResponse:
            body = await request.json()
            try:
                self.add_fault(
                    FcmErrorCode(body["error"]),
                    token=body.get("token"),
                    times=body.get("times", 1),
                    retry_after=body.get("retry_after"),
                )
            except (KeyError, ValueError, TypeError):
                return JSONResponse({"detail": f"error must be one of {[c.value for c in ERRORS]}"}, status_code=422)
            return JSONResponse({"added": True}, status_code=201)

        @app.delete("/_fake/faults")
        def clear_faults() -> dict[str, Any]:
            with self._lock:
                self._faults.clear()
            return {"cleared": True}

        @app.post("/_fake/revoke-access-tokens")
        def revoke() -> dict[str, Any]:
            self.revoke_access_tokens()
            return {"revoked": True}

        @app.get("/_fake/stats")
        def stats() -> dict[str, Any]:
            with self._lock:
                return {
                    "token_requests": self.token_requests,
                    "sends": len(self.attempts),
                    "accepted": len(self.messages),
                }

        return app
