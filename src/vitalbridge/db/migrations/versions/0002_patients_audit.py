"""Patient registry (patients, providers, programs, EHR aliases) and the audit chain.

Revision ID: 0002_patients_audit
Revises: 0001_foundation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vitalbridge.db.types import UTCDateTime

revision = "0002_patients_audit"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id"], ["organizations.id"], name=f"fk_{table}_organization_id_organizations", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "programs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_programs"),
        _org_fk("programs"),
        sa.UniqueConstraint("organization_id", "code", name="uq_programs_org_code"),
    )
    op.create_index("ix_programs_organization_id", "programs", ["organization_id"])
    op.create_table(
        "providers",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("npi", sa.String(10), nullable=True),
        sa.Column("ehr_practitioner_id", sa.String(64), nullable=True),
        sa.Column("user_id", sa.String(36), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_providers"),
        _org_fk("providers"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_providers_user_id_users", ondelete="SET NULL"),
    )
    op.create_index("ix_providers_organization_id", "providers", ["organization_id"])
    op.create_table(
        "patients",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("practice_id", sa.String(36), nullable=False),
        sa.Column("ehr_id", sa.String(64), nullable=True),
        sa.Column("mrn", sa.String(64), nullable=True),
        sa.Column("mrn_system", sa.String(255), nullable=True),
        sa.Column("identifiers", sa.JSON(), nullable=False),
        sa.Column("given_name", sa.String(200), nullable=False),
        sa.Column("family_name", sa.String(200), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("gender", sa.String(16), nullable=True),
        sa.Column("phone", sa.String(64), nullable=True),
        sa.Column("address", sa.JSON(), nullable=True),
        sa.Column("program_id", sa.String(36), nullable=True),
        sa.Column("provider_id", sa.String(36), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("merged_into_id", sa.String(36), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_patients"),
        _org_fk("patients"),
        sa.ForeignKeyConstraint(
            ["practice_id"], ["practices.id"], name="fk_patients_practice_id_practices", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name="fk_patients_program_id_programs", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name="fk_patients_provider_id_providers", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["merged_into_id"], ["patients.id"], name="fk_patients_merged_into_id_patients", ondelete="SET NULL"
        ),
        sa.UniqueConstraint("practice_id", "ehr_id", name="uq_patients_practice_ehr_id"),
    )
    op.create_index("ix_patients_organization_id", "patients", ["organization_id"])
    op.create_index("ix_patients_practice_id", "patients", ["practice_id"])
    op.create_index("ix_patients_practice_mrn", "patients", ["practice_id", "mrn"])
    op.create_table(
        "patient_ehr_aliases",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("patient_id", sa.String(36), nullable=False),
        sa.Column("practice_id", sa.String(36), nullable=False),
        sa.Column("ehr_id", sa.String(64), nullable=False),
        sa.Column("replaced_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_patient_ehr_aliases"),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name="fk_patient_ehr_aliases_patient_id_patients", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["practice_id"], ["practices.id"], name="fk_patient_ehr_aliases_practice_id_practices", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("practice_id", "ehr_id", name="uq_patient_ehr_aliases_practice_ehr_id"),
    )
    op.create_index("ix_patient_ehr_aliases_patient_id", "patient_ehr_aliases", ["patient_id"])
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, autoincrement=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=True),
        sa.Column("practice_id", sa.String(36), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=True),
        sa.Column("resource_ids", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("correlation_id", sa.String(64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_entries"),
        sa.UniqueConstraint("entry_hash", name="uq_audit_entries_entry_hash"),
    )
    op.create_index("ix_audit_entries_occurred_at", "audit_entries", ["occurred_at"])
    op.create_index("ix_audit_entries_organization_id", "audit_entries", ["organization_id"])
    op.create_index("ix_audit_entries_action", "audit_entries", ["action"])


def downgrade() -> None:
    op.drop_table("audit_entries")
    op.drop_table("patient_ehr_aliases")
    op.drop_table("patients")
    op.drop_table("providers")
    op.drop_table("programs")
