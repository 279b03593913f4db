"""Tenancy operations shared by the API and the CLI."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.api.types import REF_PATTERN
from vitalbridge.crypto.sealing import Sealer
from vitalbridge.db.base import utcnow
from vitalbridge.errors import Conflict, NotFound, Unauthorized
from vitalbridge.security.urls import check_outbound_url
from vitalbridge.settings import Environment, Settings
from vitalbridge.tenancy.models import ApiToken, AuthMethod, Organization, Practice, PracticeEnvironment, Role, User
from vitalbridge.tenancy.schemas import PracticeIn

TOKEN_PREFIX = "vb_"
CLIENT_SECRET_PURPOSE = "practice.client_secret"


@dataclass(frozen=True)
class Principal:
    """Who is calling: every query of tenant data filters on ``organization_id``."""

    organization_id: str
    role: Role
    token_id: str
    user_id: str | None = None


@dataclass
class TokenRefused(Unauthorized):
    """A bearer token that does not authenticate. The message is the same for every reason."""

    reason: str = "invalid"  # missing | invalid | expired | revoked
    token_id: str | None = None

    error_code: ClassVar[str] = "unauthorized"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_organization(session: Session, name: str) -> Organization:
    if session.scalar(select(Organization).where(Organization.name == name)) is not None:
        raise Conflict(f"an organization named {name!r} already exists")
    org = Organization(name=name)
    session.add(org)
    session.flush()
    return org


def get_organization(session: Session, ref: str) -> Organization:
    """Find an organization by id or by exact name (CLI convenience)."""
    org = session.get(Organization, ref) or session.scalar(select(Organization).where(Organization.name == ref))
    if org is None:
        raise NotFound("no such organization; create one with `vitalbridge orgs create NAME`")
    return org


def create_api_token(
    session: Session,
    organization_id: str,
    role: Role,
    *,
    name: str = "",
    user_id: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Return the stored row and the token itself, which is never retrievable again."""
    if user_id is not None:
        get_user(session, organization_id, user_id)  # another tenant's user looks absent
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        organization_id=organization_id,
        role=role,
        name=name,
        user_id=user_id,
        token_hash=hash_token(raw),
        prefix=raw[:10],
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return row, raw


_REFUSED = "invalid, expired or revoked API token"


def authenticate(session: Session, raw_token: str) -> Principal:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(raw_token)))
    now = utcnow()
    # One message for every reason: a caller probing tokens learns nothing about which exist.
    # The reason and token id travel only to the audit trail.
    if row is None:
        raise TokenRefused(_REFUSED, reason="invalid")
    if row.revoked_at is not None:
        raise TokenRefused(_REFUSED, reason="revoked", token_id=row.id)
    if row.expires_at is not None and row.expires_at <= now:
        raise TokenRefused(_REFUSED, reason="expired", token_id=row.id)
    row.last_used_at = now
    return Principal(organization_id=row.organization_id, role=row.role, token_id=row.id, user_id=row.user_id)


def get_api_token(session: Session, organization_id: str, token_id: str) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None or row.organization_id != organization_id:
        raise NotFound("no such API token")
    return row


def list_api_tokens(session: Session, organization_id: str) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.organization_id == organization_id)
            .order_by(ApiToken.created_at, ApiToken.id)
        )
    )


