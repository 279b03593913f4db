"""Access tokens as the rest of the hub sees them, and the cache's timing rules (SPEC §3)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from vitalbridge.smart.models import GrantKind

# Never hand out a token this close to expiry: it could expire on its way to the EHR.
EXPIRY_SAFETY_S = 2.0
# The cache key of a practice's (single) standalone grant.
STANDALONE_KEY = "standalone"


def scope_key(scopes: Iterable[str]) -> str:
    return hashlib.sha256(" ".join(sorted(set(scopes))).encode()).hexdigest()


def renew_margin_s(lifetime_s: float, renew_before_s: float) -> float:
    """SPEC §3 renews 300 s early; a token shorter than 600 s is renewed at half-life instead."""
    return min(renew_before_s, lifetime_s / 2.0)


@dataclass(frozen=True)
class AccessToken:
    """An access token ready for the ``Authorization`` header. Its value never appears in ``repr``."""

    value: str = field(repr=False)
    token_type: str
    expires_at: datetime
    scope: str
    generation: int
    kind: GrantKind
    # Seconds the EHR granted it for (its expires_in); 0 when unknown.
    lifetime_s: int = 0

    @property
    def authorization(self) -> str:
        return f"Bearer {self.value}"
