"""Settings: VB_* and the eCW names, .env files, masked secrets, the ECW_* seed practice."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from vitalbridge.runtime import Hub
from vitalbridge.settings import AppType, Environment, Settings
from vitalbridge.tenancy import service
from vitalbridge.tenancy.ecw_seed import ecw_endpoints, seed_practice_from_settings
from vitalbridge.tenancy.models import AuthMethod, Practice


def test_ecw_names_are_read_and_secrets_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECW_CLIENT_ID", "client-abc")
    monkeypatch.setenv("ECW_CLIENT_SECRET", "super-secret-value")
    monkeypatch.setenv("ECW_ENVIRONMENT", "staging")
    monkeypatch.setenv("ECW_PRACTICE_CODE", "JAFJCD")
    monkeypatch.setenv("ECW_APP_TYPE", "backend_service")
    monkeypatch.setenv("ECW_RATE_LIMIT", "4.5")
    monkeypatch.setenv("ECW_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("VB_PORT", "8123")
    s = Settings()
    assert s.ecw_client_id == "client-abc"
    assert s.ecw_environment is Environment.staging
    assert s.ecw_app_type is AppType.backend_service
    assert s.ecw_rate_limit == 4.5
    assert s.ecw_log_level == "DEBUG"
    assert s.port == 8123
    assert "super-secret-value" not in repr(s)
    assert "super-secret-value" not in str(s.model_dump())
    assert s.ecw_client_secret is not None
    assert s.ecw_client_secret.get_secret_value() == "super-secret-value"


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("VB_SANDBOX_PORT=9191\nECW_PRACTICE_CODE=FROMENV\n")
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert s.sandbox_port == 9191
    assert s.ecw_practice_code == "FROMENV"


def test_invalid_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("ECW_ENVIRONMENT", "prod-ish")
    with pytest.raises(ValidationError, match="ECW_ENVIRONMENT"):
        Settings()


def test_default_database_is_sqlite_under_data_dir(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "v")
    assert s.effective_database_url == f"sqlite:///{(tmp_path / 'v' / 'vitalbridge.db').resolve()}"


def test_ecw_endpoints_per_environment() -> None:
    prod = ecw_endpoints(Environment.production, "ABC", "http://127.0.0.1:9090")
    assert prod.fhir_base_url == "https://fhir4.eclinicalworks.com/fhir/r4/ABC"
    assert prod.token_url == "https://oauthserver.eclinicalworks.com/oauth/oauth2/token"
    staging = ecw_endpoints(Environment.staging, "ABC", "http://127.0.0.1:9090")
    assert staging.token_url.startswith("https://staging-oauthserver.")
    sandbox = ecw_endpoints(Environment.sandbox, "ABC", "http://127.0.0.1:9090")
    assert sandbox.fhir_base_url == "http://127.0.0.1:9090/fhir/r4/ABC"


def test_seed_practice_from_ecw_settings_once(hub: Hub) -> None:
    settings = hub.settings.model_copy(
        update={"ecw_client_id": "cid", "ecw_practice_code": "JAFJCD", "ecw_environment": Environment.staging}
    )
    for _ in range(2):
        with hub.sessions() as session, session.begin():
            practice = seed_practice_from_settings(session, settings, hub.sealer)
            assert practice is not None
    with hub.sessions() as session:
        rows = list(session.scalars(select(Practice)))
        assert len(rows) == 1
        assert rows[0].auth_method is AuthMethod.private_key_jwt
        assert rows[0].token_url == "https://staging-oauthserver.eclinicalworks.com/oauth/oauth2/token"
        assert service.get_organization(session, "Default organization").id == rows[0].organization_id


def test_seed_with_secret_uses_client_secret_basic(hub: Hub) -> None:
    from pydantic import SecretStr

    settings = hub.settings.model_copy(
        update={"ecw_client_id": "cid", "ecw_practice_code": "P1", "ecw_client_secret": SecretStr("shh-123")}
    )
    with hub.sessions() as session, session.begin():
        practice = seed_practice_from_settings(session, settings, hub.sealer)
        assert practice is not None
        assert practice.auth_method is AuthMethod.client_secret_basic
        assert service.practice_client_secret(practice, hub.sealer) == "shh-123"


def test_no_seed_without_ecw_variables(hub: Hub) -> None:
    with hub.sessions() as session, session.begin():
        assert seed_practice_from_settings(session, hub.settings, hub.sealer) is None
