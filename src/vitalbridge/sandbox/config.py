"""Sandbox start-up options (``vitalbridge sandbox --help``; docs/sandbox.md lists every knob)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vitalbridge.sandbox.profile import Profile

DEFAULT_PRACTICES = ("JAFJCD",)


@dataclass(frozen=True)
class SandboxConfig:
    practices: tuple[str, ...] = DEFAULT_PRACTICES
    # ecw: behave like eClinicalWorks (SPEC §11); generic: a strict textbook SMART server.
    # The switches of a profile can be changed one by one at run time (PUT /_sandbox/behaviour).
    profile: Profile = Profile.ecw
    patients_per_practice: int = 1000
    seed: int = 7
    # eCW issues 60-minute tokens; tests shorten this to watch renewal happen.
    token_lifetime_s: int = 3600
    # eCW: 250 calls/min per practice code, token requests included.
    rate_limit_per_minute: int = 250
    state_file: Path | None = None
    # The URL clients reach the sandbox at; token `aud` must equal {issuer}/oauth/oauth2/token.
    # Empty: derived from each request's Host.
    issuer: str = ""
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)
    # SMART Backend Services caps assertion lifetime at five minutes (exp - iat <= 300).
    assertion_max_lifetime_s: int = 300
    # How long a fetched client JWKS is trusted before it is fetched again.
    jwks_cache_s: float = 300.0
    jwks_fetch_timeout_s: float = 5.0
    # Authorization codes are short-lived and single-use (RFC 6749 §4.1.2 recommends <= 10 min).
    code_lifetime_s: int = 60
    # eCW: refresh tokens last 7 days from consent.
    refresh_token_lifetime_s: int = 7 * 24 * 3600
    # FHIR search paging: default page size and the cap applied to larger `_count` values.
    search_default_count: int = 20
    search_max_count: int = 100
    # Bulk $export: how long a job "runs" (so clients exercise polling), how long results stay,
    # and how many resources go in one NDJSON file before the next file starts.
    export_job_s: float = 1.0
    export_retention_s: int = 3600
    export_file_max_resources: int = 50_000
    # How long a `timeout` fault holds a request when the fault plan does not say.
    fault_timeout_s: float = 30.0
    # How often the optional state file is rewritten while observations or clients change.
    state_save_interval_s: float = 1.0
