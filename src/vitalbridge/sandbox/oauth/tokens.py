"""Issued credentials: access tokens, authorization codes, grants with rotating refresh tokens,
and the assertion ``jti`` replay cache (RFC 6749 §4.1/§6/§10.4, RFC 7009, RFC 7523 §3).

Tokens are opaque random strings; only their SHA-256 digests are kept, so a dump of the
sandbox's memory or a debug print never shows a usable token. A grant is what a user's consent
created: it owns the current refresh token and every access token issued under it. Presenting
an already-rotated refresh token is treated as theft (RFC 6819 §5.2.2.3): the grant is revoked.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field

from vitalbridge.sandbox.errors import InvalidGrant


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class AccessToken:
    client_id: str
    practices: frozenset[str]
    scopes: tuple[str, ...]
    expires_at: float
    grant_id: str | None = None
    patient: str | None = None  # launch patient for patient/ scopes


@dataclass
class Grant:
    id: str
    client_id: str
    practice: str
    scopes: tuple[str, ...]
    patient: str | None
    expires_at: float  # refresh tokens stop working then: re-consent needed
    revoked: bool = False
    current_refresh: str | None = None  # digest
    rotated: set[str] = field(default_factory=set)  # digests of refresh tokens already used


@dataclass
class AuthorizationCode:
    client_id: str
    redirect_uri: str
    code_challenge: str
    practice: str
    scopes: tuple[str, ...]
    patient: str | None
    expires_at: float
    used: bool = False
    grant_id: str | None = None


@dataclass(frozen=True)
class PendingAuthorization:
    """A validated authorization request waiting for the user's answer on the consent page."""

    client_id: str
    redirect_uri: str
    state: str
    scopes: tuple[str, ...]
    practice: str
    code_challenge: str
    patient: str | None
    expires_at: float


