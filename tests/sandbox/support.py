"""Helpers for talking to a sandbox over real HTTP: client assertions, hand-built negative JWTs,
vital-sign Observations, and a small facade over one running sandbox."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import itertools
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey

from vitalbridge.sandbox.config import SandboxConfig

PRACTICE = "JAFJCD"
OTHER_PRACTICE = "PRAC2"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CATEGORY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}
BACKEND_SCOPES = ["system/Patient.read", "system/Observation.read", "system/Observation.write"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_for(client_id: str, aud: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": now,
        "exp": now + 240,
        "jti": str(uuid.uuid4()),
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def signed_assertion(
    key: RSAKey, client_id: str, aud: str, *, kid: str | None = "default", alg: str = "RS384", **claims: Any
) -> str:
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    kid = key.kid if kid == "default" else kid
    if kid is not None:
        header["kid"] = kid
    return jwt.encode(header, claims_for(client_id, aud, **claims), key, algorithms=[alg])


def hand_built(header: dict[str, Any], claims: dict[str, Any], hmac_secret: bytes | None = None) -> str:
    """An unsigned (alg none) or HMAC-signed JWT, built by hand for refusal tests only."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = b""
    if hmac_secret is not None:
        signature = hmac.new(hmac_secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


@functools.cache
def _key_material(slot: int) -> Any:
    return RSAKey.generate_key(2048).private_key


_next_slot = itertools.count()


def new_key(kid: str | None = None, alg: str | None = "RS384") -> RSAKey:
    """A fresh RSA key; consecutive calls never share key material.

    RSA generation is slow, so the material cycles through a few keys made once per session.
    """
    params: dict[str, Any] = {"kid": kid or secrets.token_hex(4), "use": "sig"}
    if alg:
        params["alg"] = alg
    return RSAKey.import_key(_key_material(next(_next_slot) % 4), parameters=params)  # type: ignore[arg-type]


def public_jwks(*keys: RSAKey) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def pkce_pair() -> tuple[str, str]:
    verifier = b64url(secrets.token_bytes(32))
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


def vital(
    patient_id: str,
    *,
    loinc: str = "8867-4",
    value: float = 72,
    unit: str = "/min",
    identifier: str | None = None,
) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [CATEGORY],
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2026-02-09T10:30:00Z",
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    }
    if identifier is not None:
        obs["identifier"] = [{"system": "urn:vitalbridge:reading", "value": identifier}]
    return obs


def bp_panel(patient_id: str, systolic: float = 138, diastolic: float = 88, unit: str = "mm[Hg]") -> dict[str, Any]:
    def component(code: str, value: float) -> dict[str, Any]:
        return {
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "valueQuantity": {"value": value, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": unit},
        }

    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [CATEGORY],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2026-02-09T10:30:00Z",
        "component": [component("8480-6", systolic), component("8462-4", diastolic)],
    }


@dataclass
class Sandbox:
    """One running sandbox and an HTTP client pointed at it."""

    url: str
    http: httpx.Client
    config: SandboxConfig
    keys: dict[str, RSAKey] = field(default_factory=dict)

    @property
    def token_url(self) -> str:
        return f"{self.url}/oauth/oauth2/token"

    def base(self, practice: str = PRACTICE) -> str:
        return f"{self.url}/fhir/r4/{practice}"

    def register(self, client_id: str, **body: Any) -> dict[str, Any]:
        body.setdefault("scopes", BACKEND_SCOPES)
        body.setdefault("practices", [PRACTICE])
        resp = self.http.post("/_sandbox/clients", json={"client_id": client_id, **body})
        assert resp.status_code in (200, 201), resp.text
        result: dict[str, Any] = resp.json()
        return result

    def register_keyed(self, client_id: str, key: RSAKey | None = None, **body: Any) -> RSAKey:
        key = key or new_key()
        self.keys[client_id] = key
        body.setdefault("jwks", public_jwks(key))
        self.register(client_id, **body)
        return key

    def request_token(self, form: dict[str, str], **kwargs: Any) -> httpx.Response:
        return self.http.post("/oauth/oauth2/token", data=form, **kwargs)

    def assertion_form(self, assertion: str, scope: str | None = None) -> dict[str, str]:
        form = {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER, "client_assertion": assertion}
        if scope is not None:
            form["scope"] = scope
        return form

    def backend_token(self, client_id: str, scope: str | None = None) -> str:
        assertion = signed_assertion(self.keys[client_id], client_id, self.token_url)
        resp = self.request_token(self.assertion_form(assertion, scope))
        assert resp.status_code == 200, resp.text
        token: str = resp.json()["access_token"]
        return token

    def basic_token(self, client_id: str, secret: str, scope: str | None = None) -> str:
        form = {"grant_type": "client_credentials"} | ({"scope": scope} if scope else {})
        resp = self.request_token(form, auth=(client_id, secret))
        assert resp.status_code == 200, resp.text
        token: str = resp.json()["access_token"]
        return token

    def get(
        self,
        path: str,
        token: str | None,
        practice: str = PRACTICE,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.get(f"/fhir/r4/{practice}/{path}", headers=auth | (headers or {}), **kwargs)

    def post_observation(
        self, token: str, resource: dict[str, Any], practice: str = PRACTICE, **headers: str
    ) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json", **headers}
        return self.http.post(f"/fhir/r4/{practice}/Observation", content=json.dumps(resource), headers=all_headers)

    def patient_ids(self, token: str, practice: str = PRACTICE, count: int = 5) -> list[str]:
        resp = self.get("Patient", token, practice, params={"_count": count})
        assert resp.status_code == 200, resp.text
        return [e["resource"]["id"] for e in resp.json()["entry"]]

    def stored(self, practice: str = PRACTICE) -> list[dict[str, Any]]:
        resp = self.http.get("/_sandbox/observations", params={"practice": practice})
        return [o["resource"] for o in resp.json()["observations"]]

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.http.get("/_sandbox/stats").json()
        return result
