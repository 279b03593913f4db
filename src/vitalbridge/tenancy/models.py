"""Tenancy tables (SPEC §2): an organization owns practices, users and API tokens."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, Float, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
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


class Practice(Base):
    """One EHR tenant: eCW routes per practice code in the FHIR base path."""

    __tablename__ = "practices"
    __table_args__ = (UniqueConstraint("organization_id", "practice_code", name="uq_practices_org_code"),)

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
    client_id: Mapped[str] = mapped_column(String(200))
    auth_method: Mapped[AuthMethod] = mapped_column(_enum(AuthMethod), default=AuthMethod.private_key_jwt)
    client_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    scopes: Mapped[str] = mapped_column(String(1000), default="system/Patient.read system/Observation.write")
    # eCW allows 250 calls/min per practice code, token requests included.
    rate_limit_per_minute: Mapped[int] = mapped_column(Integer, default=250)
    delivery_channel: Mapped[DeliveryChannel] = mapped_column(_enum(DeliveryChannel), default=DeliveryChannel.fhir)
    hl7_sending_facility: Mapped[str | None] = mapped_column(String(200), nullable=True)
    hl7_host: Mapped[str | None] = mapped_column(String(200), nullable=True)
    hl7_port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    request_timeout_s: Mapped[float] = mapped_column(Float, default=30.0)
    # Identifier system of the practice's MRNs, for EHRs that do not type them "MR" (SPEC §4).
    mrn_system: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
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
