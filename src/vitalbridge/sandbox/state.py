"""Everything one sandbox instance remembers (SPEC §11), in memory, owned by its ASGI app.

Nothing here is shared with the hub: each ``create_sandbox_app`` builds its own state, so tests
can run several sandboxes side by side. Stores guard their own mutations with locks; the app
itself runs on one event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from vitalbridge.sandbox.config import SandboxConfig
from vitalbridge.sandbox.errors import not_found
from vitalbridge.sandbox.faults import FaultBoard
from vitalbridge.sandbox.fhir.bulk_jobs import ExportJobs
from vitalbridge.sandbox.fhir.merges import MergeRegistry
from vitalbridge.sandbox.fhir.store import ObservationStore
from vitalbridge.sandbox.oauth.clients import ClientRegistry
from vitalbridge.sandbox.oauth.jwks import JwksCache
from vitalbridge.sandbox.oauth.tokens import TokenStore
from vitalbridge.sandbox.profile import Behaviour, profile_defaults
from vitalbridge.sandbox.ratelimit import RateLimiter
from vitalbridge.sandbox.stats import Stats
from vitalbridge.sandbox.synthetic import SyntheticPatients

TOKEN_PATH = "/oauth/oauth2/token"
AUTHORIZE_PATH = "/oauth/oauth2/authorize"
REVOKE_PATH = "/oauth/oauth2/revoke"
FHIR_PREFIX = "/fhir/r4"


@dataclass
class SandboxState:
    config: SandboxConfig
    clients: ClientRegistry = field(default_factory=ClientRegistry)
    tokens: TokenStore = field(default_factory=TokenStore)
    observations: ObservationStore = field(default_factory=ObservationStore)
    merges: MergeRegistry = field(default_factory=MergeRegistry)
    exports: ExportJobs = field(default_factory=ExportJobs)
    faults: FaultBoard = field(default_factory=FaultBoard)
    stats: Stats = field(default_factory=Stats)
    patients: dict[str, SyntheticPatients] = field(default_factory=dict)
    limiter: RateLimiter = field(init=False)
    behaviour: Behaviour = field(init=False)
    jwks: JwksCache = field(init=False)

    def __post_init__(self) -> None:
        cfg = self.config
        self.limiter = RateLimiter(cfg.rate_limit_per_minute)
        self.jwks = JwksCache(cfg.jwks_cache_s, cfg.jwks_fetch_timeout_s)
        self.patients = {p: SyntheticPatients(cfg.seed, p, cfg.patients_per_practice) for p in cfg.practices}
        self.client_changes = 0
        self.set_behaviour(profile_defaults(cfg.profile))

    def set_behaviour(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.limiter.minute_window = behaviour.rate_limit_window == "minute"

    def retry_after(self, wait: int) -> dict[str, str]:
        """The ``Retry-After`` header of a rate-limit refusal, if this profile sends one."""
        return {"Retry-After": str(wait)} if self.behaviour.retry_after_on_429 else {}

    def backend_token_lifetime_s(self) -> int:
        lifetime = self.behaviour.backend_token_lifetime_s
        return self.config.token_lifetime_s if lifetime is None else lifetime

    def patients_of(self, practice: str) -> SyntheticPatients:
        patients = self.patients.get(practice)
        if patients is None:
            raise not_found(f"unknown practice code {practice!r}; this sandbox serves {', '.join(self.patients)}")
        return patients

    def reset(self, *, clients: bool = False) -> None:
        """Back to a fresh start; registered clients stay unless asked (they are configuration)."""
        self.tokens.clear()
        self.observations.clear()
        self.merges.clear()
        self.exports.clear()
        self.faults.clear()
        self.stats.reset()
        self.limiter.reset()
        self.jwks.forget()
        self.set_behaviour(profile_defaults(self.config.profile))
        if clients:
            self.clients.clear()
            self.client_changes += 1


def sandbox_state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


def issuer(request: Request) -> str:
    """The sandbox's own origin as clients reach it: config.issuer, else the request's Host."""
    configured: str = sandbox_state(request).config.issuer
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/")


def token_url(request: Request) -> str:
    return issuer(request) + TOKEN_PATH


def fhir_base(request: Request, practice: str) -> str:
    return f"{issuer(request)}{FHIR_PREFIX}/{practice}"
