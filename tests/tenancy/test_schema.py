"""The 0010 migration: the schema it creates matches the models on both backends, and an existing
hub's data survives it (the SQLite table rebuilds must not cascade-delete dependent rows)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

import vitalbridge.app  # noqa: F401 - imports every feature's models
from vitalbridge.db.base import Base
from vitalbridge.db.engine import make_engine
from vitalbridge.db.migrate import upgrade
from vitalbridge.tenancy.uniqueness import client_claim_key, tenant_key

OURS = {"practices", "practice_client_claims", "users", "smart_signing_keys"}
PG_ADMIN_URL = os.environ.get("VB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _tables(diff: object) -> set[str]:
    found: set[str] = set()
    items = diff if isinstance(diff, list) else [diff]
    for item in items:
        for part in item[1:] if isinstance(item, tuple) else ():
            table = getattr(part, "table", None)
            name = getattr(table, "name", None) or getattr(part, "name", None)
            if isinstance(part, str):
                name = part
            if isinstance(name, str):
                found.add(name)
    return found


def test_migration_matches_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    ours = [d for d in diffs if _tables(d) & OURS]
    assert ours == [], ours


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """An empty database of its own: the migration under test runs on data written at 0009."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/fresh.db"
        return
    name = f"vb_mig_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _db = PG_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _insert(conn: object, table: str, **values: object) -> None:
    cols = ", ".join(values)
    params = ", ".join(f":{k}" for k in values)
    conn.execute(text(f"INSERT INTO {table} ({cols}) VALUES ({params})"), values)  # type: ignore[attr-defined]


def _practice(conn: object, pid: str, org: str, code: str, base: str, client: str, facility: str | None) -> None:
    _insert(
        conn,
        "practices",
        id=pid,
        organization_id=org,
        name=code,
        practice_code=code,
        environment="sandbox",
        fhir_base_url=base,
        token_url="https://ehr.example.org/token",
        client_id=client,
        auth_method="private_key_jwt",
        scopes="system/Patient.read",
        rate_limit_per_minute=250,
        delivery_channel="fhir",
        hl7_sending_facility=facility,
        request_timeout_s=30.0,
        created_at=datetime(2026, 1, 1, 0, 0, int(pid[-1]), tzinfo=UTC),
    )


def test_existing_hub_data_survives_and_keeps_working(fresh_url: str) -> None:
    upgrade(fresh_url, "0010_ecw_rate_window")  # the schema just before 0011_tenancy
    engine = make_engine(fresh_url)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            for org in ("org-a", "org-b"):
                _insert(conn, "organizations", id=org, name=org, created_at=now)
            _practice(conn, "p1", "org-b", "B1", "https://ehr.example.org/fhir/B1", "client-b", "FAC")
            # What the attack left behind: A registered B's tenant, client and facility.
            _practice(conn, "p2", "org-a", "B1", "https://EHR.example.org/fhir/B1/", "client-b", "FAC")
            _practice(conn, "p3", "org-a", "A1", "https://ehr.example.org/fhir/A1", "client-a", None)
            _insert(
                conn,
                "users",
                id="u1",
                organization_id="org-b",
                email="x@b.org",
                display_name="",
                role="admin",
                created_at=now,
            )
            _insert(
                conn,
                "api_tokens",
                id="t1",
                organization_id="org-b",
                user_id="u1",
                name="",
                role="admin",
                token_hash="h" * 64,
                prefix="vb_",
                created_at=now,
            )
            _insert(
                conn,
                "smart_signing_keys",
                kid="k1",
                state="active",
                algorithm="RS384",
                key_size=2048,
                public_jwk="{}",
                private_key_sealed=b"x",
                created_at=now,
            )
        upgrade(fresh_url)
        with engine.connect() as conn:
            # Rows that reference rebuilt tables are all still there.
            assert conn.execute(text("SELECT count(*) FROM api_tokens")).scalar() == 1
            assert conn.execute(text("SELECT count(*) FROM practices")).scalar() == 3
            rows = {
                r[0]: r[1:]
                for r in conn.execute(
                    text(
                        "SELECT id, signing_key_set, tenant_key, client_claim_key, hl7_sending_facility FROM practices"
                    )
                )
            }
            assert {r[0] for r in rows.values()} == {"hub"}
            assert rows["p1"][1:] == (
                tenant_key("https://ehr.example.org/fhir/B1", "B1"),
                client_claim_key("https://ehr.example.org/token", "client-b"),
                "FAC",
            )
            # The newer clashing row keeps its data but neither key nor facility.
            assert rows["p2"][1:] == (None, None, None)
            assert rows["p3"][1] is not None
            assert conn.execute(text("SELECT organization_id FROM smart_signing_keys")).scalar() is None
        # The constraints hold from now on, whatever writes the row.
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                text("UPDATE practices SET client_claim_key = :k WHERE id = 'p3'"),
                {"k": client_claim_key("https://ehr.example.org/token", "client-b")},
            )
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text("UPDATE practices SET hl7_sending_facility = 'FAC' WHERE id = 'p3'"))
        with engine.begin() as conn:
            # The same email in another organization is allowed; twice in one is not.
            _insert(
                conn,
                "users",
                id="u2",
                organization_id="org-a",
                email="x@b.org",
                display_name="",
                role="admin",
                created_at=now,
            )
        with pytest.raises(IntegrityError), engine.begin() as conn:
            _insert(
                conn,
                "users",
                id="u3",
                organization_id="org-a",
                email="x@b.org",
                display_name="",
                role="admin",
                created_at=now,
            )
    finally:
        engine.dispose()
