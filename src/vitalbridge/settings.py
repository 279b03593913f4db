"""One Settings object, read once at start-up and passed down as typed values.

Variables are ``VB_*``; the eCW names integrators already know (``ECW_CLIENT_ID`` …) are
accepted unprefixed and seed a first practice (see ``tenancy.service.seed_practice_from_settings``).
A ``.env`` file in the working directory is read too.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(enum.StrEnum):
    """eCW registers an app per environment; production refuses unsafe defaults."""

    sandbox = "sandbox"
    staging = "staging"
    production = "production"


class AppType(enum.StrEnum):
    """eCW app registration type: backend services or a provider-facing standalone app."""

    backend = "backend"  # client_credentials with private_key_jwt (SPEC §3)
    provider = "provider"  # standalone launch, authorization_code + PKCE


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
    inprocess_worker: bool = True

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
        default=AppType.backend, validation_alias=AliasChoices("ECW_APP_TYPE", "VB_ECW_APP_TYPE")
    )
    ecw_fhir_base_url: str = Field(
        default="", validation_alias=AliasChoices("ECW_FHIR_BASE_URL", "VB_ECW_FHIR_BASE_URL")
    )
    # Hub-wide ceiling on EHR calls, requests per second (SPEC §7: default 10/s overall).
    ecw_rate_limit: float = Field(default=10.0, validation_alias=AliasChoices("ECW_RATE_LIMIT", "VB_ECW_RATE_LIMIT"))
    ecw_log_level: str = Field(default="INFO", validation_alias=AliasChoices("ECW_LOG_LEVEL", "VB_ECW_LOG_LEVEL"))

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
