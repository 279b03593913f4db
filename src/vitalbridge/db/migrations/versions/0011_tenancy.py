"""Tenant isolation of EHR registrations: per-organization key sets, hub-wide uniqueness of EHR
tenants, EHR clients and HL7 sending facilities, per-organization user emails, long client ids.

Revision ID: 0011_tenancy
Revises: 0010_ecw_rate_window

Existing practices keep working: they are marked as signing with the hub-wide key set (``ecw
status`` warns until they move to their organization's). Registrations that already clash
(possible before this revision) keep their rows; the newer of two clashing rows gets no key,
and ``ecw status`` tells its organization to correct it. Sending facilities mapped twice keep
the older mapping: such a feed was already refused as ambiguous by the listener.

SQLite cannot drop a UNIQUE constraint or add a foreign key in place, so ``practices``, ``users``
and ``smart_signing_keys`` are rebuilt. A rebuild drops the old table, which with foreign keys
on would cascade-delete every row that references it (patients, API tokens …): foreign keys
are switched off around the rebuilds, and checked before they are switched on again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from vitalbridge.db.types import UTCDateTime
from vitalbridge.tenancy.uniqueness import client_claim_key, facility_key, tenant_key

revision = "0011_tenancy"
down_revision = "0010_ecw_rate_window"
branch_labels = None
depends_on = None

_CLIENT_ID_MAX = 4096


def _without_sqlite_foreign_keys(work: Callable[[], None]) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        work()
        return
    raw: Any = bind.connection.dbapi_connection
    # PRAGMA foreign_keys is a no-op inside a transaction (SQLite docs, "Enabling Foreign Key
    # Support"): end the one earlier revisions opened.
    if raw.in_transaction:
        raw.commit()
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        work()
        if raw.in_transaction:
            raw.commit()
        problems = raw.execute("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise RuntimeError(f"0010_tenancy: {len(problems)} foreign key violations after the rebuild")
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def _fill_keys(bind: sa.engine.Connection) -> None:
    """Compute the uniqueness keys of existing practices, oldest first; the older keeps a clash."""
    practices = sa.table(
        "practices",
        sa.column("id", sa.String),
        sa.column("organization_id", sa.String),
        sa.column("practice_code", sa.String),
        sa.column("fhir_base_url", sa.String),
        sa.column("token_url", sa.String),
        sa.column("client_id", sa.String),
        sa.column("hl7_sending_facility", sa.String),
        sa.column("created_at", sa.String),
        sa.column("tenant_key", sa.String),
        sa.column("client_claim_key", sa.String),
    )
    claims = sa.table(
        "practice_client_claims",
        sa.column("claim_key", sa.String),
        sa.column("organization_id", sa.String),
        sa.column("created_at", UTCDateTime()),
    )
    rows = bind.execute(
        sa.select(
            practices.c.id,
            practices.c.organization_id,
            practices.c.practice_code,
            practices.c.fhir_base_url,
            practices.c.token_url,
            practices.c.client_id,
            practices.c.hl7_sending_facility,
        ).order_by(practices.c.created_at, practices.c.id)
    ).all()
    tenants: set[str] = set()
    owners: dict[str, str] = {}
    facilities: set[str] = set()
    for pid, org, code, base, token_url, client_id, facility in rows:
        values: dict[str, Any] = {}
        tenant = tenant_key(base, code)
        if tenant not in tenants:
            tenants.add(tenant)
            values["tenant_key"] = tenant
        claim = client_claim_key(token_url, client_id)
        if owners.setdefault(claim, org) == org:
            values["client_claim_key"] = claim
        if facility:
            cleaned = facility_key(facility)
            values["hl7_sending_facility"] = cleaned if cleaned and cleaned not in facilities else None
            facilities.add(cleaned)
        if values:
            bind.execute(practices.update().where(practices.c.id == pid).values(**values))
    now = datetime.now(UTC)
    for claim, org in owners.items():
        bind.execute(claims.insert().values(claim_key=claim, organization_id=org, created_at=now))


def upgrade() -> None:
    op.create_table(
        "practice_client_claims",
        sa.Column("claim_key", sa.String(64), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("claim_key", name="pk_practice_client_claims"),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_practice_client_claims_organization_id_organizations",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("claim_key", "organization_id", name="uq_practice_client_claims_key_org"),
    )
    op.create_index("ix_practice_client_claims_organization_id", "practice_client_claims", ["organization_id"])

    def rebuild() -> None:
        with op.batch_alter_table("practices") as batch:
            batch.alter_column(
                "client_id", existing_type=sa.String(200), type_=sa.String(_CLIENT_ID_MAX), existing_nullable=False
            )
            # Rows from before this revision signed with the hub-wide key set; new rows are
            # given their organization's set by the application.
            batch.add_column(sa.Column("signing_key_set", sa.String(32), nullable=False, server_default="hub"))
            batch.add_column(sa.Column("tenant_key", sa.String(64), nullable=True))
            batch.add_column(sa.Column("client_claim_key", sa.String(64), nullable=True))
        _fill_keys(op.get_bind())
        with op.batch_alter_table("practices") as batch:
            batch.alter_column("signing_key_set", existing_type=sa.String(32), server_default=None)
            batch.create_unique_constraint("uq_practices_tenant_key", ["tenant_key"])
            batch.create_unique_constraint("uq_practices_hl7_sending_facility", ["hl7_sending_facility"])
            batch.create_foreign_key(
                "fk_practices_client_claim",
                "practice_client_claims",
                ["client_claim_key", "organization_id"],
                ["claim_key", "organization_id"],
            )
        with op.batch_alter_table("users") as batch:
            batch.drop_constraint("uq_users_email", type_="unique")
            batch.create_unique_constraint("uq_users_organization_id", ["organization_id", "email"])
        with op.batch_alter_table("smart_signing_keys") as batch:
            batch.add_column(sa.Column("organization_id", sa.String(36), nullable=True))
            batch.create_foreign_key(
                "fk_smart_signing_keys_organization_id_organizations",
                "organizations",
                ["organization_id"],
                ["id"],
                ondelete="CASCADE",
            )
        op.create_index("ix_smart_signing_keys_organization_id", "smart_signing_keys", ["organization_id"])
        op.drop_index("uq_smart_signing_keys_one_active", table_name="smart_signing_keys")
        op.create_index(
            "uq_smart_signing_keys_one_active",
            "smart_signing_keys",
            ["state"],
            unique=True,
            sqlite_where=sa.text("state = 'active' AND organization_id IS NULL"),
            postgresql_where=sa.text("state = 'active' AND organization_id IS NULL"),
        )
        op.create_index(
            "uq_smart_signing_keys_one_active_per_org",
            "smart_signing_keys",
            ["organization_id", "state"],
            unique=True,
            sqlite_where=sa.text("state = 'active' AND organization_id IS NOT NULL"),
            postgresql_where=sa.text("state = 'active' AND organization_id IS NOT NULL"),
        )

    _without_sqlite_foreign_keys(rebuild)


def downgrade() -> None:
    def rebuild() -> None:
        op.drop_index("uq_smart_signing_keys_one_active_per_org", table_name="smart_signing_keys")
        op.drop_index("uq_smart_signing_keys_one_active", table_name="smart_signing_keys")
        op.drop_index("ix_smart_signing_keys_organization_id", table_name="smart_signing_keys")
        # Organization keys cannot become hub-wide ones: two would be active at once.
        op.execute("DELETE FROM smart_signing_keys WHERE organization_id IS NOT NULL")
        with op.batch_alter_table("smart_signing_keys") as batch:
            batch.drop_constraint("fk_smart_signing_keys_organization_id_organizations", type_="foreignkey")
            batch.drop_column("organization_id")
        op.create_index(
            "uq_smart_signing_keys_one_active",
            "smart_signing_keys",
            ["state"],
            unique=True,
            sqlite_where=sa.text("state = 'active'"),
            postgresql_where=sa.text("state = 'active'"),
        )
        with op.batch_alter_table("users") as batch:
            batch.drop_constraint("uq_users_organization_id", type_="unique")
            batch.create_unique_constraint("uq_users_email", ["email"])
        with op.batch_alter_table("practices") as batch:
            batch.drop_constraint("fk_practices_client_claim", type_="foreignkey")
            batch.drop_constraint("uq_practices_hl7_sending_facility", type_="unique")
            batch.drop_constraint("uq_practices_tenant_key", type_="unique")
            batch.drop_column("client_claim_key")
            batch.drop_column("tenant_key")
            batch.drop_column("signing_key_set")
            batch.alter_column(
                "client_id", existing_type=sa.String(_CLIENT_ID_MAX), type_=sa.String(200), existing_nullable=False
            )
        op.drop_index("ix_practice_client_claims_organization_id", table_name="practice_client_claims")
        op.drop_table("practice_client_claims")

    _without_sqlite_foreign_keys(rebuild)
