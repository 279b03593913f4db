"""SMART on FHIR: signing keys, EHR token cache, launch states, backend status, rate buckets.

Revision ID: 0003_smart
Revises: 0002_patients_audit
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vitalbridge.db.types import UTCDateTime

revision = "0003_smart"
down_revision = "0002_patients_audit"
branch_labels = None
depends_on = None


def _practice_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["practice_id"], ["practices.id"], name=f"fk_{table}_practice_id_practices", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "smart_signing_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("key_size", sa.Integer(), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("private_key_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("activate_at", UTCDateTime(), nullable=True),
        sa.Column("activated_at", UTCDateTime(), nullable=True),
        sa.Column("deactivated_at", UTCDateTime(), nullable=True),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_smart_signing_keys"),
    )
    op.create_index(
        "uq_smart_signing_keys_one_active",
        "smart_signing_keys",
        ["state"],
        unique=True,
        sqlite_where=sa.text("state = 'active'"),
        postgresql_where=sa.text("state = 'active'"),
    )
    op.create_table(
        "smart_tokens",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("practice_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("scope_key", sa.String(64), nullable=False),
        sa.Column("requested_scopes", sa.String(1000), nullable=False),
        sa.Column("granted_scopes", sa.String(1000), nullable=True),
        sa.Column("token_type", sa.String(32), nullable=True),
        sa.Column("access_token_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("refresh_token_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("obtained_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("renew_at", UTCDateTime(), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(36), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.String(500), nullable=True),
        sa.Column("authorized_by", sa.String(100), nullable=True),
        sa.Column("token_url", sa.String(500), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_smart_tokens"),
        _practice_fk("smart_tokens"),
        sa.UniqueConstraint("practice_id", "kind", "scope_key", name="uq_smart_tokens_practice_kind_scope"),
    )
    op.create_index("ix_smart_tokens_practice_id", "smart_tokens", ["practice_id"])
    op.create_table(
        "smart_launch_states",
        sa.Column("state_hash", sa.String(64), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("practice_id", sa.String(36), nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("verifier_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("redirect_uri", sa.String(500), nullable=False),
        sa.Column("scopes", sa.String(1000), nullable=False),
        sa.Column("token_url", sa.String(500), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("state_hash", name="pk_smart_launch_states"),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_smart_launch_states_organization_id_organizations",
            ondelete="CASCADE",
        ),
        _practice_fk("smart_launch_states"),
    )
    op.create_index("ix_smart_launch_states_organization_id", "smart_launch_states", ["organization_id"])
    op.create_table(
        "smart_backend_status",
        sa.Column("practice_id", sa.String(36), nullable=False),
        sa.Column("last_success_at", UTCDateTime(), nullable=True),
        sa.Column("last_error_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(64), nullable=True),
        sa.Column("last_error_detail", sa.String(500), nullable=True),
        sa.Column("last_kid", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("practice_id", name="pk_smart_backend_status"),
        _practice_fk("smart_backend_status"),
    )
    op.create_table(
        "ehr_rate_buckets",
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("blocked_until", sa.Float(), nullable=False),
        sa.Column("slow_factor", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_ehr_rate_buckets"),
    )


def downgrade() -> None:
    op.drop_table("ehr_rate_buckets")
    op.drop_table("smart_backend_status")
    op.drop_table("smart_launch_states")
    op.drop_table("smart_tokens")
    op.drop_index("uq_smart_signing_keys_one_active", table_name="smart_signing_keys")
    op.drop_table("smart_signing_keys")
