"""The SMART machinery of one hub, wired once and shared by the API, CLI and workers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from vitalbridge.db.base import utcnow
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.ehr.ratelimit import RateLimiter
from vitalbridge.runtime import Hub
from vitalbridge.security.outbound import guarded_transport
from vitalbridge.settings import Settings
from vitalbridge.smart.backend import BackendTokens
from vitalbridge.smart.client_auth import ClientAuthenticator
from vitalbridge.smart.keys import KeyRing
from vitalbridge.smart.launch import CALLBACK_PATH
from vitalbridge.smart.standalone import StandaloneFlow
from vitalbridge.smart.token_cache import TokenCache

# The hub-wide key set: for a single-tenant hub and for practices registered before per-organization sets.
JWKS_PATH = "/.well-known/jwks.json"
# One key set per organization; the key set id is the organization's id.
ORG_JWKS_PATH = "/.well-known/jwks/{key_set_id}.json"
_EXTRA = "smart"
_CREATE_LOCK = threading.Lock()


def jwks_url(settings: Settings, organization_id: str | None = None) -> str:
    """The JWKS URL of one key set: an organization's, or (None) the hub-wide one."""
    if organization_id is None:
        return settings.base_url + JWKS_PATH
    return settings.base_url + ORG_JWKS_PATH.format(key_set_id=organization_id)


def practice_jwks_url(settings: Settings, conn: PracticeConnection) -> str:
    """The URL to register with this practice's EHR: the key set its assertions are signed with."""
    return jwks_url(settings, conn.key_set_owner)


def redirect_uri(settings: Settings) -> str:
    return settings.base_url + CALLBACK_PATH


@dataclass
class Smart:
    settings: Settings
    http: httpx.Client
    keyring: KeyRing
    authenticator: ClientAuthenticator
    limiter: RateLimiter
    cache: TokenCache
    backend: BackendTokens
    standalone: StandaloneFlow

    def close(self) -> None:
        self.http.close()


def build_smart(
    hub: Hub,
    *,
    clock: Callable[[], datetime] = utcnow,
    limiter_clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx.BaseTransport | None = None,
) -> Smart:
    """Wire the pieces. Tests pass a controllable ``clock`` to watch renewal without waiting."""
    s = hub.settings
    # No redirects: a token endpoint that redirects is misconfigured, and following it would
    # resend credentials to wherever it points.
    # Every EHR call (FHIR, token, discovery, revocation) goes through this client: its transport
    # checks the addresses it connects to (DNS rebinding), unless a test passes its own.
    http = httpx.Client(
        follow_redirects=False, transport=transport or guarded_transport(hub.outbound_policy), timeout=30.0
    )
    keyring = KeyRing(hub.sessions, hub.sealer, key_size=s.key_size)
    authenticator = ClientAuthenticator(keyring, hub.sealer, assertion_lifetime_s=s.assertion_lifetime_s)
    limiter = RateLimiter(
        hub.sessions,
        hub_rate_per_s=s.ecw_rate_limit,
        max_wait_s=s.rate_limit_max_wait_s,
        transit_s=s.rate_limit_transit_s,
        clock=limiter_clock,
        sleep=sleep,
    )
    # A lease outlives the longest a holder can take: rate-limit wait plus a slow token request.
    lease_s = s.rate_limit_max_wait_s + 60.0
    cache = TokenCache(
        hub.sessions,
        hub.sealer,
        renew_before_s=s.token_renew_before_s,
        lease_s=lease_s,
        wait_s=lease_s + 30.0,
        clock=clock,
    )

    def jwks_for(conn: PracticeConnection) -> str:
        return practice_jwks_url(s, conn)

    backend = BackendTokens(http=http, authenticator=authenticator, limiter=limiter, cache=cache, jwks_url=jwks_for)
    standalone = StandaloneFlow(
        sessions=hub.sessions,
        sealer=hub.sealer,
        http=http,
        authenticator=authenticator,
        limiter=limiter,
        cache=cache,
        redirect_uri=redirect_uri(s),
        jwks_url=jwks_for,
        state_ttl_s=s.launch_state_ttl_s,
    )
    return Smart(s, http, keyring, authenticator, limiter, cache, backend, standalone)


def smart_for(hub: Hub) -> Smart:
    """The hub's shared instance (created on first use, closed with the hub)."""
    with _CREATE_LOCK:
        existing = hub.extras.get(_EXTRA)
        if isinstance(existing, Smart):
            return existing
        smart = build_smart(hub)
        hub.extras[_EXTRA] = smart
        return smart
