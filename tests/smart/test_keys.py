"""Signing keys: RFC 7638 kids, the JWKS document, rotation states, sealing at rest (SPEC §3)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta

import httpx
import pytest
from joserfc.jwk import RSAKey
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from tests.support import api_client
from vitalbridge.crypto.sealing import Sealer
from vitalbridge.db.base import utcnow
from vitalbridge.errors import ConfigurationError, Conflict, NotFound
from vitalbridge.runtime import Hub, build_hub
from vitalbridge.settings import Settings
from vitalbridge.smart import keys
from vitalbridge.smart.models import PRIVATE_KEY_PURPOSE, KeyState, SigningKey

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def rfc7638_thumbprint(jwk: dict[str, str]) -> str:
    """Computed here independently of joserfc: SHA-256 of the required members in lexical order."""
    canonical = json.dumps({"e": jwk["e"], "kty": jwk["kty"], "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def states(hub: Hub) -> dict[str, KeyState]:
    with hub.sessions() as session:
        return {k.kid: k.state for k in session.scalars(select(SigningKey))}


def test_generate_kid_is_rfc7638_thumbprint_and_jwks_is_public_only(hub: Hub) -> None:
    with hub.sessions() as session, session.begin():
        row = keys.generate_key(session, hub.sealer)
        kid = row.kid
    with api_client(hub) as api:
        resp = api.get("/.well-known/jwks.json")
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == f"public, max-age={hub.settings.jwks_max_age_s}"
    document = resp.json()
    assert list(document) == ["keys"]
    [jwk] = document["keys"]
    assert set(jwk) == {"kty", "n", "e", "kid", "alg", "use"}
    assert not PRIVATE_MEMBERS & set(jwk)
    assert (jwk["kty"], jwk["alg"], jwk["use"], jwk["kid"]) == ("RSA", "RS384", "sig", kid)
    assert rfc7638_thumbprint(jwk) == kid
    public = RSAKey.import_key(jwk)  # type: ignore[arg-type]
    assert public.raw_value.key_size >= 2048
    assert not public.is_private


def test_jwks_is_stable_across_restarts(settings: Settings) -> None:
    first = build_hub(settings)
    try:
        with first.sessions() as session, session.begin():
            keys.generate_key(session, first.sealer)
        with api_client(first) as api:
            before = api.get("/.well-known/jwks.json").json()
    finally:
        first.close()
    second = build_hub(settings)
    try:
        with api_client(second) as api:
            assert api.get("/.well-known/jwks.json").json() == before
        loaded = keys.KeyRing(second.sessions, second.sealer).signing_key()
        assert loaded.kid == before["keys"][0]["kid"]
    finally:
        second.close()


def test_small_keys_and_a_second_generate_are_refused(hub: Hub) -> None:
    with hub.sessions() as session, session.begin(), pytest.raises(ConfigurationError, match="at least 2048"):
        keys.generate_key(session, hub.sealer, key_size=1024)
    with hub.sessions() as session, session.begin():
        keys.generate_key(session, hub.sealer)
    with hub.sessions() as session, session.begin(), pytest.raises(Conflict, match="keys rotate"):
        keys.generate_key(session, hub.sealer)


def test_rotation_publishes_first_switches_later_and_retire_is_separate(hub: Hub) -> None:
    ring = keys.KeyRing(hub.sessions, hub.sealer)
    with hub.sessions() as session, session.begin():
        old = keys.generate_key(session, hub.sealer).kid
    with hub.sessions() as session, session.begin():
        new = keys.rotate(session, hub.sealer, grace_s=3600).kid
    # Grace period: both published, the old key still signs.
    assert states(hub) == {old: KeyState.active, new: KeyState.next}
    assert ring.signing_key().kid == old
    with hub.sessions() as session:
        assert {k["kid"] for k in keys.published_jwks(session)["keys"]} == {old, new}
    with hub.sessions() as session, session.begin(), pytest.raises(Conflict, match="already pending"):
        keys.rotate(session, hub.sealer, grace_s=3600)

    # The grace period ends: signing switches lazily, the old key stays published.
    with hub.sessions() as session, session.begin():
        promoted = keys.promote_due_keys(session, now=utcnow() + timedelta(seconds=3601))
        assert promoted is not None
        assert promoted.kid == new
    assert states(hub) == {old: KeyState.previous, new: KeyState.active}
    assert ring.signing_key().kid == new

    with hub.sessions() as session, session.begin(), pytest.raises(Conflict, match="active signing key"):
        keys.retire(session, new)
    with hub.sessions() as session, session.begin(), pytest.raises(NotFound):
        keys.retire(session, "no-such-kid")
    with hub.sessions() as session, session.begin():
        keys.retire(session, old)
    with hub.sessions() as session:
        assert [k["kid"] for k in keys.published_jwks(session)["keys"]] == [new]
    assert states(hub)[old] is KeyState.retired


def test_rotate_now_switches_immediately_and_to_a_pending_key(hub: Hub) -> None:
    with hub.sessions() as session, session.begin():
        first = keys.generate_key(session, hub.sealer).kid
    with hub.sessions() as session, session.begin():
        pending = keys.rotate(session, hub.sealer, grace_s=3600).kid
    with hub.sessions() as session, session.begin():
        switched = keys.rotate(session, hub.sealer, grace_s=3600, immediate=True).kid
    assert switched == pending
    assert states(hub) == {first: KeyState.previous, pending: KeyState.active}
    with hub.sessions() as session, session.begin():
        third = keys.rotate(session, hub.sealer, grace_s=3600, immediate=True).kid
    assert states(hub) == {first: KeyState.previous, pending: KeyState.previous, third: KeyState.active}


def test_database_allows_only_one_active_key(hub: Hub) -> None:
    with hub.sessions() as session, session.begin():
        row = keys.generate_key(session, hub.sealer)
        template = {c: getattr(row, c) for c in ("algorithm", "key_size", "public_jwk", "private_key_sealed")}
    with pytest.raises(IntegrityError), hub.sessions() as session, session.begin():
        session.add(SigningKey(kid="second-active", state=KeyState.active, **template))


def test_private_keys_are_unreadable_without_the_kek(hub: Hub) -> None:
    with hub.sessions() as session, session.begin():
        kid = keys.generate_key(session, hub.sealer).kid
    with hub.engine.connect() as conn:
        raw = conn.execute(text("SELECT private_key_sealed, public_jwk FROM smart_signing_keys")).one()
    sealed = bytes(raw[0])
    assert b"PRIVATE KEY" not in sealed
    assert b"-----BEGIN" not in sealed
    assert sealed.startswith(b"vb1")
    with pytest.raises(ConfigurationError, match="differs"):
        Sealer(b"\x01" * 32).open(sealed, PRIVATE_KEY_PURPOSE)
    # Bound to its purpose too: the right KEK cannot open it as something else.
    with pytest.raises(ConfigurationError):
        hub.sealer.open(sealed, "smart.ehr_token.access")
    pem = hub.sealer.open(sealed, PRIVATE_KEY_PURPOSE)
    assert RSAKey.import_key(pem).thumbprint() == kid
    assert "d" not in (raw[1] if isinstance(raw[1], dict) else json.loads(raw[1]))


def test_no_signing_key_is_a_clear_configuration_error(hub: Hub) -> None:
    with pytest.raises(ConfigurationError, match="vitalbridge keys generate"):
        keys.KeyRing(hub.sessions, hub.sealer).signing_key()
    with api_client(hub) as api:
        assert api.get("/.well-known/jwks.json").json() == {"keys": []}


def test_jwks_needs_no_auth_and_reflects_retirement_over_http(hub: Hub) -> None:
    with hub.sessions() as session, session.begin():
        old = keys.generate_key(session, hub.sealer).kid
        new = keys.rotate(session, hub.sealer, grace_s=0).kid
    with api_client(hub) as api:
        kids = [k["kid"] for k in api.get("/.well-known/jwks.json").json()["keys"]]
        assert kids == [old, new]
        with hub.sessions() as session, session.begin():
            keys.retire(session, old)
        resp = httpx.get(f"{api.base_url}/.well-known/jwks.json")
        assert [k["kid"] for k in resp.json()["keys"]] == [new]
