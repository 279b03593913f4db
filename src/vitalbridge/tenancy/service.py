"""Tenancy operations shared by the API and the CLI."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from pydantic import SecretStr
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vitalbridge.api.types import REF_PATTERN
from vitalbridge.crypto.sealing import Sealer
from vitalbridge.db.base import utcnow
from vitalbridge.errors import Conflict, FieldError, NotFound, Unauthorized, ValidationFailed
from vitalbridge.security.urls import Resolver, check_outbound_url
from vitalbridge.settings import Environment, Settings
from vitalbridge.tenancy.models import (
    ApiToken,
    AuthMethod,
    KeySetScope,
    Organization,
    Practice,
    PracticeClientClaim,
    PracticeEnvironment,
    Role,
    User,
)
from vitalbridge.tenancy.schemas import PracticeIn, PracticePatch
from vitalbridge.tenancy.uniqueness import client_claim_key, facility_key, tenant_key

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
    # Unique within the organization only: a hub-wide rule would make this answer tell any admin
    # that another organization has a user with the address (issue 10 item 11). The same
    # person in two organizations is two users, each seeing only its own organization.
    taken = select(User.id).where(User.organization_id == organization_id, User.email == email)
    if session.scalar(taken) is not None:
        raise Conflict("a user with this email already exists in this organization")
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


def check_practice_urls(data: PracticeIn, settings: Settings | None, resolver: Resolver | None = None) -> None:
    """SSRF guard on every URL of a practice; production practices need https. (The hub's clients
    check the addresses again when they connect: ``vitalbridge.security.outbound``.)"""
    urls = {"fhir_base_url": data.fhir_base_url, "token_url": data.token_url, "authorize_url": data.authorize_url}
    _check_urls(data.environment, {k: str(v) if v is not None else None for k, v in urls.items()}, settings, resolver)


def _check_urls(
    environment: PracticeEnvironment,
    urls: dict[str, str | None],
    settings: Settings | None,
    resolver: Resolver | None = None,
) -> None:
    policy = settings or _STRICT_URL_POLICY
    require_https = environment is PracticeEnvironment.production or policy.ecw_environment is Environment.production
    for field, value in urls.items():
        if value is not None:
            check_outbound_url(value, policy, field=field, require_https=require_https, resolver=resolver)


TENANT_TAKEN = (
    "this FHIR base URL and practice code are already registered on this hub; an EHR tenant belongs to one "
    "practice of one organization"
)
CLIENT_TAKEN = (
    "this client id at this token endpoint is registered by another organization on this hub; each "
    "organization registers its own client with the EHR"
)
FACILITY_TAKEN = "this HL7 sending facility is already mapped to a practice on this hub"
# Fields whose change makes cached EHR tokens (issued to the old registration) unusable.
_CONNECTION_FIELDS = frozenset(
    {"fhir_base_url", "token_url", "authorize_url", "client_id", "auth_method", "client_secret", "scopes", "ehr_access"}
)


def _single_tenant(session: Session) -> bool:
    return (session.scalar(select(func.count()).select_from(Organization)) or 0) <= 1


def _check_key_set(session: Session, wanted: KeySetScope, current: KeySetScope | None) -> None:
    """The hub-wide key set is for single-tenant hubs: on a shared hub an EHR registration that
    names it would accept every organization's assertions."""
    if wanted is KeySetScope.hub and current is not KeySetScope.hub and not _single_tenant(session):
        raise Conflict(
            "the hub-wide key set is shared by every organization on this hub; use the organization's key set "
            "(signing_key_set organization) and register its JWKS URL with the EHR"
        )


def _claim(session: Session, practice: Practice) -> None:
    """Apply the hub-wide rules (issue 10): one practice per EHR tenant, one organization per EHR
    client, one practice per HL7 sending facility. The 409s never say who holds the value.

    The database holds the same rules (unique keys and the claim's composite foreign key), so a
    concurrent registration that passes these checks still fails, as a conflict, at flush.
    """
    tenant = tenant_key(practice.fhir_base_url, practice.practice_code)
    taken = select(Practice.id).where(Practice.tenant_key == tenant)
    if practice.id is not None:
        taken = taken.where(Practice.id != practice.id)
    if session.scalar(taken.limit(1)) is not None:
        raise Conflict(TENANT_TAKEN)
    claim_key = client_claim_key(practice.token_url, practice.client_id)
    claim = session.get(PracticeClientClaim, claim_key)
    if claim is not None and claim.organization_id != practice.organization_id:
        raise Conflict(CLIENT_TAKEN)
    if practice.hl7_sending_facility:
        clash = select(Practice.id).where(Practice.hl7_sending_facility == practice.hl7_sending_facility)
        if practice.id is not None:
            clash = clash.where(Practice.id != practice.id)
        if session.scalar(clash.limit(1)) is not None:
            raise Conflict(FACILITY_TAKEN)
    if claim is None:
        session.add(PracticeClientClaim(claim_key=claim_key, organization_id=practice.organization_id))
        # Before the practice row that references it: the unit of work orders only related mappers.
        _flush_claimed(session)
    practice.tenant_key = tenant
    practice.client_claim_key = claim_key


def _flush_claimed(session: Session) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        # A concurrent registration won the race for the same tenant, client or facility.
        raise Conflict(
            "this practice's FHIR tenant, EHR client or HL7 sending facility is already registered on this hub"
        ) from None


def _set_secret(practice: Practice, secret: SecretStr | None, sealer: Sealer | None) -> None:
    if secret is None:
        practice.client_secret_sealed = None
        return
    if sealer is None:
        raise Conflict("a client secret cannot be stored without a key-encryption key")
    practice.client_secret_sealed = sealer.seal_text(secret.get_secret_value(), CLIENT_SECRET_PURPOSE)


