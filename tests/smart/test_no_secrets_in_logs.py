"""No private key, access token, refresh token, client secret, verifier or client assertion in
any log line — root logger at DEBUG, httpx/httpcore/SQLAlchemy included — while driving every
SMART flow, the failing ones too (SPEC §3, §9)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from tests.leaks import LeakHarness
from tests.smart.conftest import SmartEnv
from tests.smart.test_standalone import connect
from vitalbridge.errors import VitalbridgeError
from vitalbridge.observability.logging import configure_logging
from vitalbridge.smart.models import (
    ACCESS_TOKEN_PURPOSE,
    PRIVATE_KEY_PURPOSE,
    REFRESH_TOKEN_PURPOSE,
    EhrToken,
    GrantKind,
    SigningKey,
)
from vitalbridge.tenancy.models import AuthMethod

CLIENT_SECRET = "basic-Secret-Value-8f3a1c"
JWT_SHAPED = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[Capture]:
    root = logging.getLogger()
    handler = Capture()
    saved = {
        name: logging.getLogger(name).level for name in ("", "httpx", "httpcore", "sqlalchemy.engine", "vitalbridge")
    }
    root.addHandler(handler)
    for name in saved:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def stored_secrets(env: SmartEnv) -> set[str]:
    found: set[str] = set()
    with env.hub.sessions() as session:
        for row in session.scalars(select(EhrToken)):
            if row.access_token_sealed:
                found.add(env.hub.sealer.open_text(row.access_token_sealed, ACCESS_TOKEN_PURPOSE))
            if row.refresh_token_sealed:
                found.add(env.hub.sealer.open_text(row.refresh_token_sealed, REFRESH_TOKEN_PURPOSE))
        for key in session.scalars(select(SigningKey)):
            pem = env.hub.sealer.open_text(key.private_key_sealed, PRIVATE_KEY_PURPOSE)
            found.update(line for line in pem.splitlines() if line and not line.startswith("-----"))
            from joserfc.jwk import RSAKey

            private = RSAKey.import_key(pem).as_dict(private=True)
            found.update(str(private[m]) for m in ("d", "p", "q", "dp", "dq", "qi"))
    return found


def drive_every_flow(env: SmartEnv) -> tuple[set[str], list[str]]:
    """Backend (both auth methods, a 401, refusals), standalone (connect, refresh, revoke).
    Returns the secrets that existed along the way and the error messages raised."""
    secrets: set[str] = {CLIENT_SECRET}
    errors: list[str] = []
    client = env.client()

    # Backend services with private_key_jwt, a 401 and its renewal; a search by name and birth date.
    client.get(env.practice, "Patient", params={"family": "Quarrington", "birthdate": "1957-03-09"})
    secrets |= stored_secrets(env)
    env.sandbox.http.post("/_sandbox/reset", json={"clients": False})
    client.get(env.practice, "metadata")
    secrets |= stored_secrets(env)

    # client_secret_basic, right and wrong.
    basic = env.add_practice(
        "PRAC2", client_id="basic-client", auth_method=AuthMethod.client_secret_basic, client_secret=CLIENT_SECRET
    )
    env.sandbox.register("basic-client", client_secret=CLIENT_SECRET, practices=["PRAC2"])
    client.get(basic, "metadata")
    secrets |= stored_secrets(env)
    env.sandbox.register("basic-client", client_secret="a-different-secret", practices=["PRAC2"])
    with pytest.raises(VitalbridgeError) as refused:
        env.smart.backend.token(basic, force=True)
    errors.append(str(refused.value))

    # An unregistered JWKS: invalid_client.
    env.register_client(jwks_url=f"{env.hub_url}/nowhere.json")
    with pytest.raises(VitalbridgeError) as refused:
        env.smart.backend.token(env.practice, force=True)
    errors.append(str(refused.value))
    env.register_client()

    # Standalone launch, refresh, revoke.
    connect(env)
    secrets |= stored_secrets(env)
    client.get(env.practice, "Patient", params={"_count": 1}, grant=GrantKind.standalone)
    env.smart.standalone.token(env.practice, force=True)
    secrets |= stored_secrets(env)
    env.api.post("/api/v1/ecw/auth/revoke/", json={"practice": "JAFJCD"}, headers=env.tenant.headers)
    with pytest.raises(VitalbridgeError) as refused:
        env.smart.standalone.token(env.practice)
    errors.append(str(refused.value))

    return secrets, errors


def test_no_secret_reaches_any_log_line(smart_env: SmartEnv, captured: Capture) -> None:
    env = smart_env
    secrets, errors = drive_every_flow(env)
    text = "\n".join(captured.lines)
    # The capture really saw the traffic (so the absence below means something).
    assert "HTTP Request: POST" in text
    assert "token request grant=client_credentials" in text
    assert len(secrets) > 10
    # Search values are PHI: httpx's own request lines lose their query string.
    assert "Patient?…" in text
    assert "Quarrington" not in text
    assert "1957-03-09" not in text
    leaked = [s for s in secrets if s in text]
    assert leaked == []
    assert JWT_SHAPED.findall(text) == []
    assert env.hub.settings.secret_key is not None
    assert env.hub.settings.secret_key.get_secret_value() not in text
    for message in errors:
        assert not [s for s in secrets if s in message]
        assert not JWT_SHAPED.search(message)


def test_nothing_leaks_through_the_hubs_own_logging_audit_or_metrics(
    leak_env: tuple[SmartEnv, LeakHarness],
) -> None:
    """The same flows on the shared leak harness: redacting JSON logs at DEBUG, audit, metrics."""
    env, harness = leak_env
    # The hub app was built during fixture setup; bind the log handlers to this phase's streams.
    configure_logging(env.hub.settings)
    secrets, errors = drive_every_flow(env)
    for message in errors:
        harness.note_exception(RuntimeError(message))
    assert harness.log_lines(), "the harness captured no log records"
    assert env.hub.settings.secret_key is not None
    harness.assert_no_leak([*secrets, "Quarrington", "1957-03-09", env.hub.settings.secret_key.get_secret_value()])
    sources = harness.sources()
    assert [name for name, text in sources.items() if JWT_SHAPED.search(text)] == []
