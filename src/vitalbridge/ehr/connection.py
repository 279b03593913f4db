"""What the hub needs to talk to one practice's EHR, as an immutable snapshot (SPEC §2).

Workers and threads pass this around instead of an ORM ``Practice`` so that no database session
has to stay open across network calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vitalbridge.tenancy.models import AuthMethod, EhrAccess, KeySetScope, Practice


@dataclass(frozen=True)
class PracticeConnection:
    id: str
    organization_id: str
    practice_code: str
    fhir_base_url: str
    token_url: str
    authorize_url: str | None
    client_id: str
    auth_method: AuthMethod
    scopes: tuple[str, ...]
    rate_limit_per_minute: int
    request_timeout_s: float
    client_secret_sealed: bytes | None = field(default=None, repr=False)
    # Which token EHR calls carry unless a caller asks for a specific grant.
    grant: EhrAccess = EhrAccess.backend
    signing_key_set: KeySetScope = KeySetScope.organization

    @property
    def key_set_owner(self) -> str | None:
        """The organization whose key set signs this practice's assertions; None: the hub-wide set."""
        return self.organization_id if self.signing_key_set is KeySetScope.organization else None

    @classmethod
    def of(cls, practice: Practice | PracticeConnection) -> PracticeConnection:
        if isinstance(practice, PracticeConnection):
            return practice
        return cls(
            id=practice.id,
            organization_id=practice.organization_id,
            practice_code=practice.practice_code,
            fhir_base_url=practice.fhir_base_url.rstrip("/"),
            token_url=practice.token_url,
            authorize_url=practice.authorize_url,
            client_id=practice.client_id,
            auth_method=practice.auth_method,
            scopes=tuple(practice.scopes.split()),
            rate_limit_per_minute=practice.rate_limit_per_minute,
            request_timeout_s=practice.request_timeout_s,
            client_secret_sealed=practice.client_secret_sealed,
            signing_key_set=practice.signing_key_set,
            grant=practice.ehr_access or EhrAccess.backend,
        )