def revoke_api_token(session: Session, organization_id: str, token_id: str) -> ApiToken:
    """Revoke a token; revoking twice keeps the first revocation time."""
    row = get_api_token(session, organization_id, token_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


def create_user(session: Session, organization_id: str, email: str, role: Role, display_name: str = "") -> User:
    email = email.strip().lower()
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        # Emails are unique hub-wide; the message does not say in which organization.
        raise Conflict("a user with this email already exists")
    user = User(organization_id=organization_id, email=email, role=role, display_name=display_name)
    session.add(user)
    session.flush()
    return user


def list_users(session: Session, organization_id: str) -> list[User]:
    return list(
        session.scalars(select(User).where(User.organization_id == organization_id).order_by(User.created_at, User.id))
    )


def get_user(session: Session, organization_id: str, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None or user.organization_id != organization_id:
        raise NotFound("no such user in this organization")
    return user


# Used when a caller passes no settings: refuse private targets, the safe default.
_STRICT_URL_POLICY = Settings.model_construct()


def check_practice_urls(data: PracticeIn, settings: Settings | None) -> None:
    """SSRF guard on every URL of a practice; production practices need https."""
    policy = settings or _STRICT_URL_POLICY
    require_https = (
        data.environment is PracticeEnvironment.production or policy.ecw_environment is Environment.production
    )
    for field in ("fhir_base_url", "token_url", "authorize_url"):
        value = getattr(data, field)
        if value is not None:
            check_outbound_url(str(value), policy, field=field, require_https=require_https)


def add_practice(
    session: Session,
    organization_id: str,
    data: PracticeIn,
    sealer: Sealer | None,
    settings: Settings | None = None,
) -> Practice:
    """Register a practice. ``settings`` carries the URL policy (``VB_ALLOW_PRIVATE_URLS``);
    without it private and loopback targets are refused."""
    check_practice_urls(data, settings)
    exists = session.scalar(
        select(Practice).where(
            Practice.organization_id == organization_id, Practice.practice_code == data.practice_code
        )
    )
    if exists is not None:
        raise Conflict(f"practice code {data.practice_code!r} is already registered in this organization")
    practice = Practice(
        organization_id=organization_id,
        name=data.name or data.practice_code,
        practice_code=data.practice_code,
        environment=data.environment,
        fhir_base_url=str(data.fhir_base_url).rstrip("/"),
        token_url=str(data.token_url),
        authorize_url=str(data.authorize_url) if data.authorize_url else None,
        client_id=data.client_id,
        auth_method=data.auth_method,
        scopes=" ".join(data.scopes),
        ehr_access=data.ehr_access,
        rate_limit_per_minute=data.rate_limit_per_minute,
        delivery_channel=data.delivery_channel,
        hl7_sending_facility=data.hl7_sending_facility,
        mrn_system=data.mrn_system,
    )
    if data.client_secret is not None:
        if sealer is None:
            raise Conflict("a client secret cannot be stored without a key-encryption key")
        practice.client_secret_sealed = sealer.seal_text(data.client_secret.get_secret_value(), CLIENT_SECRET_PURPOSE)
    elif data.auth_method is AuthMethod.client_secret_basic:
        from vitalbridge.errors import FieldError, ValidationFailed

        raise ValidationFailed(
            "client_secret_basic needs a client_secret",
            [FieldError(("body", "client_secret"), "required when auth_method is client_secret_basic")],
        )
    session.add(practice)
    session.flush()
    return practice


def list_practices(session: Session, organization_id: str) -> list[Practice]:
    return list(
        session.scalars(
            select(Practice).where(Practice.organization_id == organization_id).order_by(Practice.created_at)
        )
    )


_REF = re.compile(REF_PATTERN)


def get_practice(session: Session, organization_id: str, ref: str) -> Practice:
    """A practice of this organization by id or practice code; other tenants' look absent."""
    if not _REF.match(ref):
        # Ids and practice codes are short printable tokens; anything else (a NUL byte would be a
        # PostgreSQL error) cannot name a practice, whichever route passed it in.
        raise NotFound("no such practice in this organization")
    practice = session.scalar(
        select(Practice).where(
            Practice.organization_id == organization_id,
            (Practice.id == ref) | (Practice.practice_code == ref),
        )
    )
    if practice is None:
        # The reference is not echoed: error texts reach logs, and callers pass what they like.
        raise NotFound("no such practice in this organization")
    return practice


def practice_client_secret(practice: Practice, sealer: Sealer) -> str | None:
    if practice.client_secret_sealed is None:
        return None
    return sealer.open_text(practice.client_secret_sealed, CLIENT_SECRET_PURPOSE)