class TokenStore:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._access: dict[str, AccessToken] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._grants: dict[str, Grant] = {}
        self._refresh: dict[str, str] = {}  # refresh digest -> grant id
        self._jti: dict[tuple[str, str], float] = {}
        self._pending: dict[str, PendingAuthorization] = {}
        self._issued = 0

    # -- access tokens -------------------------------------------------------------------------

    def issue_access(self, token: AccessToken) -> str:
        raw = secrets.token_urlsafe(32)
        with self._lock:
            self._access[_digest(raw)] = token
            self._issued += 1
            if self._issued % 256 == 0:
                self._purge(time.time())
        return raw

    def active_access(self, raw: str) -> AccessToken | None:
        """The token if it is known, unexpired, and its grant (if any) is still alive."""
        token = self._access.get(_digest(raw))
        if token is None or token.expires_at <= time.time():
            return None
        if token.grant_id is not None:
            grant = self._grants.get(token.grant_id)
            if grant is None or grant.revoked:
                return None
        return token

    def revoke_access(self, raw: str, client_id: str) -> bool:
        """Forget an access token of ``client_id``; False when it belongs to another client."""
        with self._lock:
            digest = _digest(raw)
            token = self._access.get(digest)
            if token is None:
                return True
            if token.client_id != client_id:
                return False
            del self._access[digest]
            return True

    # -- authorization codes -------------------------------------------------------------------

    def issue_code(self, code: AuthorizationCode) -> str:
        raw = secrets.token_urlsafe(32)
        with self._lock:
            self._codes[_digest(raw)] = code
        return raw

    def peek_code(self, raw: str) -> AuthorizationCode | None:
        return self._codes.get(_digest(raw))

    def redeem_code(self, raw: str) -> AuthorizationCode:
        """Mark a code used and return it. A second redemption revokes the first one's grant."""
        with self._lock:
            code = self._codes.get(_digest(raw))
            if code is None:
                raise InvalidGrant("the authorization code is unknown; codes are single-use and short-lived")
            if code.used:
                # RFC 6749 §4.1.2: a replayed code should revoke what it already produced.
                if code.grant_id is not None:
                    self.revoke_grant(code.grant_id)
                raise InvalidGrant("the authorization code was already used; its tokens have been revoked")
            if code.expires_at <= time.time():
                raise InvalidGrant("the authorization code expired; start the authorization again")
            code.used = True
            return code

    def hold_pending(self, pending: PendingAuthorization) -> str:
        request_id = secrets.token_urlsafe(16)
        with self._lock:
            now = time.time()
            self._pending = {k: v for k, v in self._pending.items() if v.expires_at > now}
            self._pending[request_id] = pending
        return request_id

    def take_pending(self, request_id: str) -> PendingAuthorization | None:
        """The pending request, once: a consent answer cannot be replayed."""
        with self._lock:
            pending = self._pending.pop(request_id, None)
        return pending if pending is not None and pending.expires_at > time.time() else None

    # -- grants and refresh tokens -------------------------------------------------------------

    def create_grant(self, code: AuthorizationCode, lifetime_s: int) -> Grant:
        grant = Grant(
            id=secrets.token_hex(8),
            client_id=code.client_id,
            practice=code.practice,
            scopes=code.scopes,
            patient=code.patient,
            expires_at=time.time() + lifetime_s,
        )
        with self._lock:
            self._grants[grant.id] = grant
            code.grant_id = grant.id
        return grant

    def issue_refresh(self, grant: Grant) -> str:
        raw = secrets.token_urlsafe(32)
        digest = _digest(raw)
        with self._lock:
            if grant.current_refresh is not None:
                grant.rotated.add(grant.current_refresh)
            grant.current_refresh = digest
            self._refresh[digest] = grant.id
        return raw

    def grant_for_refresh(self, raw: str, client_id: str) -> Grant:
        """The live grant behind a refresh token that is current (not rotated) and ``client_id``'s."""
        with self._lock:
            digest = _digest(raw)
            grant = self._grants.get(self._refresh.get(digest, ""))
            if grant is None:
                raise InvalidGrant("the refresh token is unknown")
            if grant.client_id != client_id:
                raise InvalidGrant("the refresh token was issued to another client")
            if grant.revoked:
                raise InvalidGrant("the grant behind this refresh token was revoked; the user must authorize again")
            if digest in grant.rotated:
                self.revoke_grant(grant.id)
                raise InvalidGrant(
                    "this refresh token was already exchanged (tokens rotate on every refresh); "
                    "the whole grant is now revoked and the user must authorize again"
                )
            if grant.expires_at <= time.time():
                raise InvalidGrant("the refresh token expired; the user must authorize again")
            return grant

    def grant_by_refresh(self, raw: str) -> Grant | None:
        return self._grants.get(self._refresh.get(_digest(raw), ""))

    def revoke_grant(self, grant_id: str) -> None:
        with self._lock:
            grant = self._grants.get(grant_id)
            if grant is not None:
                grant.revoked = True

    # -- assertion replay cache ----------------------------------------------------------------

    def remember_jti(self, client_id: str, jti: str, expires_at: float) -> bool:
        """Record a client assertion's jti until it expires; False if it was seen before."""
        with self._lock:
            now = time.time()
            key = (client_id, jti)
            seen_until = self._jti.get(key)
            if seen_until is not None and seen_until > now:
                return False
            self._jti[key] = expires_at
            return True

    # -- housekeeping --------------------------------------------------------------------------

    def _purge(self, now: float) -> None:
        self._access = {k: v for k, v in self._access.items() if v.expires_at > now}
        self._codes = {k: v for k, v in self._codes.items() if v.expires_at > now - 3600}
        self._jti = {k: v for k, v in self._jti.items() if v > now}

    def clear(self) -> None:
        with self._lock:
            self._access.clear()
            self._codes.clear()
            self._grants.clear()
            self._refresh.clear()
            self._jti.clear()
            self._pending.clear()
