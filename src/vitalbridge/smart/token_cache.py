"""The shared EHR token cache with single-flight renewal (SPEC §3, DESIGN principle 2).

Tokens live in ``smart_tokens`` (sealed), keyed by (practice, grant kind, scope set), so every
hub process and worker uses the same token. A token is handed out until its renewal time —
``min(VB_TOKEN_RENEW_BEFORE_S, lifetime / 2)`` before the expiry the server announced — and then
exactly one caller renews it:

1. In a short transaction the caller locks the row (``FOR UPDATE`` on PostgreSQL, ``BEGIN
   IMMEDIATE`` on SQLite). A fresh token is returned at once. Otherwise, if no unexpired lease
   exists, the caller writes one (``lease_owner``, ``lease_until``) and commits.
2. The lease holder asks the EHR, with no database lock held during the network call (an open
   SQLite write transaction would stall the whole hub), then stores the result and drops the lease.
3. Everyone else keeps using the current token while it is still valid, or polls the row until
   the holder's token appears — re-reading under the lock each time, so a renewal that finished
   meanwhile is seen (double-checked). A holder that died loses its lease when it expires.

A 401 from the EHR invalidates only the token generation that failed (``invalidate``), so many
workers hitting the same 401 cause one renewal, not many.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from vitalbridge import audit
from vitalbridge.crypto.sealing import Sealer
from vitalbridge.db.base import new_id, utcnow
from vitalbridge.db.locking import for_update, get_or_create_locked
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.ehr.metrics import TOKEN_REQUESTS
from vitalbridge.errors import EhrAuthError, EhrAuthUnavailable, VitalbridgeError
from vitalbridge.smart.backend_status import record_backend_outcome
from vitalbridge.smart.models import (
    ACCESS_TOKEN_PURPOSE,
    REFRESH_TOKEN_PURPOSE,
    EhrToken,
    GrantKind,
    GrantStatus,
)
from vitalbridge.smart.oauth import TokenResponse
from vitalbridge.smart.tokens import EXPIRY_SAFETY_S, STANDALONE_KEY, AccessToken, renew_margin_s, scope_key

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# The current refresh token (standalone grants) or None; returns the EHR's answer.
Fetch = Callable[[str | None], TokenResponse]

ACTOR = audit.Actor.service("smart")


class TokenCache:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        sealer: Sealer,
        *,
        renew_before_s: float = 300.0,
        lease_s: float = 90.0,
        wait_s: float = 120.0,
        clock: Clock = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        poll_s: float = 0.02,
    ) -> None:
        self._sessions = sessions
        self._sealer = sealer
        self.renew_before_s = renew_before_s
        self._lease_s = lease_s
        self._wait_s = wait_s
        self.clock = clock
        self._sleep = sleep
        self._poll_s = poll_s

    def __repr__(self) -> str:
        return "TokenCache()"

    @staticmethod
    def key_for(kind: GrantKind, scopes: Iterable[str]) -> str:
        return STANDALONE_KEY if kind is GrantKind.standalone else scope_key(scopes)

    # -- reading -------------------------------------------------------------------------------

    def _locked_row(
        self, session: Session, conn: PracticeConnection, kind: GrantKind, key: str, scopes: tuple[str, ...]
    ) -> EhrToken:
        stmt = select(EhrToken).where(EhrToken.practice_id == conn.id, EhrToken.kind == kind, EhrToken.scope_key == key)
        if kind is GrantKind.backend:
            return get_or_create_locked(
                session,
                stmt,
                lambda: EhrToken(
                    practice_id=conn.id,
                    kind=kind,
                    scope_key=key,
                    requested_scopes=" ".join(sorted(set(scopes))),
                    generation=0,
                    status=GrantStatus.active,
                ),
            )
        row: EhrToken | None = session.scalar(for_update(session, stmt))
        if row is None:
            raise EhrAuthError(
                f"practice {conn.practice_code} has no standalone (user) authorization; a user must authorize at "
                "GET /api/v1/ecw/auth/authorize/",
                oauth_error="invalid_grant",
            )
        if row.status is GrantStatus.revoked:
            raise EhrAuthError(
                f"the standalone authorization of practice {conn.practice_code} is no longer valid "
                f"({row.status_reason or 'revoked'}); a user must authorize again",
                oauth_error="invalid_grant",
            )
        return row

    def _usable(self, row: EhrToken, now: datetime) -> AccessToken | None:
        if row.access_token_sealed is None or row.expires_at is None:
            return None
        if row.expires_at <= now + timedelta(seconds=EXPIRY_SAFETY_S):
            return None
        lifetime = 0
        if row.obtained_at is not None:
            lifetime = int((row.expires_at - row.obtained_at).total_seconds())
        return AccessToken(
            value=self._sealer.open_text(row.access_token_sealed, ACCESS_TOKEN_PURPOSE),
            token_type=row.token_type or "bearer",
            expires_at=row.expires_at,
            scope=row.granted_scopes or row.requested_scopes,
            generation=row.generation,
            kind=row.kind,
            lifetime_s=lifetime,
        )

    def get(
        self,
        conn: PracticeConnection,
        kind: GrantKind,
        scopes: Iterable[str],
        fetch: Fetch,
        *,
        grant_type: str,
        force: bool = False,
    ) -> AccessToken:
        """A valid token for (practice, kind, scopes), renewing it through ``fetch`` if due.

        ``force`` asks for a new token even if the cached one is fresh (connection tests).
        """
        scope_tuple = tuple(scopes)
        key = self.key_for(kind, scope_tuple)
        deadline = time.monotonic() + self._wait_s
        poll = self._poll_s
        forced_generation: int | None = None
        while True:
            owner: str | None = None
            refresh: str | None = None
            with self._sessions() as session, session.begin():
                now = self.clock()
                row = self._locked_row(session, conn, kind, key, scope_tuple)
                if force and forced_generation is None:
                    forced_generation = row.generation
                current = self._usable(row, now)
                wanted_new = forced_generation is not None and row.generation <= forced_generation
                if current is not None and not wanted_new and row.renew_at is not None and row.renew_at > now:
                    return current
                if row.lease_until is None or row.lease_until <= now:
                    owner = new_id()
                    row.lease_owner = owner
                    row.lease_until = now + timedelta(seconds=self._lease_s)
                    if row.refresh_token_sealed is not None:
                        refresh = self._sealer.open_text(row.refresh_token_sealed, REFRESH_TOKEN_PURPOSE)
                elif current is not None and not wanted_new:
                    # Someone else is renewing; the current token is still good meanwhile.
                    return current
            if owner is None:
                if time.monotonic() >= deadline:
                    raise EhrAuthUnavailable(
                        f"timed out waiting for another hub process to obtain the EHR token of practice "
                        f"{conn.practice_code}"
                    )
                self._sleep(poll)
                poll = min(poll * 1.5, 0.25)
                continue
            # A forced renewal reports its failure; a routine one falls back to the current token.
            fallback = None if forced_generation is not None else current
            return self._renew(conn, kind, key, scope_tuple, owner, refresh, fetch, grant_type, fallback=fallback)

    # -- renewing ------------------------------------------------------------------------------

    def _renew(
        self,
        conn: PracticeConnection,
        kind: GrantKind,
        key: str,
        scopes: tuple[str, ...],
        owner: str,
        refresh: str | None,
        fetch: Fetch,
        grant_type: str,
        *,
        fallback: AccessToken | None,
    ) -> AccessToken:
        started = time.perf_counter()
        try:
            response = fetch(refresh)
        except Exception as exc:
            latency = (time.perf_counter() - started) * 1000
            revoked = self._record_failure(conn, kind, key, owner, exc, grant_type, latency)
            if fallback is not None and not revoked and fallback.expires_at > self.clock():
                log.warning(
                    "token renewal failed for practice %s (%s); the current token stays in use until it expires",
                    conn.practice_code,
                    type(exc).__name__,
                )
                return fallback
            raise
        latency = (time.perf_counter() - started) * 1000
        with self._sessions() as session, session.begin():
            row = self._locked_row(session, conn, kind, key, scopes)
            token = self._store(row, response, self.clock())
            if row.lease_owner == owner:
                row.lease_owner = None
                row.lease_until = None
            if kind is GrantKind.backend:
                record_backend_outcome(session, conn.id, success=True, kid=response.kid)
            TOKEN_REQUESTS.labels(grant_type, "success").inc()
            audit.record(
                session,
                action="ehr.token",
                outcome=audit.Outcome.success,
                actor=ACTOR,
                organization_id=conn.organization_id,
                practice_id=conn.id,
                status_code=200,
                latency_ms=latency,
                detail={"grant_type": grant_type, "kind": kind.value, "kid": response.kid},
            )
        return token

    def _store(self, row: EhrToken, response: TokenResponse, now: datetime) -> AccessToken:
        row.access_token_sealed = self._sealer.seal_text(response.access_token, ACCESS_TOKEN_PURPOSE)
        if response.refresh_token is not None:
            # Refresh tokens rotate (eCW, RFC 6819 §5.2.2.3): the old one is dead once the new one exists.
            row.refresh_token_sealed = self._sealer.seal_text(response.refresh_token, REFRESH_TOKEN_PURPOSE)
        row.token_type = response.token_type
        row.granted_scopes = response.scope
        row.obtained_at = now
        row.expires_at = now + timedelta(seconds=response.expires_in)
        row.renew_at = row.expires_at - timedelta(seconds=renew_margin_s(response.expires_in, self.renew_before_s))
        row.generation = row.generation + 1
        row.status = GrantStatus.active
        row.status_reason = None
        return AccessToken(
            value=response.access_token,
            token_type=response.token_type,
            expires_at=row.expires_at,
            scope=response.scope,
            generation=row.generation,
            kind=row.kind,
            lifetime_s=response.expires_in,
        )

    def _record_failure(
        self,
        conn: PracticeConnection,
        kind: GrantKind,
        key: str,
        owner: str,
        exc: Exception,
        grant_type: str,
        latency_ms: float,
    ) -> bool:
        """Drop the lease and remember why; returns True when a standalone grant is now dead."""
        known = isinstance(exc, VitalbridgeError)
        oauth_error = getattr(exc, "oauth_error", None)
        revoked = kind is GrantKind.standalone and isinstance(exc, EhrAuthError) and not exc.transient
        with self._sessions() as session, session.begin():
            row = session.scalar(
                for_update(
                    session,
                    select(EhrToken).where(
                        EhrToken.practice_id == conn.id, EhrToken.kind == kind, EhrToken.scope_key == key
                    ),
                )
            )
            if row is not None:
                if row.lease_owner == owner:
                    row.lease_owner = None
                    row.lease_until = None
                if revoked:
                    row.status = GrantStatus.revoked
                    row.status_reason = f"{oauth_error or 'refused'}: {exc}"[:500]
                    row.access_token_sealed = None
                    row.refresh_token_sealed = None
                    row.expires_at = None
                    row.renew_at = None
            if kind is GrantKind.backend:
                record_backend_outcome(session, conn.id, success=False, error=exc)
            TOKEN_REQUESTS.labels(grant_type, "failure").inc()
            audit.record(
                session,
                action="ehr.token",
                outcome=audit.Outcome.failure if known else audit.Outcome.error,
                actor=ACTOR,
                organization_id=conn.organization_id,
                practice_id=conn.id,
                status_code=getattr(exc, "status_code", None),
                latency_ms=latency_ms,
                detail={
                    "grant_type": grant_type,
                    "kind": kind.value,
                    "error": exc.error_code if isinstance(exc, VitalbridgeError) else type(exc).__name__,
                    "oauth_error": oauth_error,
                },
            )
        return revoked

    # -- invalidating and clearing -------------------------------------------------------------

    def invalidate(self, conn: PracticeConnection, kind: GrantKind, scopes: Iterable[str], generation: int) -> bool:
        """The EHR refused token ``generation`` (401): make the next ``get`` renew it.

        A newer generation, already fetched by another worker, is left alone.
        """
        key = self.key_for(kind, scopes)
        with self._sessions() as session, session.begin():
            row = session.scalar(
                for_update(
                    session,
                    select(EhrToken).where(
                        EhrToken.practice_id == conn.id, EhrToken.kind == kind, EhrToken.scope_key == key
                    ),
                )
            )
            if row is None or row.generation != generation:
                return False
            row.access_token_sealed = None
            row.expires_at = None
            row.renew_at = None
            return True

    def clear(self, practice_ids: Iterable[str] | None = None) -> int:
        """Forget cached access tokens (``vitalbridge tokens clear``); returns how many.

        Backend tokens are deleted. Standalone grants keep their refresh token — clearing the
        cache must not disconnect a user's authorization — and renew on next use.
        """
        with self._sessions() as session, session.begin():
            ids = list(practice_ids) if practice_ids is not None else None
            stmt = delete(EhrToken).where(EhrToken.kind == GrantKind.backend)
            if ids is not None:
                stmt = stmt.where(EhrToken.practice_id.in_(ids))
            count = int(session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]
            sel = select(EhrToken).where(
                EhrToken.kind == GrantKind.standalone, EhrToken.access_token_sealed.is_not(None)
            )
            if ids is not None:
                sel = sel.where(EhrToken.practice_id.in_(ids))
            for row in session.scalars(for_update(session, sel)):
                row.access_token_sealed = None
                row.expires_at = None
                row.renew_at = None
                count += 1
            return count

    # -- standalone grants ---------------------------------------------------------------------

    def save_standalone_grant(
        self,
        session: Session,
        conn: PracticeConnection,
        response: TokenResponse,
        *,
        requested_scopes: str,
        authorized_by: str,
        token_url: str,
    ) -> EhrToken:
        """Store (replace) the practice's standalone grant after a successful code exchange."""
        row = get_or_create_locked(
            session,
            select(EhrToken).where(
                EhrToken.practice_id == conn.id,
                EhrToken.kind == GrantKind.standalone,
                EhrToken.scope_key == STANDALONE_KEY,
            ),
            lambda: EhrToken(
                practice_id=conn.id,
                kind=GrantKind.standalone,
                scope_key=STANDALONE_KEY,
                requested_scopes=requested_scopes,
                generation=0,
                status=GrantStatus.active,
            ),
        )
        row.requested_scopes = requested_scopes
        row.refresh_token_sealed = None
        row.authorized_by = authorized_by
        row.token_url = token_url
        row.lease_owner = None
        row.lease_until = None
        self._store(row, response, self.clock())
        return row
