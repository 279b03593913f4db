"""SMART tables (SPEC §3): signing keys, the shared EHR token cache, standalone-launch states,
and the last backend-services outcome per practice.

Everything secret is sealed with the hub's key-encryption key (``crypto.sealing``), each with its
own purpose string, so a database dump alone yields no private key, token or verifier.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from vitalbridge.db.base import Base, new_id, utcnow
from vitalbridge.db.types import UTCDateTime

# Purpose strings bound into each sealed value (crypto.sealing): one kind can't pass for another.
PRIVATE_KEY_PURPOSE = "smart.signing_key.private_pem"
ACCESS_TOKEN_PURPOSE = "smart.ehr_token.access"
REFRESH_TOKEN_PURPOSE = "smart.ehr_token.refresh"
VERIFIER_PURPOSE = "smart.launch.code_verifier"


class KeyState(enum.StrEnum):
    """Life of a signing key. Rotation publishes before it signs, and unpublishing is separate."""

    next = "next"  # published in the JWKS, not signing yet (rotation grace period)
    active = "active"  # signs every client assertion; exactly one at a time
    previous = "previous"  # replaced by a newer key; still published until `keys retire`
    retired = "retired"  # no longer published; kept so the audit trail's kids resolve


PUBLISHED_STATES = (KeyState.next, KeyState.active, KeyState.previous)


class GrantKind(enum.StrEnum):
    """Which OAuth grant a cached EHR token came from."""

    backend = "backend"  # client_credentials, SMART Backend Services (machine to machine)
    standalone = "standalone"  # authorization_code + PKCE, then refresh_token (user consent)


class GrantStatus(enum.StrEnum):
    active = "active"
    revoked = "revoked"  # the EHR refused the refresh token: the user must authorize again
    failed = "failed"  # the last attempt to get a token failed; the reason says why


def _enum(e: type[enum.Enum]) -> Enum:
    return Enum(e, native_enum=False, length=32, validate_strings=True)


class SigningKey(Base):
    """An RS384 key pair of one key set; ``kid`` is its RFC 7638 JWK thumbprint (SHA-256).

    A key belongs to an organization's key set, or (``organization_id`` NULL) to the hub-wide set
    of a single-tenant hub. ``kid`` is the primary key: one private key can never serve two sets.
    """

    __tablename__ = "smart_signing_keys"
    __table_args__ = (
        # At most one signing key per key set, even when two processes generate or promote at
        # once. Two partial indexes because NULLs never collide in a unique index.
        Index(
            "uq_smart_signing_keys_one_active",
            "state",
            unique=True,
            sqlite_where=text("state = 'active' AND organization_id IS NULL"),
            postgresql_where=text("state = 'active' AND organization_id IS NULL"),
        ),
        Index(
            "uq_smart_signing_keys_one_active_per_org",
            "organization_id",
            "state",
            unique=True,
            sqlite_where=text("state = 'active' AND organization_id IS NOT NULL"),
            postgresql_where=text("state = 'active' AND organization_id IS NOT NULL"),
        ),
    )

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=True, index=True
    )
    state: Mapped[KeyState] = mapped_column(_enum(KeyState))
    algorithm: Mapped[str] = mapped_column(String(16), default="RS384")
    key_size: Mapped[int] = mapped_column(Integer)
    # Public parameters only (kty, n, e): what the JWKS serves.
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    private_key_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # For a `next` key: when it starts signing (end of the rotation grace period).
    activate_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class EhrToken(Base):
    """One cached EHR access token (and, for a standalone grant, its refresh token).

    Shared by every process through the database. ``lease_owner``/``lease_until`` make renewal
    single-flight: the process holding the lease asks the EHR, the others wait for its result
    or keep using the still-valid current token.
    """

    __tablename__ = "smart_tokens"
    __table_args__ = (UniqueConstraint("practice_id", "kind", "scope_key", name="uq_smart_tokens_practice_kind_scope"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    practice_id: Mapped[str] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"), index=True)
    kind: Mapped[GrantKind] = mapped_column(_enum(GrantKind))
    # SHA-256 of the sorted requested scopes: the cache key within a practice.
    scope_key: Mapped[str] = mapped_column(String(64))
    requested_scopes: Mapped[str] = mapped_column(String(1000))
    granted_scopes: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    token_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    access_token_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    refresh_token_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    obtained_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    renew_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Bumped on every new token, so a 401 invalidates only the token that failed.
    generation: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(36), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    status: Mapped[GrantStatus] = mapped_column(_enum(GrantStatus), default=GrantStatus.active)
    # Why the grant is not usable: an OAuth error code and a hint, never a token or PHI.
    status_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # Who consented (standalone): an audit actor string such as ``token:<id>``.
    authorized_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # Standalone grants: the token endpoint the grant is redeemed at (from the practice or discovery).
    token_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class LaunchState(Base):
    """A started standalone launch: single-use ``state`` bound to a PKCE verifier and a caller.

    Only the SHA-256 of ``state`` is stored: the row proves a state was issued without letting
    anyone who reads the table complete someone else's launch.
    """

    __tablename__ = "smart_launch_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    practice_id: Mapped[str] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"))
    requested_by: Mapped[str] = mapped_column(String(100))
    verifier_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    redirect_uri: Mapped[str] = mapped_column(String(500))
    scopes: Mapped[str] = mapped_column(String(1000))
    token_url: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class BackendAuthStatus(Base):
    """Last backend-services outcome per practice, for ``/api/v1/ecw/auth/status/``."""

    __tablename__ = "smart_backend_status"

    practice_id: Mapped[str] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"), primary_key=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # OAuth error code (invalid_client …) or an error class code (ehr_auth_unavailable).
    last_error: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error_detail: Mapped[str | None] = mapped_column(String(500), nullable=True)
    last_kid: Mapped[str | None] = mapped_column(String(64), nullable=True)
