"""One Settings object, read once at start-up and passed down as typed values.

Variables are ``VB_*``; the eCW names integrators already know (``ECW_CLIENT_ID`` …) are
accepted unprefixed and seed a first practice (see ``tenancy.service.seed_practice_from_settings``).
A ``.env`` file in the working directory is read too.
"""

from __future__ import annotations

import enum
import ipaddress
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

    # Folder for the embedded SQLite database, the generated key file and demo files.
    data_dir: Path = Path("var")
    # SQLAlchemy URL; empty = SQLite under VB_DATA_DIR. postgresql://user@host/db for production.
    database_url: str = ""
    # Interface the hub binds (`vitalbridge serve --host`, `make run`).
    host: str = "127.0.0.1"
    # Hub port (`make run`; `vitalbridge serve --port`).
    port: int = 8000
    # Sandbox EHR port for `make run` and the ECW_ENVIRONMENT=sandbox endpoints.
    sandbox_port: int = 9090
    # URL EHRs and browsers reach the hub at (JWKS URL, launch callback); default http://HOST:PORT.
    public_url: str = ""
    # Key-encryption key for secrets at rest; required in production. Default: a 0600 key file in VB_DATA_DIR.
    secret_key: SecretStr | None = None
    # Let tenants configure loopback/private EHR URLs (the sandbox demo needs it); keep off in production.
    allow_private_urls: bool = False
    # Celery broker (redis://… or amqp://…) for separate delivery workers; empty = no Celery.
    broker_url: str = ""
    # Redis for shared worker state where a feature supports it; the database is used otherwise.
    redis_url: str = ""
    # Also write JSON logs to this file, rotated (see VB_LOG_MAX_BYTES, VB_LOG_BACKUPS).
    log_file: Path | None = None
    # Size in bytes at which VB_LOG_FILE is rotated (SPEC §9).
    log_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # Rotated log files kept.
    log_backups: int = Field(default=5, ge=0)
    # Run the delivery worker inside the hub process (embedded default). False on API-only nodes.
    inprocess_worker: bool = True

    # Days audit events are kept (SPEC §9): HIPAA asks for six years; seven is the common policy.
    audit_retention_days: int = Field(default=2557, ge=1)

    # == Hardening of the hub's own HTTP surface (docs/security.md) ==
    # Request bodies larger than this many bytes are refused with 413.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Browser origins allowed to call the API; empty keeps CORS off. Comma-separated.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Inbound requests per minute per client IP, by path prefix (JSON object in VB_INBOUND_RATE_LIMITS).
    inbound_rate_limits: dict[str, int] = Field(
        default_factory=lambda: {"/api/v1/webhooks/": 1200, "/api/v1/ecw/auth/": 60}
    )
    # Refused API tokens per minute per client IP before that address is throttled (token guessing).
    auth_failures_per_minute: int = Field(default=30, ge=1)
    # Reverse proxies (IP addresses or CIDR networks, comma-separated) whose X-Forwarded-For and
    # X-Forwarded-Proto the hub believes. Empty: no peer is a proxy, the client address is the TCP peer's.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # == eCW names kept as users know them (SPEC §2): they seed a first practice ==
    # Client id of the eCW app registration (with ECW_PRACTICE_CODE it seeds a first practice).
    ecw_client_id: str = Field(default="", validation_alias=AliasChoices("ECW_CLIENT_ID", "VB_ECW_CLIENT_ID"))
    # Shared secret of an eCW registration that uses client_secret_basic.
    ecw_client_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ECW_CLIENT_SECRET", "VB_ECW_CLIENT_SECRET")
    )
    # sandbox (local sandbox EHR), staging or production: picks eCW's endpoints for the seeded practice.
    ecw_environment: Environment = Field(
        default=Environment.sandbox, validation_alias=AliasChoices("ECW_ENVIRONMENT", "VB_ECW_ENVIRONMENT")
    )
    # eCW practice code: the last path segment of the practice's FHIR base URL.
    ecw_practice_code: str = Field(
        default="", validation_alias=AliasChoices("ECW_PRACTICE_CODE", "VB_ECW_PRACTICE_CODE")
    )
    # eCW app registration type: backend_service, provider or patient (sets the seeded scopes).
    ecw_app_type: AppType = Field(
        default=AppType.backend_service, validation_alias=AliasChoices("ECW_APP_TYPE", "VB_ECW_APP_TYPE")
    )
    # Overrides the FHIR base URL derived from ECW_ENVIRONMENT and ECW_PRACTICE_CODE.
    ecw_fhir_base_url: str = Field(
        default="", validation_alias=AliasChoices("ECW_FHIR_BASE_URL", "VB_ECW_FHIR_BASE_URL")
    )
    # Hub-wide ceiling on EHR calls, requests per second (SPEC §7: default 10/s overall).
    ecw_rate_limit: float = Field(default=10.0, validation_alias=AliasChoices("ECW_RATE_LIMIT", "VB_ECW_RATE_LIMIT"))
    # Organization that the ECW_* variables' practice is created in.
    seed_org: str = "Default organization"
    # Log level; DEBUG logs EHR and API exchanges with secrets and PHI redacted.
    ecw_log_level: str = Field(default="INFO", validation_alias=AliasChoices("ECW_LOG_LEVEL", "VB_ECW_LOG_LEVEL"))

    # Log level of one-shot CLI commands (migrate, demo, orgs …), so their output is not buried in
    # INFO logs; the servers (serve, up, worker, hl7 listen) log at ECW_LOG_LEVEL.
    cli_log_level: str = "WARNING"

    # == HL7 v2 over MLLP (docs/hl7.md) ==
    # MLLP listener port; the listener runs inside the hub when set (empty or 0: no listener).
    hl7_port: int | None = Field(default=None, ge=0, le=65535)
    # Interface the MLLP listener binds.
    hl7_host: str = "127.0.0.1"
    # PEM certificate (chain) for MLLP over TLS; unset: plain TCP.
    hl7_tls_cert: Path | None = None
    # PEM private key of VB_HL7_TLS_CERT.
    hl7_tls_key: Path | None = None
    hl7_tls_client_ca: Path | None = None  # set to require client certificates signed by this CA
    # Largest HL7 message accepted, in bytes.
    hl7_max_message_bytes: int = Field(default=1024 * 1024, ge=1024)
    # A message must be complete within this many seconds of its first start byte; starting the
    # frame again does not reset it.
    hl7_frame_timeout_s: float = Field(default=30.0, gt=0)
    # Close a connection that completes no message for this long (bytes between frames do not
    # count as traffic); 0 = never.
    hl7_idle_timeout_s: float = Field(default=300.0, ge=0)
    # MLLP connections open at once, from all peers together.
    hl7_max_connections: int = Field(default=64, ge=1)
    # MLLP connections open at once from one client address (IPv6: one /64), so one host holding
    # connections open cannot take the slots the EHR's interface engine needs.
    hl7_max_connections_per_peer: int = Field(default=8, ge=1)
    # MSH-18 empty means ASCII in the standard; UTF-8 reads ASCII identically and also takes the
    # many senders that send UTF-8 without saying so. A Latin-1 sender that names no charset needs 8859/1.
    hl7_default_charset: str = "UNICODE UTF-8"
    hl7_application: str = "VITALBRIDGE"  # MSH-3 the hub sends
    hl7_facility: str = "VITALBRIDGE"  # MSH-4 the hub sends
    hl7_ack_timeout_s: float = Field(default=30.0, gt=0)  # how long the hub waits for a peer's ACK

    @field_validator("billing_setup_min_days")
    @classmethod
    def _setup_days(cls, v: int) -> int:
        # An int checked here rather than Literal[2, 16]: environment values arrive as strings,
        # which a Literal of ints refuses ("16" is not 16).
        if v not in (2, 16):
            raise ValueError("must be 2 or 16")
        return v

    @field_validator("hl7_port", mode="before")
    @classmethod
    def _port_off(cls, v: object) -> object:
        # VB_HL7_PORT= (empty) and VB_HL7_PORT=0 both mean "no listener".
        if v in ("", 0, "0", None):
            return None
        return v

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        # Only the scheme is named: the rest of the URL may hold a password.
        scheme = value.split("://", 1)[0].split("+", 1)[0].lower() if "://" in value else ""
        if value and scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("use postgresql://user@host/db or sqlite:///path (or leave it empty)")
        return value

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

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: list[str]) -> list[str]:
        # A wildcard or a name would let any caller pick its own address; only addresses count.
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError("each trusted proxy is an IP address or a CIDR network (no names, no '*')") from None
        return value

    @field_validator("inbound_rate_limits")
    @classmethod
    def _positive_limits(cls, value: dict[str, int]) -> dict[str, int]:
        for prefix, per_minute in value.items():
            if not prefix.startswith("/") or per_minute < 1:
                raise ValueError("each rule is a path prefix starting with '/' and a positive count per minute")
        return value

    # == SMART on FHIR (SPEC §3, docs/smart.md) ==
    # Bits of new RSA signing keys; RS384 needs at least 2048.
    key_size: int = Field(default=2048, ge=2048, le=8192)
    # How long a rotated key is published beside the active one before it starts signing, so
    # every EHR has refetched the JWKS by then (`vitalbridge keys rotate`, `--now` skips it).
    key_rotation_grace_s: int = Field(default=24 * 3600, ge=0)
    # `Cache-Control: max-age` of /.well-known/jwks.json.
    jwks_max_age_s: int = Field(default=300, ge=0)
    # SPEC §3: renew access tokens 300 s before expiry (or at half-life for shorter tokens).
    token_renew_before_s: int = Field(default=300, ge=0)
    # Assertion lifetime: SMART allows at most 300 s; 240 leaves room for clock skew with the EHR.
    assertion_lifetime_s: int = Field(default=240, ge=10, le=300)
    # Standalone launch: how long a started authorization (state + PKCE verifier) stays usable.
    launch_state_ttl_s: int = Field(default=600, ge=30)
    # How long a caller waits for a free slot in the EHR rate limit before giving up with 429.
    rate_limit_max_wait_s: float = Field(default=30.0, ge=0)
    # Time allowed between taking a slot and the EHR counting the request (connect, TLS, queueing).
    # The practice bucket holds back this much of its refill, so a request that is slower to
    # arrive than the one before it never finds the EHR's bucket (same size, same rate) empty.
    rate_limit_transit_s: float = Field(default=0.5, ge=0, le=10)
    # == Readings pipeline (SPEC §5-§7) ==
    # Webhook timestamps further than this from the hub's clock are refused as replays (SPEC §5: 5 min).
    webhook_max_skew_s: int = Field(default=300, ge=30, le=3600)
    # Webhook bodies above this are refused (413) before any parsing: one reading is < 2 KiB.
    webhook_max_body_bytes: int = Field(default=65536, ge=1024)
    # Run triage rules inside the webhook transaction (alerts commit with the reading). False:
    # the background triage service picks readings up (lower ingest latency, alerts a little later).
    triage_inline: bool = True
    # Seconds between passes of the background triage service.
    triage_sweep_interval_s: float = Field(default=10.0, gt=0)
    # Seconds between missed-reading checks.
    missed_reading_check_interval_s: float = Field(default=3600.0, gt=0)
    # Base of the identifier systems the hub mints ({base}/measurement on every Observation, {base}/device
    # for device serials). It must never change once readings were delivered: conditional create
    # matches on it. Default: {VB_PUBLIC_URL or base_url}/fhir/identifier.
    identifier_system_base: str = ""
    # LOINC for blood glucose: 2339-0 (SPEC default) or 41653-7 (capillary blood by glucometer).
    glucose_loinc: Literal["2339-0", "41653-7"] = "2339-0"
    # Readings per page when syncing a gateway's batch API.
    gateway_sync_page_size: int = Field(default=200, ge=1, le=1000)

    # == RPM billing (SPEC §13, docs/billing.md) ==
    # Days of device data the first 30-day period needs before 99453 (setup) is billable: 16 as the
    # published guidance says, or 2 where the payer accepts 99453 with 99445 under CY2026 rules.
    billing_setup_min_days: int = 16
    # Whether a live secure-message exchange counts as the interactive communication 99457/99470
    # need (sources disagree; follow your MAC). Calls, video and in-person contact always count.
    billing_messages_are_interactive: bool = False

    # == EHR delivery (SPEC §7, docs/delivery.md) ==
    # Threads that run deliveries at once per worker (in-process worker and `vitalbridge worker`).
    delivery_concurrency: int = Field(default=4, ge=1, le=256)
    # How long a claimed row belongs to its worker. Longer than one delivery can take (quick
    # retries included); a crashed worker's rows go back to pending after it.
    delivery_lease_s: float = Field(default=300.0, gt=0)
    # Seconds between outbox polls when no wake-up hint arrives.
    delivery_poll_interval_s: float = Field(default=2.0, gt=0)
    # Seconds between sweeps that return expired leases to pending.
    delivery_sweep_interval_s: float = Field(default=15.0, gt=0)
    # Quick in-call retries of a transient failure, with exponential backoff + jitter from this base.
    delivery_quick_retries: int = Field(default=3, ge=0, le=10)
    # Base of the quick retries' exponential backoff, seconds.
    delivery_quick_backoff_s: float = Field(default=0.5, ge=0)
    # After the quick retries: back to the outbox, delay base * 2^(attempts) capped, until the max age.
    delivery_retry_base_s: float = Field(default=10.0, ge=0)
    # Longest delay between outbox retries, seconds.
    delivery_retry_cap_s: float = Field(default=300.0, ge=0)
    # Age in seconds after which a still-failing delivery is given up (dead letter).
    delivery_max_age_s: float = Field(default=72 * 3600.0, gt=0)
    # How long the server's CapabilityStatement (conditionalCreate) is trusted per practice.
    delivery_capability_ttl_s: float = Field(default=3600.0, ge=0)
    # Celery queue the delivery hints go to (docs/delivery.md).
    celery_queue: str = Field(default="vitalbridge.delivery", min_length=1, max_length=200)
    # Prefix for every Redis key Celery writes, so several hubs (or test runs) can share one Redis server.
    celery_key_prefix: str = Field(default="", max_length=100)
    # == Push notifications over FCM HTTP v1 (SPEC §8, docs/notifications.md) ==
    # The Firebase service-account JSON (client_email, private_key, token_uri, project_id).
    # Unset: pushes wait in the push outbox until it is configured.
    fcm_credentials_file: Path | None = None
    # Firebase project id; default: project_id from the service-account file.
    fcm_project_id: str = ""
    # FCM API base URL (`make run` and the tests point it at the fake FCM server).
    fcm_endpoint: str = "https://fcm.googleapis.com"
    # Timeout of one FCM request, seconds.
    fcm_timeout_s: float = Field(default=10.0, gt=0)
    # A push not accepted by FCM within this many hours is given up (dead): an alert this old is news no more.
    push_max_age_hours: float = Field(default=24.0, gt=0)
    # Seconds a claimed push belongs to its sender before another may take it.
    push_lease_s: float = Field(default=60.0, gt=0)
    # Seconds between push outbox passes.
    push_sweep_interval_s: float = Field(default=2.0, gt=0)
    # A critical alert still open (unacknowledged) this long is escalated to the program's on-call list.
    escalation_minutes: int = Field(default=15, ge=1)
    # Seconds between checks for open critical alerts to escalate.
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


def env_names(name: str) -> list[str]:
    """The environment variables that set field ``name`` (the eCW names first where they exist)."""
    alias = Settings.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(a) for a in alias.choices]
    return [f"VB_{name.upper()}"]


def setting_for(loc: str) -> str:
    """The variable an error location names: a field name or one of its aliases."""
    if loc in Settings.model_fields:
        return env_names(loc)[0]
    return loc.upper()


def load_settings(**overrides: object) -> Settings:
    """Read the environment (and ``.env``) once; ``overrides`` win, for tests and the CLI."""
    return Settings(**overrides)  # type: ignore[arg-type]
