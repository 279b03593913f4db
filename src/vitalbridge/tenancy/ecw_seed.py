"""A first practice from the ``ECW_*`` variables integrators already have (SPEC §2).

eCW publishes one OAuth server and one FHIR host per environment; the practice code is the
last path segment of the FHIR base. ``sandbox`` points at vitalbridge's own sandbox EHR.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.crypto.sealing import Sealer
from vitalbridge.settings import AppType, Environment, Settings
from vitalbridge.tenancy import service
from vitalbridge.tenancy.models import AuthMethod, Organization, Practice, PracticeEnvironment
from vitalbridge.tenancy.schemas import PracticeIn


@dataclass(frozen=True)
class EcwEndpoints:
    fhir_base_url: str
    token_url: str
    authorize_url: str


def ecw_endpoints(environment: Environment, practice_code: str, sandbox_url: str) -> EcwEndpoints:
    if environment is Environment.sandbox:
        return EcwEndpoints(
            fhir_base_url=f"{sandbox_url}/fhir/r4/{practice_code}",
            token_url=f"{sandbox_url}/oauth/oauth2/token",
            authorize_url=f"{sandbox_url}/oauth/oauth2/authorize",
        )
    oauth_host = "staging-oauthserver" if environment is Environment.staging else "oauthserver"
    fhir_host = "sandbox-fhir4" if environment is Environment.staging else "fhir4"
    return EcwEndpoints(
        fhir_base_url=f"https://{fhir_host}.eclinicalworks.com/fhir/r4/{practice_code}",
        token_url=f"https://{oauth_host}.eclinicalworks.com/oauth/oauth2/token",
        authorize_url=f"https://{oauth_host}.eclinicalworks.com/oauth/oauth2/authorize",
    )


def _scopes_for(app_type: AppType) -> list[str]:
    if app_type is AppType.backend_service:
        return ["system/Patient.read", "system/Observation.read", "system/Observation.write"]
    prefix = "patient" if app_type is AppType.patient else "user"
    return ["openid", "fhirUser", "offline_access", f"{prefix}/Patient.read", f"{prefix}/Observation.write"]


def seed_practice_from_settings(session: Session, settings: Settings, sealer: Sealer) -> Practice | None:
    """Create the ECW_* practice once; return None when the variables are not set."""
    if not (settings.ecw_client_id and settings.ecw_practice_code):
        return None
    org = session.scalar(select(Organization).where(Organization.name == settings.seed_org))
    if org is None:
        org = service.create_organization(session, settings.seed_org)
    existing = session.scalar(
        select(Practice).where(Practice.organization_id == org.id, Practice.practice_code == settings.ecw_practice_code)
    )
    if existing is not None:
        return existing
    endpoints = ecw_endpoints(
        settings.ecw_environment, settings.ecw_practice_code, f"http://127.0.0.1:{settings.sandbox_port}"
    )
    secret = settings.ecw_client_secret.get_secret_value() if settings.ecw_client_secret else None
    data = PracticeIn.model_validate(
        {
            "practice_code": settings.ecw_practice_code,
            "name": f"eCW practice {settings.ecw_practice_code}",
            "environment": PracticeEnvironment(settings.ecw_environment.value),
            "fhir_base_url": settings.ecw_fhir_base_url or endpoints.fhir_base_url,
            "token_url": endpoints.token_url,
            "authorize_url": endpoints.authorize_url,
            "client_id": settings.ecw_client_id,
            # A shared secret means the registration uses client_secret_basic; otherwise the
            # hub signs RS384 assertions with its own key (eCW's default for backend apps).
            "auth_method": AuthMethod.client_secret_basic if secret else AuthMethod.private_key_jwt,
            "client_secret": secret,
            "scopes": _scopes_for(settings.ecw_app_type),
        }
    )
    return service.add_practice(session, org.id, data, sealer, settings)
