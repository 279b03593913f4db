"""Firebase Cloud Messaging HTTP v1 client (SPEC §8): service-account OAuth2 and ``messages:send``.

Authentication is the OAuth 2.0 JWT bearer grant (RFC 7523 §2.1) that Google uses for service
accounts: an RS256-signed assertion (Google accepts no other algorithm here) with ``iss`` =
the account's ``client_email``, ``scope`` = firebase.messaging, ``aud`` = the file's ``token_uri``,
``iat``/``exp`` (at most one hour), posted as ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``.
The access token is cached until five minutes before it expires; one refresh at a time.

Sending is ``POST {endpoint}/v1/projects/{project}/messages:send`` with ``{"message": …}`` built by
``notify.sanitizer``. Answers are classified by FCM's documented error codes — the ``errorCode``
of the ``google.firebase.fcm.v1.FcmError`` entry in ``error.details`` — into a ``SendOutcome``:

    200                              sent            (FCM's message name kept)
    404 UNREGISTERED                 prune_token     the app instance is gone
    400 INVALID_ARGUMENT + FcmError  prune_token     the token is malformed or not a token
    400 INVALID_ARGUMENT, BadRequest permanent       our message is wrong (field named), a defect
    429 QUOTA_EXCEEDED               retry           honouring Retry-After
    503 UNAVAILABLE, 500 INTERNAL    retry           honouring Retry-After, else backoff
    403 SENDER_ID_MISMATCH           permanent       token of another Firebase project
    401 THIRD_PARTY_AUTH_ERROR       permanent       APNs / web push credentials refused
    401 (no FcmError)                refresh the access token once, then as above
    network error, other 5xx         retry

This module imports no web framework and no database: bytes and dicts in, results out.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey

from vitalbridge.errors import ConfigurationError
from vitalbridge.notify.codes import FcmErrorCode, SendOutcome
from vitalbridge.notify.metrics import FCM_TOKEN_REFRESHES

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_ALG = "RS256"
ASSERTION_LIFETIME_S = 3600  # Google's maximum
RENEW_BEFORE_S = 300
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
_FIELD_PATH = re.compile(r"^[A-Za-z0-9_.\[\]\-]{1,100}$")
_MAX_RETRY_AFTER_S = 3600.0


@dataclass(frozen=True)
class ServiceAccount:
    """The fields of a Google service-account JSON file that the sender uses."""

    client_email: str
    private_key_id: str
    token_uri: str
    project_id: str
    private_key: RSAKey = field(repr=False)

    @classmethod
    def load(cls, path: Path) -> ServiceAccount:
        """Read and check the file; errors name the file and the field, never key material."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"VB_FCM_CREDENTIALS_FILE {path}: cannot read it ({exc.strerror})") from None
        except ValueError:
            raise ConfigurationError(f"VB_FCM_CREDENTIALS_FILE {path}: not JSON") from None
        if not isinstance(data, dict):
            raise ConfigurationError(f"VB_FCM_CREDENTIALS_FILE {path}: not a service-account object")
        if data.get("type", "service_account") != "service_account":
            raise ConfigurationError(f"VB_FCM_CREDENTIALS_FILE {path}: type is not service_account")
        missing = [k for k in ("client_email", "private_key", "token_uri") if not isinstance(data.get(k), str)]
        if missing:
            raise ConfigurationError(f"VB_FCM_CREDENTIALS_FILE {path}: missing {', '.join(missing)}")
        try:
            key = RSAKey.import_key(data["private_key"])
        except Exception:  # noqa: BLE001 - joserfc raises several types; the key text must not surface
            raise ConfigurationError(f"VB_FCM_CREDENTIALS_FILE {path}: private_key is not an RSA private key") from None
        if not key.is_private:
            raise ConfigurationError(f"VB_FCM_CREDENTIALS_FILE {path}: private_key holds no private key")
        return cls(
            client_email=data["client_email"],
            private_key_id=str(data.get("private_key_id") or ""),
            token_uri=data["token_uri"],
            project_id=str(data.get("project_id") or ""),
            private_key=key,
        )

    def assertion(self, now: float) -> str:
        """RFC 7523 §2.1 assertion. A credential for an hour: never logged or stored."""
        iat = int(now)
        header: dict[str, Any] = {"alg": ASSERTION_ALG, "typ": "JWT"}
        if self.private_key_id:
            header["kid"] = self.private_key_id
        claims = {
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME_S,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(header, claims, self.private_key, algorithms=[ASSERTION_ALG])


class FcmAuthError(Exception):
    """The token endpoint refused or failed. ``transient``: worth retrying later."""

    def __init__(self, message: str, *, transient: bool, status_code: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status_code = status_code


class AccessTokens:
    """Google OAuth2 access tokens for one service account, cached until shortly before expiry.

    A lock makes concurrent senders in one process share one refresh. Google does not meter
    token requests the way eCW does, so each worker process keeping its own token is fine.
    """

    def __init__(self, account: ServiceAccount, *, clock: Any = time.time) -> None:
        self._account = account
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.refreshes = 0

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def get(self, client: httpx.Client) -> str:
        with self._lock:
            now = self._clock()
            if self._token is not None and now < self._renew_at:
                return self._token
            token, expires_in = self._fetch(client, now)
            self._token = token
            # Renew five minutes early; a short-lived token is renewed at half its life.
            self._renew_at = now + max(expires_in - RENEW_BEFORE_S, expires_in / 2)
            self.refreshes += 1
            FCM_TOKEN_REFRESHES.inc()
            return token

    def _fetch(self, client: httpx.Client, now: float) -> tuple[str, float]:
        form = {"grant_type": JWT_BEARER_GRANT, "assertion": self._account.assertion(now)}
        try:
            resp = client.post(self._account.token_uri, data=form, headers={"Accept": "application/json"})
        except httpx.TransportError as exc:
            raise FcmAuthError(f"token endpoint unreachable ({type(exc).__name__})", transient=True) from None
        body = _json(resp)
        if resp.status_code == 200 and isinstance(body.get("access_token"), str) and body["access_token"]:
            try:
                expires_in = float(body.get("expires_in", 3600))
            except (TypeError, ValueError):
                expires_in = 3600.0
            return body["access_token"], max(expires_in, 1.0)
        error = str(body.get("error") or "")[:64]
        if resp.status_code >= 500 or resp.status_code == 429:
            raise FcmAuthError(
                f"token endpoint answered {resp.status_code}", transient=True, status_code=resp.status_code
            )
        hint = {
            "invalid_grant": "check the hub's clock (NTP) and that the service-account key was not deleted",
            "invalid_client": "the service account is disabled or deleted in the Google Cloud project",
            "unauthorized_client": "the service account may not use this grant",
        }.get(error, "check VB_FCM_CREDENTIALS_FILE")
        raise FcmAuthError(
            f"token endpoint refused the service account ({resp.status_code} {error or 'no error code'}): {hint}",
            transient=False,
            status_code=resp.status_code,
        )


@dataclass(frozen=True)
class SendResult:
    outcome: SendOutcome
    status_code: int | None = None
    error_code: str | None = None  # FcmErrorCode value, the google.rpc status, or our own code
    retry_after_s: float | None = None
    message_name: str | None = None
    # For operators: what to fix. Codes and field paths only, never the token or payload.
    operator_message: str | None = None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped at an hour."""
    if not value:
        return None
    value = value.strip()
    seconds: float
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_S)


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _details(body: dict[str, Any]) -> tuple[str | None, list[str]]:
    """The FcmError code and the BadRequest field paths of a v1 error body."""
    error = body.get("error")
    details = error.get("details") if isinstance(error, dict) else None
    code: str | None = None
    fields: list[str] = []
    for item in details if isinstance(details, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("@type") == FCM_ERROR_TYPE and isinstance(item.get("errorCode"), str):
            code = item["errorCode"]
        elif item.get("@type") == BAD_REQUEST_TYPE:
            for violation in item.get("fieldViolations") or []:
                path = violation.get("field") if isinstance(violation, dict) else None
                if isinstance(path, str) and _FIELD_PATH.match(path):
                    fields.append(path)
    return code, fields


def classify(status: int, body: dict[str, Any], retry_after: str | None, *, project_id: str) -> SendResult:
    """One FCM v1 answer → what to do about it (SPEC §8; FCM's error-code reference)."""
    if status == 200:
        name = body.get("name")
        return SendResult(SendOutcome.sent, 200, message_name=name if isinstance(name, str) else None)
    code, fields = _details(body)
    error = body.get("error")
    rpc_status = error.get("status") if isinstance(error, dict) else None
    wait = parse_retry_after(retry_after)
    known = code if code in FcmErrorCode.__members__ else None
    label = known or (rpc_status if isinstance(rpc_status, str) and rpc_status.isupper() else None) or f"HTTP_{status}"
    if known == FcmErrorCode.UNREGISTERED or (status == 404 and known is None):
        return SendResult(SendOutcome.prune_token, status, FcmErrorCode.UNREGISTERED.value)
    if status == 400 or known == FcmErrorCode.INVALID_ARGUMENT:
        other_fields = [f for f in fields if f != "message.token"]
        if known == FcmErrorCode.INVALID_ARGUMENT and not other_fields:
            return SendResult(SendOutcome.prune_token, status, FcmErrorCode.INVALID_ARGUMENT.value)
        return SendResult(
            SendOutcome.permanent,
            status,
            label,
            operator_message=(
                "FCM refused the message itself"
                + (f" (fields {', '.join(other_fields[:5])})" if other_fields else "")
                + ": a defect in vitalbridge's message builder — please report it"
            ),
        )
    if known == FcmErrorCode.SENDER_ID_MISMATCH:
        return SendResult(
            SendOutcome.permanent,
            status,
            known,
            operator_message=(
                f"the device token belongs to another Firebase project than {project_id!r}: the mobile app "
                "and VB_FCM_CREDENTIALS_FILE / VB_FCM_PROJECT_ID must use the same Firebase project"
            ),
        )
    if known == FcmErrorCode.THIRD_PARTY_AUTH_ERROR:
        return SendResult(
            SendOutcome.permanent,
            status,
            known,
            operator_message=(
                "FCM could not authenticate to Apple's push service (APNs) or web push: upload a valid "
                "APNs authentication key or certificate in the Firebase console (Project settings → Cloud Messaging)"
            ),
        )
    if known in (FcmErrorCode.QUOTA_EXCEEDED, FcmErrorCode.UNAVAILABLE, FcmErrorCode.INTERNAL):
        return SendResult(SendOutcome.retry, status, known, retry_after_s=wait)
    if status == 429 or status >= 500:
        return SendResult(SendOutcome.retry, status, label, retry_after_s=wait)
    if status == 403:
        return SendResult(
            SendOutcome.permanent,
            status,
            label,
            operator_message=(
                f"the service account may not send for project {project_id!r}: enable the Firebase Cloud "
                "Messaging API and grant the account the Firebase Cloud Messaging API Admin role"
            ),
        )
    return SendResult(
        SendOutcome.permanent, status, label, operator_message=f"FCM answered {status} {label}; see FCM's error codes"
    )


class FcmSender:
    """Sends sanitized messages to FCM. Thread-safe; one per hub process."""

    def __init__(
        self,
        account: ServiceAccount,
        *,
        endpoint: str = "https://fcm.googleapis.com",
        project_id: str = "",
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.account = account
        self.project_id = project_id or account.project_id
        if not self.project_id:
            raise ConfigurationError("no Firebase project id: set VB_FCM_PROJECT_ID or project_id in the credentials")
        self.url = f"{endpoint.rstrip('/')}/v1/projects/{self.project_id}/messages:send"
        self.tokens = AccessTokens(account)
        self._client = httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False)

    def close(self) -> None:
        self._client.close()

    def send(self, message: dict[str, Any]) -> SendResult:
        """One attempt (plus one access-token refresh if FCM calls ours stale)."""
        for refreshed in (False, True):
            try:
                access = self.tokens.get(self._client)
            except FcmAuthError as exc:
                outcome = SendOutcome.retry if exc.transient else SendOutcome.permanent
                return SendResult(outcome, exc.status_code, "OAUTH_TOKEN", operator_message=str(exc))
            try:
                resp = self._client.post(self.url, json=message, headers={"Authorization": f"Bearer {access}"})
            except httpx.TransportError as exc:
                return SendResult(SendOutcome.retry, None, f"NETWORK_{type(exc).__name__}"[:64])
            body = _json(resp)
            code, _fields = _details(body)
            if resp.status_code == 401 and code != FcmErrorCode.THIRD_PARTY_AUTH_ERROR and not refreshed:
                # Our access token was revoked or expired early: fetch a new one once.
                self.tokens.invalidate()
                continue
            if resp.status_code == 401 and code != FcmErrorCode.THIRD_PARTY_AUTH_ERROR:
                return SendResult(
                    SendOutcome.permanent,
                    401,
                    "UNAUTHENTICATED",
                    operator_message="FCM refused a fresh access token: check the service account's roles",
                )
            return classify(resp.status_code, body, resp.headers.get("retry-after"), project_id=self.project_id)
        raise AssertionError("unreachable")  # pragma: no cover
