"""RPM billing (SPEC §13): reading origin, enrollment episodes, the time log, frozen reports.

Revision ID: 0013_billing
Revises: 0012_access_deletions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vitalbridge.db.types import UTCDateTime

revision = "0013_billing"
down_revision = "0012_access_deletions"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete)


def upgrade() -> None:
    # Readings stored before this revision came from gateways that transmit automatically.
    with op.batch_alter_table("readings") as batch:
        batch.add_column(sa.Column("origin", sa.String(16), nullable=False, server_default="device"))

    op.create_table(
        "billing_episodes",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("practice_id", sa.String(36), nullable=False),
        sa.Column("patient_id", sa.String(36), nullable=False),
        sa.Column("program", sa.String(8), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("ordering_practitioner_id", sa.String(36), nullable=False),
        sa.Column("condition_code", sa.String(16), nullable=False),
        sa.Column("consent_at", UTCDateTime(), nullable=False),
        sa.Column("consent_modality", sa.String(16), nullable=False),
        sa.Column("consent_recorded_by", sa.String(200), nullable=False),
        sa.Column("setup_on", sa.Date(), nullable=True),
        sa.Column("setup_staff", sa.String(200), nullable=True),
        sa.Column("billing_practitioner_id", sa.String(36), nullable=False),
        sa.Column("started_on", sa.Date(), nullable=False),
        sa.Column("ended_on", sa.Date(), nullable=True),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_billing_episodes"),
        _fk("billing_episodes", "organization_id", "organizations"),
        _fk("billing_episodes", "practice_id", "practices"),
        _fk("billing_episodes", "patient_id", "patients"),
        _fk("billing_episodes", "ordering_practitioner_id", "providers", "RESTRICT"),
        _fk("billing_episodes", "billing_practitioner_id", "providers", "RESTRICT"),
    )
    op.create_index("ix_billing_episodes_organization_id", "billing_episodes", ["organization_id"])
    op.create_index("ix_billing_episodes_patient_started", "billing_episodes", ["patient_id", "started_on"])
    op.create_index("ix_billing_episodes_practice_started", "billing_episodes", ["practice_id", "started_on"])

    op.create_table(
        "billing_practitioner_changes",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("episode_id", sa.String(36), nullable=False),
        sa.Column("practitioner_id", sa.String(36), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_billing_practitioner_changes"),
        _fk("billing_practitioner_changes", "organization_id", "organizations"),
        _fk("billing_practitioner_changes", "episode_id", "billing_episodes"),
        _fk("billing_practitioner_changes", "practitioner_id", "providers", "RESTRICT"),
        sa.UniqueConstraint("episode_id", "effective_from", name="uq_billing_practitioner_changes_episode_id"),
    )
    op.create_index(
        "ix_billing_practitioner_changes_organization_id", "billing_practitioner_changes", ["organization_id"]
    )

    op.create_table(
        "billing_time_entries",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("practice_id", sa.String(36), nullable=False),
        sa.Column("patient_id", sa.String(36), nullable=False),
        sa.Column("staff", sa.String(200), nullable=False),
        sa.Column("credential", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.Column("activity", sa.String(32), nullable=False),
        sa.Column("interactive", sa.Boolean(), nullable=False),
        sa.Column("modality", sa.String(16), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("corrects_id", sa.String(36), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_billing_time_entries"),
        _fk("billing_time_entries", "organization_id", "organizations"),
        _fk("billing_time_entries", "practice_id", "practices"),
        _fk("billing_time_entries", "patient_id", "patients"),
        _fk("billing_time_entries", "corrects_id", "billing_time_entries", "RESTRICT"),
        sa.UniqueConstraint("corrects_id", name="uq_billing_time_entries_corrects_id"),
    )
    op.create_index("ix_billing_time_entries_organization_id", "billing_time_entries", ["organization_id"])
    op.create_index("ix_billing_time_entries_practice_started", "billing_time_entries", ["practice_id", "started_at"])
    op.create_index("ix_billing_time_entries_patient_started", "billing_time_entries", ["patient_id", "started_at"])

    op.create_table(
        "billing_reports",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("practice_id", sa.String(36), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("changed_patient_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_billing_reports"),
        _fk("billing_reports", "organization_id", "organizations"),
        _fk("billing_reports", "practice_id", "practices"),
        sa.UniqueConstraint("practice_id", "month", "version", name="uq_billing_reports_practice_id"),
    )
    op.create_index("ix_billing_reports_organization_id", "billing_reports", ["organization_id"])


def downgrade() -> None:
    op.drop_table("billing_reports")
    op.drop_table("billing_time_entries")
    op.drop_table("billing_practitioner_changes")
    op.drop_table("billing_episodes")
    with op.batch_alter_table("readings") as batch:
        batch.drop_column("origin")
