"""Audit trail guards: append-only triggers and prune checkpoints (SPEC §9).

Revision ID: 0004_audit_guards
Revises: 0002_patients_audit

PostgreSQL: one trigger function refuses UPDATE, DELETE and TRUNCATE on ``audit_entries`` and
``audit_checkpoints``. The only exception is the prune path: deleting entries whose ``seq`` a
checkpoint already covers, in a transaction that ran ``SET LOCAL vitalbridge.audit_prune = 'on'``.

SQLite: the same rules as triggers that ``RAISE(ABORT)``. SQLite has no session settings, so the
switch is the SQL function ``vb_audit_guard()`` the hub registers on every connection (it
returns 1); a connection that lacks it, such as the ``sqlite3`` shell, cannot update or delete
audit rows at all. Deleting covered entries (prune) needs no switch on SQLite.

Note for later migrations: SQLite "batch" table rebuilds drop triggers with the table; a
migration that rebuilds ``audit_entries`` must re-create them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vitalbridge.db.types import UTCDateTime

revision = "0004_audit_guards"
down_revision = "0002_patients_audit"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION vb_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_entries' THEN
        IF current_setting('vitalbridge.audit_prune', true) = 'on' THEN
            IF OLD.seq <= (SELECT COALESCE(MAX(through_seq), 0) FROM audit_checkpoints) THEN
                RETURN OLD;
            END IF;
        END IF;
    END IF;
    RAISE EXCEPTION 'vitalbridge: % is append-only, % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""

_SQLITE_TRIGGERS = {
    "audit_entries_no_update": (
        "BEFORE UPDATE ON audit_entries WHEN vb_audit_guard() "
        "BEGIN SELECT RAISE(ABORT, 'vitalbridge: audit_entries is append-only, UPDATE refused'); END"
    ),
    "audit_entries_no_delete": (
        "BEFORE DELETE ON audit_entries "
        "WHEN vb_audit_guard() AND OLD.seq > (SELECT COALESCE(MAX(through_seq), 0) FROM audit_checkpoints) "
        "BEGIN SELECT RAISE(ABORT, 'vitalbridge: audit_entries is append-only, DELETE refused'); END"
    ),
    "audit_checkpoints_no_update": (
        "BEFORE UPDATE ON audit_checkpoints WHEN vb_audit_guard() "
        "BEGIN SELECT RAISE(ABORT, 'vitalbridge: audit_checkpoints is append-only, UPDATE refused'); END"
    ),
    "audit_checkpoints_no_delete": (
        "BEFORE DELETE ON audit_checkpoints WHEN vb_audit_guard() "
        "BEGIN SELECT RAISE(ABORT, 'vitalbridge: audit_checkpoints is append-only, DELETE refused'); END"
    ),
}


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("through_seq", _SEQ, nullable=False),
        sa.Column("anchor_hash", sa.String(64), nullable=False),
        sa.Column("pruned_count", _SEQ, nullable=False),
        sa.Column("cutoff", UTCDateTime(), nullable=False),
        sa.Column("record_seq", _SEQ, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_checkpoints"),
        sa.UniqueConstraint("through_seq", name="uq_audit_checkpoints_through_seq"),
    )
    # Filters of GET /api/v1/audit/ and of exports.
    op.create_index("ix_audit_entries_correlation_id", "audit_entries", ["correlation_id"])
    op.create_index("ix_audit_entries_org_seq", "audit_entries", ["organization_id", "seq"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        for table in ("audit_entries", "audit_checkpoints"):
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION vb_audit_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION vb_audit_append_only()"
            )
    else:
        for name, body in _SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("audit_entries", "audit_checkpoints"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS vb_audit_append_only()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index("ix_audit_entries_org_seq", table_name="audit_entries")
    op.drop_index("ix_audit_entries_correlation_id", table_name="audit_entries")
    op.drop_table("audit_checkpoints")
