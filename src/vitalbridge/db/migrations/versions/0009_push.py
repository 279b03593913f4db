"""Push notifications: device tokens, push outbox, on-call lists, escalations, quiet hours.

Also the merge point of the HL7 (0006_hl7) and readings (0005_readings) branches.

Revision ID: 0009_push
Revises: 0008_patients_import
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vitalbridge.db.types import UTCDateTime

revision = "0009_push"
down_revision = "0008_patients_import"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _fk(table: str, column: str, target: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "push_devices",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("token_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("pruned_at", UTCDateTime(), nullable=True),
        sa.Column("prune_reason", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_push_devices"),
        _fk("push_devices", "organization_id", "organizations"),
        _fk("push_devices", "user_id", "users"),
        sa.UniqueConstraint("token_hash", name="uq_push_devices_token_hash"),
    )
    op.create_index("ix_push_devices_organization_id", "push_devices", ["organization_id"])
    op.create_index("ix_push_devices_user_id", "push_devices", ["user_id"])

    op.create_table(
        "push_outbox",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("device_id", sa.String(36), nullable=False),
        sa.Column("alert_id", sa.String(36), nullable=False),
        sa.Column("event_seq", _SEQ, nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("alert_type", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("deferred_until", UTCDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("fcm_message_name", sa.String(300), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_push_outbox"),
        _fk("push_outbox", "organization_id", "organizations"),
        _fk("push_outbox", "user_id", "users"),
        _fk("push_outbox", "device_id", "push_devices"),
        _fk("push_outbox", "alert_id", "alerts"),
        sa.UniqueConstraint("alert_id", "action", "device_id", name="uq_push_outbox_alert_action_device"),
    )
    op.create_index("ix_push_outbox_organization_id", "push_outbox", ["organization_id"])
    op.create_index("ix_push_outbox_device_id", "push_outbox", ["device_id"])
    op.create_index("ix_push_outbox_status_next", "push_outbox", ["status", "next_attempt_at"])

    op.create_table(
        "program_alerting",
        sa.Column("program_id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("on_call_user_ids", sa.JSON(), nullable=False),
        sa.Column("escalation_minutes", sa.Integer(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("program_id", name="pk_program_alerting"),
        _fk("program_alerting", "program_id", "programs"),
        _fk("program_alerting", "organization_id", "organizations"),
    )
    op.create_index("ix_program_alerting_organization_id", "program_alerting", ["organization_id"])

    op.create_table(
        "alert_escalations",
        sa.Column("alert_id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("event_seq", _SEQ, nullable=False),
        sa.Column("escalated_at", UTCDateTime(), nullable=False),
        sa.Column("target_user_ids", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("alert_id", name="pk_alert_escalations"),
        _fk("alert_escalations", "alert_id", "alerts"),
        _fk("alert_escalations", "organization_id", "organizations"),
        sa.UniqueConstraint("event_seq", name="uq_alert_escalations_event_seq"),
    )
    op.create_index("ix_alert_escalations_organization_id", "alert_escalations", ["organization_id"])

    op.create_table(
        "quiet_hours",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=True),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("starts", sa.String(5), nullable=False),
        sa.Column("ends", sa.String(5), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quiet_hours"),
        _fk("quiet_hours", "organization_id", "organizations"),
        _fk("quiet_hours", "user_id", "users"),
    )
    org_default = sa.text("user_id IS NULL")
    per_user = sa.text("user_id IS NOT NULL")
    op.create_index(
        "uq_quiet_hours_org_default",
        "quiet_hours",
        ["organization_id"],
        unique=True,
        sqlite_where=org_default,
        postgresql_where=org_default,
    )
    op.create_index(
        "uq_quiet_hours_user", "quiet_hours", ["user_id"], unique=True, sqlite_where=per_user, postgresql_where=per_user
    )


def downgrade() -> None:
    for table in ("quiet_hours", "alert_escalations", "program_alerting", "push_outbox", "push_devices"):
        op.drop_table(table)