def _require_secret(practice: Practice) -> None:
    if practice.auth_method is AuthMethod.client_secret_basic and practice.client_secret_sealed is None:
        raise ValidationFailed(
            "client_secret_basic needs a client_secret",
            [FieldError(("body", "client_secret"), "required when auth_method is client_secret_basic")],
        )


def add_practice(
    session: Session,
    organization_id: str,
    data: PracticeIn,
    sealer: Sealer | None,
    settings: Settings | None = None,
    *,
    resolver: Resolver | None = None,
) -> Practice:
    """Register a practice. ``settings`` carries the URL policy (``VB_ALLOW_PRIVATE_URLS``);
    without it private and loopback targets are refused. ``resolver``: the hub's (``Hub.resolver``)."""
    check_practice_urls(data, settings, resolver)
    exists = session.scalar(
        select(Practice).where(
            Practice.organization_id == organization_id, Practice.practice_code == data.practice_code
        )
    )
    if exists is not None:
        raise Conflict("this practice code is already registered in this organization")
    _check_key_set(session, data.signing_key_set, None)
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
        hl7_sending_facility=facility_key(data.hl7_sending_facility or "") or None,
        mrn_system=data.mrn_system,
        signing_key_set=data.signing_key_set,
    )
    if data.client_secret is not None:
        _set_secret(practice, data.client_secret, sealer)
    _require_secret(practice)
    _claim(session, practice)
    session.add(practice)
    _flush_claimed(session)
    return practice


def update_practice(
    session: Session,
    organization_id: str,
    ref: str,
    patch: PracticePatch,
    sealer: Sealer | None,
    settings: Settings | None = None,
    *,
    resolver: Resolver | None = None,
) -> tuple[Practice, list[str]]:
    """Change the fields ``patch`` sets; return the practice and the names of the fields that
    changed (for the audit trail: names only, never values). Another organization's practice
    is absent (404); the hub-wide rules apply as on registration."""
    practice = get_practice(session, organization_id, ref)
    # Checks query the table while fields are half-changed: no flush until all rules passed.
    with session.no_autoflush:
        given = patch.model_fields_set
        changed: list[str] = []

        def put(field: str, value: object) -> None:
            if getattr(practice, field) != value:
                setattr(practice, field, value)
                changed.append(field)

        if "practice_code" in given and patch.practice_code != practice.practice_code:
            assert patch.practice_code is not None
            clash = session.scalar(
                select(Practice.id).where(
                    Practice.organization_id == organization_id,
                    Practice.practice_code == patch.practice_code,
                    Practice.id != practice.id,
                )
            )
            if clash is not None:
                raise Conflict("this practice code is already registered in this organization")
            put("practice_code", patch.practice_code)
        for field in (
            "name",
            "environment",
            "auth_method",
            "rate_limit_per_minute",
            "delivery_channel",
            "mrn_system",
            "ehr_access",
        ):
            if field in given:
                put(field, getattr(patch, field))
        if "fhir_base_url" in given:
            put("fhir_base_url", str(patch.fhir_base_url).rstrip("/"))
        if "token_url" in given:
            put("token_url", str(patch.token_url))
        if "authorize_url" in given:
            put("authorize_url", str(patch.authorize_url) if patch.authorize_url else None)
        if "client_id" in given:
            put("client_id", patch.client_id)
        if "scopes" in given:
            assert patch.scopes is not None
            put("scopes", " ".join(patch.scopes))
        if "hl7_sending_facility" in given:
            put("hl7_sending_facility", facility_key(patch.hl7_sending_facility or "") or None)
        if "signing_key_set" in given:
            assert patch.signing_key_set is not None
            _check_key_set(session, patch.signing_key_set, practice.signing_key_set)
            put("signing_key_set", patch.signing_key_set)
        if "client_secret" in given:
            _set_secret(practice, patch.client_secret, sealer)
            changed.append("client_secret")  # write-only: a new secret always counts as a change
        _require_secret(practice)
        # The SSRF guard for what changes (a move to production re-checks every URL for https);
        # URLs left alone were checked when set, and an unrelated edit must not depend on DNS.
        url_fields = ("fhir_base_url", "token_url", "authorize_url")
        recheck = url_fields if "environment" in changed else [f for f in url_fields if f in changed]
        _check_urls(practice.environment, {f: getattr(practice, f) for f in recheck}, settings, resolver)
        old_claim = practice.client_claim_key
        _claim(session, practice)
    _flush_claimed(session)
    if old_claim is not None and old_claim != practice.client_claim_key:
        _release_claim(session, organization_id, old_claim)
    if _CONNECTION_FIELDS.intersection(changed) or "signing_key_set" in changed:
        _forget_tokens(session, practice.id)
    return practice, changed


def _release_claim(session: Session, organization_id: str, claim_key: str) -> None:
    """Give up a client claim no practice of the organization uses any more, so a typo does not
    keep someone else's client reserved."""
    if session.scalar(select(Practice.id).where(Practice.client_claim_key == claim_key).limit(1)) is None:
        claim = session.get(PracticeClientClaim, claim_key)
        if claim is not None and claim.organization_id == organization_id:
            session.delete(claim)
            session.flush()


def _forget_tokens(session: Session, practice_id: str) -> None:
    """Cached EHR tokens belong to the old registration: the next call fetches fresh ones."""
    from vitalbridge.smart.models import EhrToken  # smart depends on tenancy, not the reverse

    session.execute(delete(EhrToken).where(EhrToken.practice_id == practice_id))


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
