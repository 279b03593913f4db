"""Tenancy tables (SPEC §2): an organization owns practices, users and API tokens."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Enum,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from vitalbridge.db.base import Base, new_id, utcnow
from vitalbridge.db.types import UTCDateTime


class Role(enum.StrEnum):
    """What a user or API token may do inside its organization."""

    admin = "admin"  # practices, keys, users, audit
    clinician = "clinician"  # patients, readings, alerts
    integration = "integration"  # webhooks, deliveries
    billing = "billing"  # enrollment episodes, time log, monthly billing reports (SPEC §13)


class PracticeEnvironment(enum.StrEnum):
    sandbox = "sandbox"
    staging = "staging"
    production = "production"


class AuthMethod(enum.StrEnum):
    """How the hub authenticates to the practice's token endpoint (SPEC §3)."""

    private_key_jwt = "private_key_jwt"  # RS384 client assertion, RFC 7523 — default
    client_secret_basic = "client_secret_basic"  # RFC 6749 §2.3.1 shared secret


class KeySetScope(enum.StrEnum):
    """Which signing keys a ``private_key_jwt`` practice's assertions use (issue 10 item 1)."""

    # The organization's own key set, at /.well-known/jwks/{organization id}.json: an EHR
    # registration naming that URL accepts no other organization's assertion.
    organization = "organization"
    # The hub-wide set at /.well-known/jwks.json: only for a single-tenant hub, and for
    # practices registered before key sets were per organization (``ecw status`` warns).
    hub = "hub"


class EhrAccess(enum.StrEnum):
    """Which token the hub's calls to the practice's EHR carry (SPEC §3)."""

    backend = "backend"  # SMART Backend Services (client_credentials, system/ scopes) — default
    # A user's standalone-launch grant, renewed silently with its refresh token: for EHRs that
    # allow only user consent. Search, import, sync and delivery all use it.
    standalone = "standalone"


class DeliveryChannel(enum.StrEnum):
    fhir = "fhir"  # Observation create over FHIR R4
    hl7v2 = "hl7v2"  # ORU^R01 over MLLP


def _enum(e: type[enum.Enum]) -> Enum:
    # Stored as plain strings: adding a member later needs no PostgreSQL ALTER TYPE.
    return Enum(e, native_enum=False, length=32, validate_strings=True)


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# Client ids some EHRs issue are signed JWTs of several hundred characters.
CLIENT_ID_MAX = 4096


class PracticeClientClaim(Base):
    """Which organization owns a (token endpoint, client id) pair, hub-wide.

    One EHR client registration may serve several practices of one organization (eCW activates a
    client per practice), so the pair cannot be unique per practice; it is unique here, and each
    practice's composite foreign key ties its pair to its own organization's claim. ``claim_key``
    is a SHA-256 over the normalised pair: client ids can be too long for a btree index.
    """

    __tablename__ = "practice_client_claims"
    __table_args__ = (UniqueConstraint("claim_key", "organization_id", name="uq_practice_client_claims_key_org"),)

    claim_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Practice(Base):
    """One EHR tenant: eCW routes per practice code in the FHIR base path."""

    __tablename__ = "practices"
    __table_args__ = (
        UniqueConstraint("organization_id", "practice_code", name="uq_practices_org_code"),
        # Hub-wide: one practice per (normalised FHIR base URL, practice code).
        UniqueConstraint("tenant_key", name="uq_practices_tenant_key"),
        # Hub-wide: one practice per HL7 sending facility (MSH-4 routes inbound ADT by it).
        UniqueConstraint("hl7_sending_facility", name="uq_practices_hl7_sending_facility"),
        ForeignKeyConstraint(
            ["client_claim_key", "organization_id"],
            ["practice_client_claims.claim_key", "practice_client_claims.organization_id"],
            name="fk_practices_client_claim",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    practice_code: Mapped[str] = mapped_column(String(64))
    environment: Mapped[PracticeEnvironment] = mapped_column(
        _enum(PracticeEnvironment), default=PracticeEnvironment.sandbox
    )
    fhir_base_url: Mapped[str] = mapped_column(String(500))
    token_url: Mapped[str] = mapped_column(String(500))
    authorize_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    client_id: Mapped[str] = mapped_column(String(CLIENT_ID_MAX))
    auth_method: Mapped[AuthMethod] = mapped_column(_enum(AuthMethod), default=AuthMethod.private_key_jwt)
    client_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    scopes: Mapped[str] = mapped_column(String(1000), default="system/Patient.read system/Observation.write")
    ehr_access: Mapped[EhrAccess] = mapped_column(
        _enum(EhrAccess), default=EhrAccess.backend, server_default=EhrAccess.backend.value
    )
    # eCW allows 250 calls/min per practice code, token requests included.
    rate_limit_per_minute: Mapped[int] = mapped_column(Integer, default=250)
    delivery_channel: Mapped[DeliveryChannel] = mapped_column(_enum(DeliveryChannel), default=DeliveryChannel.fhir)
    hl7_sending_facility: Mapped[str | None] = mapped_column(String(200), nullable=True)
    hl7_host: Mapped[str | None] = mapped_column(String(200), nullable=True)
    hl7_port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    request_timeout_s: Mapped[float] = mapped_column(Float, default=30.0)
    # Identifier system of the practice's MRNs, for EHRs that do not type them "MR" (SPEC §4).
    mrn_system: Mapped[str | None] = mapped_column(String(255), nullable=True)
    signing_key_set: Mapped[KeySetScope] = mapped_column(_enum(KeySetScope), default=KeySetScope.organization)
    # SHA-256 of the normalised (FHIR base URL, practice code) and (token URL, client id). NULL
    # only for rows migrated from before the rule that clashed with an older registration.
    tenant_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    client_claim_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class User(Base):
    __tablename__ = "users"
    # Unique per organization, not hub-wide: a hub-wide rule would answer "taken" for an email
    # another organization uses, telling every admin who the other tenants' users are.
    __table_args__ = (UniqueConstraint("organization_id", "email", name="uq_users_organization_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[Role] = mapped_column(_enum(Role), default=Role.clinician)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiToken(Base):
    """Bearer tokens for the hub API. Only the SHA-256 of the token is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[Role] = mapped_column(_enum(Role))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # First characters of the token, to tell tokens apart in listings without revealing them.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
