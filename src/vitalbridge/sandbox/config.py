"""Sandbox start-up options (``vitalbridge sandbox --help``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PRACTICES = ("JAFJCD",)


@dataclass(frozen=True)
class SandboxConfig:
    practices: tuple[str, ...] = DEFAULT_PRACTICES
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
