"""API shapes for practices, users and API tokens (SPEC §2)."""

from __future__ import annotations

from datetime import datetime

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from vitalbridge.api.types import SafeText
from vitalbridge.tenancy.models import (
    CLIENT_ID_MAX,
    AuthMethod,
    DeliveryChannel,
    EhrAccess,
    KeySetScope,
    PracticeEnvironment,
    Role,
)

PRACTICE_CODE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class PracticeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    practice_code: str = Field(pattern=PRACTICE_CODE_PATTERN, description="eCW practice code (path segment)")
    name: SafeText = Field(default="", max_length=200)
    environment: PracticeEnvironment = PracticeEnvironment.sandbox
    fhir_base_url: AnyHttpUrl
    token_url: AnyHttpUrl
    authorize_url: AnyHttpUrl | None = None
    client_id: SafeText = Field(
        min_length=1, max_length=CLIENT_ID_MAX, description="As issued by the EHR; some issue a signed JWT"
    )
    auth_method: AuthMethod = AuthMethod.private_key_jwt
    client_secret: SecretStr | None = None
    scopes: list[str] = Field(default_factory=lambda: ["system/Patient.read", "system/Observation.write"], min_length=1)
    ehr_access: EhrAccess = Field(
        default=EhrAccess.backend,
        description="token for EHR calls: backend services, or the standalone (user-consent) grant",
    )
    rate_limit_per_minute: int = Field(default=250, ge=1, le=100_000)
    delivery_channel: DeliveryChannel = DeliveryChannel.fhir
    hl7_sending_facility: SafeText | None = Field(default=None, max_length=200)
    mrn_system: SafeText | None = Field(
        default=None, max_length=255, description="identifier system of MRNs, when the EHR does not type them MR"
    )
    signing_key_set: KeySetScope = Field(
        default=KeySetScope.organization,
        description="private_key_jwt: sign with the organization's key set (its own JWKS URL), or the hub-wide "
        "one (single-tenant hubs only)",
    )

    @field_validator("scopes")
    @classmethod
    def _no_blank_scopes(cls, v: list[str]) -> list[str]:
        return _check_scopes(v)


def _check_scopes(v: list[str]) -> list[str]:
    for s in v:
        if not s or any(c.isspace() or not c.isprintable() for c in s):
            raise ValueError("each scope is one non-empty token without spaces")
    return v


class PracticePatch(BaseModel):
    """Body of ``PATCH /api/v1/practices/{id}``: only the fields given change. ``null`` clears the
    optional ones (authorize_url, client_secret, hl7_sending_facility, mrn_system). The client
    secret is write-only: it is never returned, only ``client_secret_configured``."""

    model_config = ConfigDict(extra="forbid")

    practice_code: str | None = Field(default=None, pattern=PRACTICE_CODE_PATTERN)
    name: SafeText | None = Field(default=None, min_length=1, max_length=200)
    environment: PracticeEnvironment | None = None
    fhir_base_url: AnyHttpUrl | None = None
    token_url: AnyHttpUrl | None = None
    authorize_url: AnyHttpUrl | None = None
    client_id: SafeText | None = Field(default=None, min_length=1, max_length=CLIENT_ID_MAX)
    auth_method: AuthMethod | None = None
    client_secret: SecretStr | None = None
    scopes: list[str] | None = Field(default=None, min_length=1)
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    delivery_channel: DeliveryChannel | None = None
    hl7_sending_facility: SafeText | None = Field(default=None, max_length=200)
    mrn_system: SafeText | None = Field(default=None, max_length=255)
    signing_key_set: KeySetScope | None = None
    ehr_access: EhrAccess | None = None

    @field_validator("scopes")
    @classmethod
    def _no_blank_scopes(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_scopes(v)

    @model_validator(mode="after")
    def _required_stay_set(self) -> PracticePatch:
        # Only the optional fields may be cleared with null.
        for name in _REQUIRED_ON_PATCH & self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


_REQUIRED_ON_PATCH = frozenset(
    {
        "practice_code",
        "name",
        "environment",
        "fhir_base_url",
        "token_url",
        "client_id",
        "auth_method",
        "scopes",
        "rate_limit_per_minute",
        "delivery_channel",
        "signing_key_set",
    }
)


class PracticeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    practice_code: str
    name: str
    environment: PracticeEnvironment
    fhir_base_url: str
    token_url: str
    authorize_url: str | None
    client_id: str
    auth_method: AuthMethod
    client_secret_configured: bool
    scopes: list[str]
    ehr_access: EhrAccess = EhrAccess.backend
    rate_limit_per_minute: int
    delivery_channel: DeliveryChannel
    hl7_sending_facility: str | None
    mrn_system: str | None = None
    signing_key_set: KeySetScope = KeySetScope.organization
    jwks_url: str | None = Field(
        default=None, description="private_key_jwt: the JWKS URL to register with this practice's EHR"
    )
    created_at: datetime

    @classmethod
    def of(cls, p: object, *, base_url: str | None = None) -> PracticeOut:
        from vitalbridge.tenancy.models import Practice

        assert isinstance(p, Practice)
        return cls(
            id=p.id,
            practice_code=p.practice_code,
            name=p.name,
            environment=p.environment,
            fhir_base_url=p.fhir_base_url,
            token_url=p.token_url,
            authorize_url=p.authorize_url,
            client_id=p.client_id,
            auth_method=p.auth_method,
            client_secret_configured=p.client_secret_sealed is not None,
            scopes=p.scopes.split(),
            ehr_access=p.ehr_access,
            rate_limit_per_minute=p.rate_limit_per_minute,
            delivery_channel=p.delivery_channel,
            hl7_sending_facility=p.hl7_sending_facility,
            mrn_system=p.mrn_system,
            signing_key_set=p.signing_key_set,
            jwks_url=_jwks_url(p, base_url),
            created_at=p.created_at,
        )


def _jwks_url(p: object, base_url: str | None) -> str | None:
    from vitalbridge.tenancy.models import KeySetScope, Practice

    assert isinstance(p, Practice)
    if base_url is None or p.auth_method is not AuthMethod.private_key_jwt:
        return None
    from vitalbridge.smart.services import JWKS_PATH, ORG_JWKS_PATH  # smart imports tenancy at load

    if p.signing_key_set is KeySetScope.hub:
        return base_url + JWKS_PATH
    return base_url + ORG_JWKS_PATH.format(key_set_id=p.organization_id)


# Deliberately plain: the hub sends no mail, so the address only has to be unambiguous.
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,255}$"


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: SafeText = Field(pattern=EMAIL_PATTERN, max_length=320)
    display_name: SafeText = Field(default="", max_length=200)
    role: Role = Role.clinician


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    display_name: str
    role: Role
    created_at: datetime


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    name: SafeText = Field(default="", max_length=200)
    user_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9-]{1,36}$", description="Tie the token to a user of this organization"
    )
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenOut(BaseModel):
    """A token as listed: never the token itself, never its hash."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str
    role: Role
    user_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; only its hash is stored")
