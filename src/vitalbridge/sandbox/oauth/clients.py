"""Registered clients and their practice activations (SPEC §2, §11; eCW's developer portal model).

A client is registered once (client id, credentials, scopes, redirect URIs) and each practice
activates it: its tokens work only at the practices listed. Credentials decide the client type
(RFC 6749 §2.1): a JWKS (URL or inline) or a secret makes it confidential; neither makes it a
public client, which may only use the authorization code flow with PKCE.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vitalbridge.sandbox.oauth.scopes import check_scopes


class ClientIn(BaseModel):
    """Body of ``POST /_sandbox/clients`` (upsert)."""

    model_config = ConfigDict(extra="forbid")

    # Some EHRs issue a signed JWT of several hundred characters as the client id.
    client_id: str = Field(min_length=1, max_length=4096)
    jwks_url: str | None = None
    jwks: dict[str, Any] | None = None
    client_secret: str | None = Field(default=None, min_length=1)
    scopes: list[str] = Field(default_factory=list)
    practices: list[str] = Field(min_length=1)
    redirect_uris: list[str] = Field(default_factory=list)

    @field_validator("scopes")
    @classmethod
    def _scopes_are_smart(cls, scopes: list[str]) -> list[str]:
        problems = check_scopes(scopes)
        if problems:
            raise ValueError("; ".join(problems))
        return scopes

    @field_validator("jwks_url")
    @classmethod
    def _jwks_url_is_http(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("jwks_url must be an http(s) URL")
        return url

    @model_validator(mode="after")
    def _one_key_source(self) -> ClientIn:
        if self.jwks_url and self.jwks is not None:
            raise ValueError("give jwks_url or jwks, not both")
        if self.jwks is not None:
            from joserfc.jwk import KeySet

            try:
                keys = KeySet.import_key_set(self.jwks)  # type: ignore[arg-type]
            except Exception as exc:
                raise ValueError(f"jwks is not a JWK Set: {exc}") from exc
            # Keep public members only: a private key pasted here by mistake is never stored or echoed.
            self.jwks = dict(keys.as_dict(private=False))
        if not (self.jwks_url or self.jwks or self.client_secret) and not self.redirect_uris:
            raise ValueError("a public client (no jwks_url, jwks or client_secret) needs redirect_uris")
        return self


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    practices: frozenset[str]
    scopes: tuple[str, ...]
    redirect_uris: tuple[str, ...]
    jwks_url: str | None
    jwks: dict[str, Any] | None
    client_secret: str | None

    @property
    def confidential(self) -> bool:
        return bool(self.jwks_url or self.jwks is not None or self.client_secret)

    @property
    def uses_keys(self) -> bool:
        return bool(self.jwks_url or self.jwks is not None)

    def secret_matches(self, presented: str) -> bool:
        # Constant time, so response timing reveals nothing about the secret (RFC 6749 §10.3 spirit).
        if self.client_secret is None:
            return False
        return hmac.compare_digest(self.client_secret.encode(), presented.encode())

    def public_view(self) -> dict[str, Any]:
        """What the control API shows: never the secret."""
        return {
            "client_id": self.client_id,
            "practices": sorted(self.practices),
            "scopes": list(self.scopes),
            "redirect_uris": list(self.redirect_uris),
            "jwks_url": self.jwks_url,
            "jwks": self.jwks,
            "has_client_secret": self.client_secret is not None,
            "type": "confidential" if self.confidential else "public",
        }

    def as_input(self) -> ClientIn:
        return ClientIn(
            client_id=self.client_id,
            jwks_url=self.jwks_url,
            jwks=self.jwks,
            client_secret=self.client_secret,
            scopes=list(self.scopes),
            practices=sorted(self.practices),
            redirect_uris=list(self.redirect_uris),
        )


class ClientRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, RegisteredClient] = {}

    def upsert(self, body: ClientIn) -> tuple[RegisteredClient, bool]:
        client = RegisteredClient(
            client_id=body.client_id,
            practices=frozenset(body.practices),
            scopes=tuple(dict.fromkeys(body.scopes)),
            redirect_uris=tuple(body.redirect_uris),
            jwks_url=body.jwks_url,
            jwks=body.jwks,
            client_secret=body.client_secret,
        )
        with self._lock:
            created = body.client_id not in self._clients
            self._clients[body.client_id] = client
        return client, created

    def get(self, client_id: str) -> RegisteredClient | None:
        return self._clients.get(client_id)

    def remove(self, client_id: str) -> bool:
        with self._lock:
            return self._clients.pop(client_id, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._clients.clear()

    def __iter__(self) -> Iterator[RegisteredClient]:
        return iter(list(self._clients.values()))
