"""Fetching and caching a client's registered JWKS URL (SMART Backend Services, "Signature verification").

The token endpoint fetches the client's JWKS with httpx, keeps it for ``jwks_cache_s``, and
fetches once more when an assertion names a ``kid`` the cached set lacks, so a client that
publishes a new key before signing with it (SPEC §3 key rotation) is never refused.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc.jwk import KeySet

from vitalbridge.sandbox.errors import InvalidClient
from vitalbridge.sandbox.oauth.clients import RegisteredClient


@dataclass
class _Cached:
    keys: KeySet
    fetched_at: float


class JwksCache:
    def __init__(self, ttl_s: float, timeout_s: float) -> None:
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._http: httpx.AsyncClient | None = None
        self.fetches = 0

    async def keys_for(self, client: RegisteredClient, *, refresh: bool = False) -> KeySet:
        if client.jwks is not None:
            return KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]
        assert client.jwks_url is not None
        url = client.jwks_url
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            cached = self._cache.get(url)
            fresh = cached is not None and time.monotonic() - cached.fetched_at < self._ttl_s
            if cached is not None and fresh and not refresh:
                return cached.keys
            keys = await self._fetch(url)
            self._cache[url] = _Cached(keys, time.monotonic())
            return keys

    async def _fetch(self, url: str) -> KeySet:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout_s, follow_redirects=False)
        self.fetches += 1
        try:
            resp = await self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise InvalidClient(f"could not fetch the registered JWKS URL {url}: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise InvalidClient(f"the registered JWKS URL {url} answered HTTP {resp.status_code}; it must answer 200")
        try:
            document: Any = resp.json()
            return KeySet.import_key_set(document)
        except Exception as exc:
            raise InvalidClient(f"the document at {url} is not a JWK Set ({{'keys': [...]}})") from exc

    def forget(self, url: str | None = None) -> None:
        if url is None:
            self._cache.clear()
        else:
            self._cache.pop(url, None)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
