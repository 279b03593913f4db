"""Patients from the EHR: MRN system per practice, patient status reason and sync time, Bulk $export sync state.

Also a merge point: it joins the heads left by the SMART, readings and HL7 branches.

Revision ID: 0008_patients_import
Revises: 0007_delivery
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vitalbridge.db.types import UTCDateTime

revision = "0008_patients_import"
down_revision = "0007_delivery"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("practices", sa.Column("mrn_system", sa.String(255), nullable=True))
    op.add_column("patients", sa.Column("status_reason", sa.String(64), nullable=True))
    op.add_column("patients", sa.Column("ehr_synced_at", UTCDateTime(), nullable=True))
    op.create_table(
        "bulk_sync_jobs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("practice_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("group_id", sa.String(64), nullable=True),
        sa.Column("since", UTCDateTime(), nullable=True),
        sa.Column("status_url", sa.String(1000), nullable=True),
        sa.Column("transaction_time", sa.String(64), nullable=True),
        sa.Column("manifest", sa.JSON(), nullable=True),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("patients_created", sa.Integer(), nullable=False),
        sa.Column("patients_updated", sa.Integer(), nullable=False),
        sa.Column("lines_rejected", sa.Integer(), nullable=False),
        sa.Column("issues", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_by", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_bulk_sync_jobs"),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_bulk_sync_jobs_organization_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["practice_id"], ["practices.id"], name="fk_bulk_sync_jobs_practice_id_practices", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_bulk_sync_jobs_organization_id", "bulk_sync_jobs", ["organization_id"])
    op.create_index("ix_bulk_sync_jobs_practice_status", "bulk_sync_jobs", ["practice_id", "status"])
    op.create_table(
        "bulk_sync_files",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("url", sa.String(1000), nullable=False),
        sa.Column("is_error", sa.Boolean(), nullable=False),
        sa.Column("expected_count", sa.Integer(), nullable=True),
        sa.Column("lines_done", sa.Integer(), nullable=False),
        sa.Column("bytes_done", sa.BigInteger(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_bulk_sync_files"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["bulk_sync_jobs.id"], name="fk_bulk_sync_files_job_id_bulk_sync_jobs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("job_id", "position", name="uq_bulk_sync_files_job_id"),
    )


def downgrade() -> None:
    op.drop_table("bulk_sync_files")
    op.drop_table("bulk_sync_jobs")
    with op.batch_alter_table("patients") as batch:
        batch.drop_column("ehr_synced_at")
        batch.drop_column("status_reason")
    with op.batch_alter_table("practices") as batch:
        batch.drop_column("mrn_system")
