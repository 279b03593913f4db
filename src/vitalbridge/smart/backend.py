"""SMART Backend Services (SPEC §3): ``client_credentials`` tokens for a practice, cached and
shared by every hub process (``token_cache``), each request counted against the practice's
rate limit because eCW counts token calls against the same budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import httpx

from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.ehr.ratelimit import RateLimiter
from vitalbridge.errors import EhrRateLimited
from vitalbridge.smart.client_auth import ClientAuthenticator
from vitalbridge.smart.models import GrantKind
from vitalbridge.smart.oauth import TokenContext, TokenResponse, post_token
from vitalbridge.smart.token_cache import TokenCache
from vitalbridge.smart.tokens import AccessToken

GRANT_TYPE = "client_credentials"


class BackendTokens:
    def __init__(
        self,
        *,
        http: httpx.Client,
        authenticator: ClientAuthenticator,
        limiter: RateLimiter,
        cache: TokenCache,
        jwks_url: Callable[[PracticeConnection], str],
    ) -> None:
        self._http = http
        self._authenticator = authenticator
        self._limiter = limiter
        self.cache = cache
        self.jwks_url = jwks_url

    def __repr__(self) -> str:
        return "BackendTokens()"

    def request(self, conn: PracticeConnection, scopes: Iterable[str] | None = None) -> TokenResponse:
        """One token request to the EHR, bypassing the cache (the cache calls this when due)."""
        scope = " ".join(scopes if scopes is not None else conn.scopes)
        self._limiter.acquire(conn)
        # Signed after the rate-limit wait so the assertion is as fresh as possible.
        auth = self._authenticator.for_practice(conn, conn.token_url)
        ctx = TokenContext(
            token_url=conn.token_url,
            grant_type=GRANT_TYPE,
            client_id=conn.client_id,
            auth_method=conn.auth_method,
            requested_scope=scope,
            kid=auth.kid,
            jwks_url=self.jwks_url(conn),
        )
        try:
            return post_token(
                self._http, {"grant_type": GRANT_TYPE, "scope": scope}, auth, ctx, timeout=conn.request_timeout_s
            )
        except EhrRateLimited as exc:
            # The token endpoint shares the practice's budget: hold the whole practice back.
            self._limiter.slow_down(conn.id, exc.retry_after, minute_window=exc.minute_window)
            raise

    def token(
        self, conn: PracticeConnection, scopes: Iterable[str] | None = None, *, force: bool = False
    ) -> AccessToken:
        """A cached token for the practice's scopes (or ``scopes``), renewed single-flight when due."""
        wanted = tuple(scopes if scopes is not None else conn.scopes)
        return self.cache.get(
            conn,
            GrantKind.backend,
            wanted,
            lambda _refresh: self.request(conn, wanted),
            grant_type=GRANT_TYPE,
            force=force,
        )

    def invalidate(self, conn: PracticeConnection, token: AccessToken, scopes: Iterable[str] | None = None) -> bool:
        wanted = tuple(scopes if scopes is not None else conn.scopes)
        return self.cache.invalidate(conn, GrantKind.backend, wanted, token.generation)
