"""HL7 v2 message log: every MLLP message received or sent, raw.

Revision ID: 0006_hl7
Revises: 0004_audit_guards
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vitalbridge.db.types import UTCDateTime

revision = "0006_hl7"
down_revision = "0004_audit_guards"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hl7_messages",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=True),
        sa.Column("practice_id", sa.String(36), nullable=True),
        sa.Column("patient_id", sa.String(36), nullable=True),
        sa.Column("peer", sa.String(100), nullable=False),
        sa.Column("control_id", sa.String(200), nullable=False),
        sa.Column("message_type", sa.String(32), nullable=False),
        sa.Column("version", sa.String(16), nullable=False),
        sa.Column("sending_application", sa.String(200), nullable=False),
        sa.Column("sending_facility", sa.String(200), nullable=False),
        sa.Column("charset", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ack_code", sa.String(2), nullable=True),
        sa.Column("ack_control_id", sa.String(200), nullable=True),
        sa.Column("error_code", sa.String(8), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("error_location", sa.String(32), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("raw_truncated", sa.Boolean(), nullable=False),
        sa.Column("body_digest", sa.String(64), nullable=False),
        sa.Column("dedup_key", sa.String(500), nullable=True),
        sa.Column("duplicate_of_id", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_hl7_messages"),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_hl7_messages_organization_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["practice_id"], ["practices.id"], name="fk_hl7_messages_practice_id_practices", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name="fk_hl7_messages_patient_id_patients", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["duplicate_of_id"],
            ["hl7_messages.id"],
            name="fk_hl7_messages_duplicate_of_id_hl7_messages",
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint("dedup_key", name="uq_hl7_messages_dedup_key"),
    )
    op.create_index("ix_hl7_messages_organization_id", "hl7_messages", ["organization_id"])
    op.create_index("ix_hl7_messages_received_at", "hl7_messages", ["received_at"])
    op.create_index("ix_hl7_messages_org_status_received", "hl7_messages", ["organization_id", "status", "received_at"])


def downgrade() -> None:
    op.drop_table("hl7_messages")
