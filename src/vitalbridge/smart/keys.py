"""The hub's RS384 signing keys and their rotation (SPEC §3 "Backend services").

Each organization has its own key set, published at ``/.well-known/jwks/{organization id}.json``,
and its practices sign with it: an EHR registration that names that URL accepts assertions of no
other organization (issue 10: with one hub-wide set, any organization could register another's
client id and sign for it). The hub-wide set (``organization_id`` NULL, ``/.well-known/jwks.json``)
remains for a single-tenant hub and for practices registered before key sets existed. A key's
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
from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
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


def _in_set(organization_id: str | None) -> ColumnElement[bool]:
    if organization_id is None:
        return SigningKey.organization_id.is_(None)
    return SigningKey.organization_id == organization_id


def _select_keys(session: Session, organization_id: str | None, *states: KeyState) -> list[SigningKey]:
    stmt = select(SigningKey).where(_in_set(organization_id)).order_by(SigningKey.created_at)
    if states:
        stmt = stmt.where(SigningKey.state.in_(states))
    if _for_update(session):
        stmt = stmt.with_for_update()
    return list(session.scalars(stmt))


def new_key_pair(key_size: int) -> RSAKey:
    if key_size < MIN_KEY_SIZE:
        raise ConfigurationError(f"RSA keys for RS384 must have at least {MIN_KEY_SIZE} bits, not {key_size}")
    return RSAKey.generate_key(key_size, private=True)


def _store(
    session: Session,
    sealer: Sealer,
    key: RSAKey,
    state: KeyState,
    *,
    now: datetime,
    organization_id: str | None,
) -> SigningKey:
    kid = key.thumbprint()
    public = {k: v for k, v in key.as_dict(private=False).items() if k in ("kty", "n", "e")}
    row = SigningKey(
        kid=kid,
        organization_id=organization_id,
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


def _org_flag(organization_id: str | None) -> str:
    """The CLI flag naming a key set, for messages that tell the operator what to run."""
    return f" --org {organization_id}" if organization_id else ""


def generate_key(
    session: Session, sealer: Sealer, *, key_size: int = MIN_KEY_SIZE, organization_id: str | None = None
) -> SigningKey:
    """Create a key set's first signing key. With a key already signing, use ``rotate`` instead."""
    now = utcnow()
    promote_due_keys(session, now=now, organization_id=organization_id)
    active = _select_keys(session, organization_id, KeyState.active)
    if active:
        raise Conflict(
            f"key {active[0].kid} is already signing; use `vitalbridge keys rotate{_org_flag(organization_id)}` "
            "to replace it without breaking EHR registrations"
        )
    return _store(session, sealer, new_key_pair(key_size), KeyState.active, now=now, organization_id=organization_id)


def import_key(
    session: Session,
    sealer: Sealer,
    pem: bytes,
    *,
    grace_s: int,
    immediate: bool = False,
    organization_id: str | None = None,
) -> SigningKey:
    """Bring an existing RSA private key (PEM), e.g. one already registered with an EHR by kid.

    With no key signing yet it becomes the active key; otherwise it is rotated in like a new one.
    A key already held by any key set is refused: one private key never serves two organizations.
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
    promote_due_keys(session, now=now, organization_id=organization_id)
    if session.get(SigningKey, key.thumbprint()) is not None:
        raise Conflict(f"key {key.thumbprint()} is already known")
    if _select_keys(session, organization_id, KeyState.next):
        raise Conflict(
            f"a rotation is already pending; finish it (`vitalbridge keys rotate --now{_org_flag(organization_id)}`) "
            "first"
        )
    if not _select_keys(session, organization_id, KeyState.active):
        return _store(session, sealer, key, KeyState.active, now=now, organization_id=organization_id)
    row = _store(session, sealer, key, KeyState.next, now=now, organization_id=organization_id)
    if immediate or grace_s <= 0:
        _switch(session, row, now)
    else:
        row.activate_at = now + timedelta(seconds=grace_s)
    return row


def ensure_signing_key(
    session: Session, sealer: Sealer, *, key_size: int = MIN_KEY_SIZE, organization_id: str | None = None
) -> SigningKey:
    """The key set's active key, generating one when there is none (``make run``, first use)."""
    promote_due_keys(session, now=utcnow(), organization_id=organization_id)
    active = _select_keys(session, organization_id, KeyState.active)
    if active:
        return active[0]
    pair = new_key_pair(key_size)
    try:
        with session.begin_nested():
            return _store(session, sealer, pair, KeyState.active, now=utcnow(), organization_id=organization_id)
    except IntegrityError:
        # Another process created the set's first key at the same moment (one-active index):
        # use that one, so two first requests never fail or sign with different keys.
        active = _select_keys(session, organization_id, KeyState.active)
        if not active:
            raise
        return active[0]


def _switch(session: Session, new: SigningKey, now: datetime) -> None:
    for old in _select_keys(session, new.organization_id, KeyState.active):
        if old.kid != new.kid:
            old.state = KeyState.previous
            old.deactivated_at = now
    # The old key must leave 'active' before the new one enters it (one-active unique index).
    session.flush()
    new.state = KeyState.active
    new.activated_at = now
    new.activate_at = None
    session.flush()


