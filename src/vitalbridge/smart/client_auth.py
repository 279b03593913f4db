"""Client authentication at a practice's token endpoint (SPEC §3): ``private_key_jwt`` with an
RS384 assertion signed by the hub's active key (default), or ``client_secret_basic`` with the
practice's sealed secret. Built right before each request: an assertion is single-use and
short-lived.
"""

from __future__ import annotations

from vitalbridge.crypto.sealing import Sealer
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.errors import ConfigurationError
from vitalbridge.smart.assertion import JWT_BEARER, client_assertion
from vitalbridge.smart.keys import KeyRing
from vitalbridge.smart.oauth import ClientAuth
from vitalbridge.tenancy.models import AuthMethod
from vitalbridge.tenancy.service import CLIENT_SECRET_PURPOSE


class ClientAuthenticator:
    def __init__(self, keyring: KeyRing, sealer: Sealer, *, assertion_lifetime_s: int = 240) -> None:
        self.keyring = keyring
        self._sealer = sealer
        self._lifetime_s = assertion_lifetime_s

    def __repr__(self) -> str:
        return "ClientAuthenticator()"

    def for_practice(self, conn: PracticeConnection, token_url: str) -> ClientAuth:
        if conn.auth_method is AuthMethod.client_secret_basic:
            if conn.client_secret_sealed is None:
                raise ConfigurationError(
                    f"practice {conn.practice_code} uses client_secret_basic but has no client secret stored"
                )
            secret = self._sealer.open_text(conn.client_secret_sealed, CLIENT_SECRET_PURPOSE)
            return ClientAuth(method=conn.auth_method, client_id=conn.client_id, basic=(conn.client_id, secret))
        key = self.keyring.signing_key(conn.key_set_owner)
        assertion = client_assertion(key, client_id=conn.client_id, token_url=token_url, lifetime_s=self._lifetime_s)
        return ClientAuth(
            method=AuthMethod.private_key_jwt,
            client_id=conn.client_id,
            form={"client_assertion_type": JWT_BEARER, "client_assertion": assertion},
            kid=key.kid,
        )
