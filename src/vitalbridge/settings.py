"""One Settings object, read once at start-up and passed down as typed values.

Variables are ``VB_*``; the eCW names integrators already know (``ECW_CLIENT_ID`` …) are
accepted unprefixed and seed a first practice (see ``tenancy.service.seed_practice_from_settings``).
A ``.env`` file in the working directory is read too.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Environment(enum.StrEnum):
    """eCW registers an app per environment; production refuses unsafe defaults."""

    sandbox = "sandbox"
    staging = "staging"
    production = "production"


class AppType(enum.StrEnum):
    """eCW app registration type, as named in eCW's developer portal."""

    backend_service = "backend_service"  # client_credentials with private_key_jwt (SPEC §3)
    provider = "provider"  # provider-facing standalone launch, authorization_code + PKCE
    patient = "patient"  # healow patient app, standalone launch with offline_access


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VB_", env_file=".env", env_file_encoding="utf-8", extra="ignore")

    data_dir: Path = Path("var")
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    sandbox_port: int = 9090
    public_url: str = ""
    secret_key: SecretStr | None = None
    allow_private_urls: bool = False
    broker_url: str = ""
    redis_url: str = ""
    log_file: Path | None = None
    # Rotating file log (SPEC §9): 10 MB per file, this many old files kept beside it.
    log_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    log_backups: int = Field(default=5, ge=0)
    inprocess_worker: bool = True

    # Audit trail (SPEC §9): HIPAA asks for six years; seven is the common policy.
    audit_retention_days: int = Field(default=2557, ge=1)

    # Hardening of the hub's own HTTP surface (docs/security.md).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Browser origins allowed to call the API; empty keeps CORS off. Comma-separated.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Inbound requests per minute per client IP, by path prefix (JSON object in VB_INBOUND_RATE_LIMITS).
    inbound_rate_limits: dict[str, int] = Field(
        default_factory=lambda: {"/api/v1/webhooks/": 1200, "/api/v1/ecw/auth/": 60}
    )
    # Refused API tokens per minute per client IP before that address is throttled (token guessing).
    auth_failures_per_minute: int = Field(default=30, ge=1)

    # eCW names kept as users know them (SPEC §2): they seed a first practice.
    ecw_client_id: str = Field(default="", validation_alias=AliasChoices("ECW_CLIENT_ID", "VB_ECW_CLIENT_ID"))
    ecw_client_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ECW_CLIENT_SECRET", "VB_ECW_CLIENT_SECRET")
    )
    ecw_environment: Environment = Field(
        default=Environment.sandbox, validation_alias=AliasChoices("ECW_ENVIRONMENT", "VB_ECW_ENVIRONMENT")
    )
    ecw_practice_code: str = Field(
        default="", validation_alias=AliasChoices("ECW_PRACTICE_CODE", "VB_ECW_PRACTICE_CODE")
    )
    ecw_app_type: AppType = Field(
        default=AppType.backend_service, validation_alias=AliasChoices("ECW_APP_TYPE", "VB_ECW_APP_TYPE")
    )
    ecw_fhir_base_url: str = Field(
        default="", validation_alias=AliasChoices("ECW_FHIR_BASE_URL", "VB_ECW_FHIR_BASE_URL")
    )
    # Hub-wide ceiling on EHR calls, requests per second (SPEC §7: default 10/s overall).
    ecw_rate_limit: float = Field(default=10.0, validation_alias=AliasChoices("ECW_RATE_LIMIT", "VB_ECW_RATE_LIMIT"))
    # Organization that the ECW_* variables' practice is created in.
    seed_org: str = "Default organization"
    ecw_log_level: str = Field(default="INFO", validation_alias=AliasChoices("ECW_LOG_LEVEL", "VB_ECW_LOG_LEVEL"))

    # HL7 v2 over MLLP (docs/hl7.md). The listener runs inside the hub when hl7_port is set.
    hl7_port: int | None = Field(default=None, ge=0, le=65535)
    hl7_host: str = "127.0.0.1"
    hl7_tls_cert: Path | None = None
    hl7_tls_key: Path | None = None
    hl7_tls_client_ca: Path | None = None  # set to require client certificates signed by this CA
    hl7_max_message_bytes: int = Field(default=1024 * 1024, ge=1024)
    hl7_frame_timeout_s: float = Field(default=30.0, gt=0)  # a started message must be complete within this
    hl7_idle_timeout_s: float = Field(default=600.0, ge=0)  # close a silent connection after this; 0 = never
    hl7_max_connections: int = Field(default=64, ge=1)
    # MSH-18 empty means ASCII in the standard; UTF-8 reads ASCII identically and also takes the
    # many senders that send UTF-8 without saying so. A Latin-1 sender that names no charset needs 8859/1.
    hl7_default_charset: str = "UNICODE UTF-8"
    hl7_application: str = "VITALBRIDGE"  # MSH-3 the hub sends
    hl7_facility: str = "VITALBRIDGE"  # MSH-4 the hub sends
    hl7_ack_timeout_s: float = Field(default=30.0, gt=0)  # how long the hub waits for a peer's ACK

    @field_validator("hl7_port", mode="before")
    @classmethod
    def _port_off(cls, v: object) -> object:
        # VB_HL7_PORT= (empty) and VB_HL7_PORT=0 both mean "no listener".
        if v in ("", 0, "0", None):
            return None
        return v

    @field_validator("hl7_tls_cert", "hl7_tls_key", "hl7_tls_client_ca", mode="before")
    @classmethod
    def _empty_path(cls, v: object) -> object:
        return None if v == "" else v

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        return value

    @field_validator("inbound_rate_limits")
    @classmethod
    def _positive_limits(cls, value: dict[str, int]) -> dict[str, int]:
        for prefix, per_minute in value.items():
            if not prefix.startswith("/") or per_minute < 1:
                raise ValueError("each rule is a path prefix starting with '/' and a positive count per minute")
        return value

    # Readings pipeline (SPEC §5-§7).
    # Webhook timestamps further than this from the hub's clock are refused as replays (SPEC §5: 5 min).
    webhook_max_skew_s: int = Field(default=300, ge=30, le=3600)
    # Webhook bodies above this are refused (413) before any parsing: one reading is < 2 KiB.
    webhook_max_body_bytes: int = Field(default=65536, ge=1024)
    # Run triage rules inside the webhook transaction (alerts commit with the reading). False:
    # the background triage service picks readings up (lower ingest latency, alerts a little later).
    triage_inline: bool = True
    triage_sweep_interval_s: float = Field(default=10.0, gt=0)
    missed_reading_check_interval_s: float = Field(default=3600.0, gt=0)
    # Base of the identifier systems the hub mints ({base}/measurement on every Observation, {base}/device
    # for device serials). It must never change once readings were delivered: conditional create
    # matches on it. Default: {VB_PUBLIC_URL or base_url}/fhir/identifier.
    identifier_system_base: str = ""
    # LOINC for blood glucose: 2339-0 (SPEC default) or 41653-7 (capillary blood by glucometer).
    glucose_loinc: Literal["2339-0", "41653-7"] = "2339-0"
    gateway_sync_page_size: int = Field(default=200, ge=1, le=1000)

    # Push notifications over FCM HTTP v1 (SPEC §8, docs/notifications.md).
    # The Firebase service-account JSON (client_email, private_key, token_uri, project_id).
    # Unset: pushes wait in the push outbox until it is configured.
    fcm_credentials_file: Path | None = None
    fcm_project_id: str = ""  # default: project_id from the service-account file
    fcm_endpoint: str = "https://fcm.googleapis.com"
    fcm_timeout_s: float = Field(default=10.0, gt=0)
    # A push not accepted by FCM within this many hours is given up (dead): an alert this old is news no more.
    push_max_age_hours: float = Field(default=24.0, gt=0)
    push_lease_s: float = Field(default=60.0, gt=0)
    push_sweep_interval_s: float = Field(default=2.0, gt=0)
    # A critical alert still open (unacknowledged) this long is escalated to the program's on-call list.
    escalation_minutes: int = Field(default=15, ge=1)
    escalation_check_interval_s: float = Field(default=30.0, gt=0)
    # `make run` serves a fake FCM endpoint here and points the hub at it.
    fake_fcm_port: int = 9091

    @field_validator("fcm_credentials_file", mode="before")
    @classmethod
    def _no_file(cls, v: object) -> object:
        return None if v == "" else v

    @property
    def identifier_base(self) -> str:
        return (self.identifier_system_base or f"{self.base_url}/fhir/identifier").rstrip("/")

    @property
    def effective_database_url(self) -> str:
        """The configured URL, else an SQLite file under the data folder (embedded default)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'vitalbridge.db').resolve()}"

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"


def load_settings(**overrides: object) -> Settings:
    """Read the environment (and ``.env``) once; ``overrides`` win, for tests and the CLI."""
    return Settings(**overrides)  # type: ignore[arg-type]