def promote_due_keys(session: Session, *, now: datetime, organization_id: str | None = None) -> SigningKey | None:
    """Switch signing to a ``next`` key whose grace period has ended; return it if one was."""
    due = [
        k
        for k in _select_keys(session, organization_id, KeyState.next)
        if k.activate_at is not None and k.activate_at <= now
    ]
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
    session: Session,
    sealer: Sealer,
    *,
    key_size: int = MIN_KEY_SIZE,
    grace_s: int,
    immediate: bool = False,
    organization_id: str | None = None,
) -> SigningKey:
    """Publish a new key now; it signs after ``grace_s`` seconds, or at once if ``immediate``.

    With a rotation already pending, ``immediate`` switches to the pending key instead of
    creating yet another one (it has been published the longest).
    """
    now = utcnow()
    promote_due_keys(session, now=now, organization_id=organization_id)
    pending = _select_keys(session, organization_id, KeyState.next)
    if pending:
        if not immediate:
            p = pending[-1]
            raise Conflict(
                f"a rotation is already pending: key {p.kid} starts signing at {p.activate_at:%Y-%m-%dT%H:%M:%SZ}; "
                f"run `vitalbridge keys rotate --now{_org_flag(organization_id)}` to switch to it immediately"
            )
        _switch(session, pending[-1], now)
        return pending[-1]
    if not _select_keys(session, organization_id, KeyState.active):
        return _store(
            session, sealer, new_key_pair(key_size), KeyState.active, now=now, organization_id=organization_id
        )
    row = _store(session, sealer, new_key_pair(key_size), KeyState.next, now=now, organization_id=organization_id)
    if immediate or grace_s <= 0:
        _switch(session, row, now)
    else:
        row.activate_at = now + timedelta(seconds=grace_s)
    return row


def retire(session: Session, kid: str, *, organization_id: str | None = None) -> SigningKey:
    """Stop publishing a key. The signing key (or the last published one) cannot be retired."""
    now = utcnow()
    promote_due_keys(session, now=now, organization_id=organization_id)
    keys = {k.kid: k for k in _select_keys(session, organization_id)}
    row = keys.get(kid)
    if row is None:
        raise NotFound(
            f"no signing key with kid {kid!r} in this key set; `vitalbridge keys list{_org_flag(organization_id)}` "
            "shows them"
        )
    if row.state is KeyState.retired:
        return row
    if row.state is KeyState.active:
        raise Conflict(
            f"key {kid} is the active signing key; rotate first (`vitalbridge keys rotate --now"
            f"{_org_flag(organization_id)}`), then retire it once no EHR needs it"
        )
    row.state = KeyState.retired
    row.retired_at = now
    row.activate_at = None
    return row


def list_keys(session: Session, *, organization_id: str | None = None) -> list[SigningKey]:
    promote_due_keys(session, now=utcnow(), organization_id=organization_id)
    return _select_keys(session, organization_id)


def active_kid(session: Session, organization_id: str | None) -> str | None:
    return session.scalar(select(SigningKey.kid).where(_in_set(organization_id), SigningKey.state == KeyState.active))


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


def published_jwks(session: Session, organization_id: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """One key set's published keys; never another set's (each EHR registration trusts one set)."""
    stmt = (
        select(SigningKey)
        .where(_in_set(organization_id), SigningKey.state.in_(PUBLISHED_STATES))
        .order_by(SigningKey.created_at)
    )
    return {"keys": [public_jwk(k) for k in session.scalars(stmt)]}


@dataclass(frozen=True)
class LoadedKey:
    """A signing key ready to use. ``key`` holds private material: never log or return it."""

    kid: str
    key: RSAKey = field(repr=False)


class KeyRing:
    """Finds the key that signs now; private keys are opened once per process and kept in memory.

    An organization's key set gets its first key on first use (published in the same committed
    transaction, before any assertion signed with it leaves the hub); the hub-wide set never
    does: it exists only when an operator creates it.
    """

    def __init__(self, sessions: sessionmaker[Session], sealer: Sealer, *, key_size: int = MIN_KEY_SIZE) -> None:
        self._sessions = sessions
        self._sealer = sealer
        self._key_size = key_size
        self._cache: dict[str, RSAKey] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KeyRing({len(self._cache)} keys loaded)"

    def signing_key(self, organization_id: str | None = None) -> LoadedKey:
        with self._sessions() as session, session.begin():
            if organization_id is not None:
                row = ensure_signing_key(
                    session, self._sealer, key_size=self._key_size, organization_id=organization_id
                )
            else:
                promote_due_keys(session, now=utcnow())
                active = _select_keys(session, None, KeyState.active)
                if not active:
                    raise ConfigurationError(
                        "the hub-wide key set has no signing key for private_key_jwt: run `vitalbridge keys generate`, "
                        "or move the practice to its organization's key set (`vitalbridge practices edit "
                        "--key-set organization`)"
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
