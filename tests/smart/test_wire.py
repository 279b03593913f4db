"""What the hub puts on the wire at a token endpoint, captured by a recording token server on
loopback: RS384 with the published kid, the RFC 7523 form, and RFC 6749 §2.3.1 Basic auth."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.smart.conftest import SmartEnv
from vitalbridge.servers import ServerThread
from vitalbridge.tenancy.models import AuthMethod


class RecordingTokenEndpoint:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict[str, str]]] = []

    def app(self) -> Starlette:
        async def token(request: Request) -> JSONResponse:
            form = {k: str(v) for k, v in (await request.form()).items()}
            self.requests.append((form, dict(request.headers)))
            return JSONResponse({"access_token": uuid.uuid4().hex, "token_type": "bearer", "expires_in": 3600})

        return Starlette(routes=[Route("/token", token, methods=["POST"])])


@pytest.fixture
def recorder() -> Iterator[tuple[RecordingTokenEndpoint, str]]:
    endpoint = RecordingTokenEndpoint()
    with ServerThread(endpoint.app()) as url:
        yield endpoint, f"{url}/token"


def test_private_key_jwt_on_the_wire(smart_env: SmartEnv, recorder: tuple[RecordingTokenEndpoint, str]) -> None:
    endpoint, token_url = recorder
    conn = smart_env.add_practice("PRAC2", token_url=token_url, scopes=["system/Patient.read"])
    smart_env.smart.backend.token(conn)
    [(form, headers)] = endpoint.requests
    assert "authorization" not in headers
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == "system/Patient.read"
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    jwks = smart_env.api.get(smart_env.jwks_path).json()
    decoded = jwt.decode(form["client_assertion"], KeySet.import_key_set(jwks), algorithms=["RS384"])
    assert decoded.header["alg"] == "RS384"
    assert decoded.header["typ"] == "JWT"
    assert decoded.header["kid"] == jwks["keys"][0]["kid"]
    claims: dict[str, Any] = decoded.claims
    assert claims["iss"] == claims["sub"] == conn.client_id
    assert claims["aud"] == token_url
    assert claims["exp"] - claims["iat"] <= 300
    assert uuid.UUID(claims["jti"]).version == 4


def test_client_secret_basic_on_the_wire(smart_env: SmartEnv, recorder: tuple[RecordingTokenEndpoint, str]) -> None:
    endpoint, token_url = recorder
    conn = smart_env.add_practice(
        "PRAC2",
        token_url=token_url,
        client_id="id with:colon",
        auth_method=AuthMethod.client_secret_basic,
        client_secret="p@ss word/+",
    )
    smart_env.smart.backend.token(conn)
    [(form, headers)] = endpoint.requests
    assert "client_assertion" not in form
    assert "client_secret" not in form
    scheme, _, value = headers["authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(value).decode().partition(":")
    assert (unquote_plus(user), unquote_plus(password)) == ("id with:colon", "p@ss word/+")
