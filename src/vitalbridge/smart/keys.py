"""The hub's RS384 signing keys and their rotation (SPEC §3 "Backend services").

One key set for the whole hub: every EHR registration points at the same JWKS URL. A key's
``kid`` is its RFC 7638 thumbprint (SHA-256 over the required public members), so it is stable
across restarts and anyone can recompute it from the JWKS.

Rotation never breaks a registration: ``rotate`` publishes a ``next`` key beside the ``active``
one and switches signing only after ``VB_KEY_ROTATION_GRACE_S`` (EHRs cache JWKS documents), or
at once with ``immediate``; the replaced key stays published as ``previous`` until ``retire``.
The switch happens lazily, the first time a key is needed after the grace period ends.

Private keys are sealed with the key-encryption key before they touch the database and are
decrypted only in memory, on demand; no function here returns or logs private material.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from joserfc.jwk import RSAKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from vitalbridge.crypto.sealing import Sealer
from vitalbridge.db.base import utcnow
from vitalbridge.errors import ConfigurationError, Conflict, NotFound
from vitalbridge.smart.models import PRIVATE_KEY_PURPOSE, PUBLISHED_STATES, KeyState, SigningKey

SIGNING_ALGORITHM = "RS384"
MIN_KEY_SIZE = 2048


def _for_update(session: Session) -> bool:
    """``FOR UPDATE`` on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers."""
    return session.get_bind().dialect.name == "postgresql"


def _select_keys(session: Session, *states: KeyState) -> list[SigningKey]:
    stmt = select(SigningKey).order_by(SigningKey.created_at)
    if states:
        stmt = stmt.where(SigningKey.state.in_(states))
    if _for_update(session):
        stmt = stmt.with_for_update()
    return list(session.scalars(stmt))


def new_key_pair(key_size: int) -> RSAKey:
    if key_size < MIN_KEY_SIZE:
        raise ConfigurationError(f"RSA keys for RS384 must have at least {MIN_KEY_SIZE} bits, not {key_size}")
    return RSAKey.generate_key(key_size, private=True)


def _store(session: Session, sealer: Sealer, key: RSAKey, state: KeyState, *, now: datetime) -> SigningKey:
    kid = key.thumbprint()
    public = {k: v for k, v in key.as_dict(private=False).items() if k in ("kty", "n", "e")}
    row = SigningKey(
        kid=kid,
        state=state,
        algorithm=SIGNING_ALGORITHM,
        key_size=key.raw_value.key_size,
        public_jwk=public,
        private_key_sealed=sealer.seal(key.as_pem(private=True), PRIVATE_KEY_PURPOSE),
        created_at=now,
        activated_at=now if state is KeyState.active else None,
    )
    session.add(row)
    session.flush()
    return row


def generate_key(session: Session, sealer: Sealer, *, key_size: int = MIN_KEY_SIZE) -> SigningKey:
    """Create the first signing key. With a key already signing, use ``rotate`` instead."""
    now = utcnow()
    promote_due_keys(session, now=now)
    active = _select_keys(session, KeyState.active)
    if active:
        raise Conflict(
            f"key {active[0].kid} is already signing; use `vitalbridge keys rotate` to replace it "
            "without breaking EHR registrations"
        )
    return _store(session, sealer, new_key_pair(key_size), KeyState.active, now=now)


def import_key(session: Session, sealer: Sealer, pem: bytes, *, grace_s: int, immediate: bool = False) -> SigningKey:
    """Bring an existing RSA private key (PEM), e.g. one already registered with an EHR by kid.

    With no key signing yet it becomes the active key; otherwise it is rotated in like a new one.
    """
    try:
        key = RSAKey.import_key(pem)
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not an RSA private key PEM"
        raise ConfigurationError(f"not an RSA private key in PEM form ({type(exc).__name__})") from None
    if not key.is_private:
        raise ConfigurationError("the PEM holds a public key; import the private key")
    if key.raw_value.key_size < MIN_KEY_SIZE:
        raise ConfigurationError(f"RSA keys for RS384 must have at least {MIN_KEY_SIZE} bits")
    now = utcnow()
    promote_due_keys(session, now=now)
    if session.get(SigningKey, key.thumbprint()) is not None:
        raise Conflict(f"key {key.thumbprint()} is already known")
    if _select_keys(session, KeyState.next):
        raise Conflict("a rotation is already pending; finish it (`vitalbridge keys rotate --now`) first")
    if not _select_keys(session, KeyState.active):
        return _store(session, sealer, key, KeyState.active, now=now)
    row = _store(session, sealer, key, KeyState.next, now=now)
    if immediate or grace_s <= 0:
        _switch(session, row, now)
    else:
        row.activate_at = now + timedelta(seconds=grace_s)
    return row


def ensure_signing_key(session: Session, sealer: Sealer, *, key_size: int = MIN_KEY_SIZE) -> SigningKey:
    """The active key, generating one when there is none (used by ``make run``)."""
    promote_due_keys(session, now=utcnow())
    active = _select_keys(session, KeyState.active)
    if active:
        return active[0]
    return _store(session, sealer, new_key_pair(key_size), KeyState.active, now=utcnow())


def _switch(session: Session, new: SigningKey, now: datetime) -> None:
    for old in _select_keys(session, KeyState.active):
        if old.kid != new.kid:
            old.state = KeyState.previous
            old.deactivated_at = now
    # The old key must leave 'active' before the new one enters it (one-active unique index).
    session.flush()
    new.state = KeyState.active
    new.activated_at = now
    new.activate_at = None
    session.flush()


def promote_due_keys(session: Session, *, now: datetime) -> SigningKey | None:
    """Switch signing to a ``next`` key whose grace period has ended; return it if one was."""
    due = [k for k in _select_keys(session, KeyState.next) if k.activate_at is not None and k.activate_at <= now]
    if not due:
        return None
    newest = due[-1]
    _switch(session, newest, now)
    # Older pending keys overtaken by a newer one simply stay published until retired.
    for k in due[:-1]:
        k.state = KeyState.previous
        k.deactivated_at = now
    return newest


def rotate(
    session: Session, sealer: Sealer, *, key_size: int = MIN_KEY_SIZE, grace_s: int, immediate: bool = False
) -> SigningKey:
    """Publish a new key now; it signs after ``grace_s`` seconds, or at once if ``immediate``.

    With a rotation already pending, ``immediate`` switches to the pending key instead of
    creating yet another one (it has been published the longest).
    """
    now = utcnow()
    promote_due_keys(session, now=now)
    pending = _select_keys(session, KeyState.next)
    if pending:
        if not immediate:
            p = pending[-1]
            raise Conflict(
                f"a rotation is already pending: key {p.kid} starts signing at {p.activate_at:%Y-%m-%dT%H:%M:%SZ}; "
                "run `vitalbridge keys rotate --now` to switch to it immediately"
            )
        _switch(session, pending[-1], now)
        return pending[-1]
    if not _select_keys(session, KeyState.active):
        return _store(session, sealer, new_key_pair(key_size), KeyState.active, now=now)
    row = _store(session, sealer, new_key_pair(key_size), KeyState.next, now=now)
    if immediate or grace_s <= 0:
        _switch(session, row, now)
    else:
        row.activate_at = now + timedelta(seconds=grace_s)
    return row


def retire(session: Session, kid: str) -> SigningKey:
    """Stop publishing a key. The signing key (or the last published one) cannot be retired."""
    now = utcnow()
    promote_due_keys(session, now=now)
    keys = {k.kid: k for k in _select_keys(session)}
    row = keys.get(kid)
    if row is None:
        raise NotFound(f"no signing key with kid {kid!r}; `vitalbridge keys list` shows them")
    if row.state is KeyState.retired:
        return row
    if row.state is KeyState.active:
        raise Conflict(
            f"key {kid} is the active signing key; rotate first (`vitalbridge keys rotate --now`), "
            "then retire it once no EHR needs it"
        )
    row.state = KeyState.retired
    row.retired_at = now
    row.activate_at = None
    return row


def list_keys(session: Session) -> list[SigningKey]:
    promote_due_keys(session, now=utcnow())
    return _select_keys(session)


def public_jwk(row: SigningKey) -> dict[str, Any]:
    """The JWKS entry: public members only, plus kid, alg and use (RFC 7517 §4)."""
    return {
        "kty": row.public_jwk["kty"],
        "n": row.public_jwk["n"],
        "e": row.public_jwk["e"],
        "kid": row.kid,
        "alg": row.algorithm,
        "use": "sig",
    }


def published_jwks(session: Session) -> dict[str, list[dict[str, Any]]]:
    stmt = select(SigningKey).where(SigningKey.state.in_(PUBLISHED_STATES)).order_by(SigningKey.created_at)
    return {"keys": [public_jwk(k) for k in session.scalars(stmt)]}


@dataclass(frozen=True)
class LoadedKey:
    """A signing key ready to use. ``key`` holds private material: never log or return it."""

    kid: str
    key: RSAKey = field(repr=False)


class KeyRing:
    """Finds the key that signs now; private keys are opened once per process and kept in memory."""

    def __init__(self, sessions: sessionmaker[Session], sealer: Sealer) -> None:
        self._sessions = sessions
        self._sealer = sealer
        self._cache: dict[str, RSAKey] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KeyRing({len(self._cache)} keys loaded)"

    def signing_key(self) -> LoadedKey:
        with self._sessions() as session, session.begin():
            promote_due_keys(session, now=utcnow())
            active = _select_keys(session, KeyState.active)
            if not active:
                raise ConfigurationError(
                    "the hub has no signing key for private_key_jwt: run `vitalbridge keys generate` and register "
                    "the hub's JWKS URL with the EHR"
                )
            row = active[0]
            kid, sealed = row.kid, row.private_key_sealed
        return LoadedKey(kid, self._open(kid, sealed))

    def key(self, kid: str) -> LoadedKey:
        """A specific published key (e.g. to prove a retired key is refused)."""
        with self._sessions() as session:
            row = session.get(SigningKey, kid)
            if row is None:
                raise NotFound(f"no signing key with kid {kid!r}")
            sealed = row.private_key_sealed
        return LoadedKey(kid, self._open(kid, sealed))

    def _open(self, kid: str, sealed: bytes) -> RSAKey:
        with self._lock:
            cached = self._cache.get(kid)
            if cached is None:
                cached = RSAKey.import_key(self._sealer.open(sealed, PRIVATE_KEY_PURPOSE))
                self._cache[kid] = cached
            return cached
