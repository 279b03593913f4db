"""Pieces of the standalone launch (SMART App Launch 2.0) that need no database or network:
scopes, PKCE and ``state`` parameters, and what ``start``/``complete`` return."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

CALLBACK_PATH = "/api/v1/ecw/auth/callback/"
# A refresh token is what makes the grant outlive the first access token.
LAUNCH_SCOPES = ("offline_access",)
# RFC 7636 §4.1: 43 to 128 characters; 64 from [A-Za-z0-9] carries ~380 bits.
VERIFIER_LENGTH = 64
# Only RFC 6749 error-code shaped values from the redirect are echoed back in messages.
ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


def state_digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def launch_scopes(practice_scopes: Iterable[str]) -> list[str]:
    """Scopes for a user-consented grant: the practice's user/ or patient/ scopes if it has any,
    else its system/ scopes in user context, plus ``offline_access`` for a refresh token."""
    given = list(practice_scopes)
    if any(s.startswith(("user/", "patient/")) for s in given):
        chosen = [s for s in given if not s.startswith("system/")]
    else:
        chosen = ["user/" + s.split("/", 1)[1] for s in given if s.startswith("system/")]
    return list(dict.fromkeys([*chosen, *LAUNCH_SCOPES]))


@dataclass(frozen=True)
class LaunchStart:
    authorization_url: str
    state: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True)
class LaunchResult:
    practice_id: str
    practice_code: str
    scope: str
    expires_at: datetime
    refresh_token_issued: bool
