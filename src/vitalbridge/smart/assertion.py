"""Client assertions for ``private_key_jwt`` (RFC 7523 §2.2 and §3, SMART Backend Services).

Header ``alg=RS384``, ``kid`` of the signing key, ``typ=JWT``; claims ``iss`` = ``sub`` = client
id, ``aud`` = the token endpoint URL, ``iat``, ``exp`` at most 300 s later, and a fresh UUID4
``jti`` (the EHR refuses a replayed one). Signed by joserfc, never by hand.
"""

from __future__ import annotations

import time
import uuid

from joserfc import jwt

from vitalbridge.smart.keys import SIGNING_ALGORITHM, LoadedKey

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_LIFETIME_S = 300


def client_assertion(
    key: LoadedKey, *, client_id: str, token_url: str, lifetime_s: int = 240, now: float | None = None
) -> str:
    """A signed, single-use assertion. Treat the result as a secret: it is a credential for
    as long as it lives, so it is never logged, stored or put in an error message."""
    iat = int(time.time() if now is None else now)
    header = {"alg": SIGNING_ALGORITHM, "kid": key.kid, "typ": "JWT"}
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": iat,
        "exp": iat + min(lifetime_s, MAX_LIFETIME_S),
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(header, claims, key.key, algorithms=[SIGNING_ALGORITHM])
