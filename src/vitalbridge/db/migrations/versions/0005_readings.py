"""Readings pipeline: gateways, devices, readings, measurements, quarantine, outbox, alerts.

Revision ID: 0005_readings
Revises: 0002_patients_audit
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vitalbridge.db.types import UTCDateTime

revision = "0005_readings"
down_revision = "0002_patients_audit"
branch_labels = None
depends_on = None

_UNRESOLVED = sa.text("status <> 'resolved'")


def _fk(table: str, column: str, target: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "gateways",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("previous_secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("rotation_started_at", UTCDateTime(), nullable=True),
        sa.Column("previous_secret_last_used_at", UTCDateTime(), nullable=True),
        sa.Column("api_base_url", sa.String(500), nullable=True),
        sa.Column("api_key_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("synced_until", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gateways"),
        _fk("gateways", "organization_id", "organizations"),
    )
    op.create_index("ix_gateways_organization_id", "gateways", ["organization_id"])

    op.create_table(
        "devices",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("model", sa.String(100), nullable=True),
        sa.Column("manufacturer", sa.String(100), nullable=True),
        sa.Column("patient_id", sa.String(36), nullable=True),
        sa.Column("assigned_at", UTCDateTime(), nullable=True),
        sa.Column("period_start", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        _fk("devices", "organization_id", "organizations"),
        _fk("devices", "patient_id", "patients", "SET NULL"),
        sa.UniqueConstraint("organization_id", "serial", name="uq_devices_org_serial"),
    )
    op.create_index("ix_devices_organization_id", "devices", ["organization_id"])
    op.create_index("ix_devices_patient_id", "devices", ["patient_id"])

    op.create_table(
        "device_assignments",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("device_id", sa.String(36), nullable=False),
        sa.Column("patient_id", sa.String(36), nullable=True),
        sa.Column("starts_at", UTCDateTime(), nullable=True),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("assigned_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_device_assignments"),
        _fk("device_assignments", "device_id", "devices"),
        _fk("device_assignments", "patient_id", "patients", "SET NULL"),
    )
    op.create_index("ix_device_assignments_device_ends", "device_assignments", ["device_id", "ends_at"])

    op.create_table(
        "readings",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("gateway_id", sa.String(36), nullable=False),
        sa.Column("gateway_reading_id", sa.String(128), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("device_id", sa.String(36), nullable=False),
        sa.Column("patient_id", sa.String(36), nullable=True),
        sa.Column("reading_type", sa.String(32), nullable=False),
        sa.Column("measured_at", UTCDateTime(), nullable=False),
        sa.Column("measured_offset_min", sa.Integer(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("unassigned", sa.Boolean(), nullable=False),
        sa.Column("irregular_heartbeat", sa.Boolean(), nullable=True),
        sa.Column("meal_context", sa.String(16), nullable=True),
        sa.Column("triaged_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_readings"),
        _fk("readings", "organization_id", "organizations"),
        _fk("readings", "gateway_id", "gateways"),
        _fk("readings", "device_id", "devices"),
        _fk("readings", "patient_id", "patients", "SET NULL"),
        sa.UniqueConstraint("gateway_id", "gateway_reading_id", name="uq_readings_gateway_reading"),
    )
    op.create_index("ix_readings_patient_measured", "readings", ["patient_id", "measured_at"])
    op.create_index("ix_readings_device_patient", "readings", ["device_id", "patient_id"])
    op.create_index("ix_readings_org_received", "readings", ["organization_id", "received_at"])
    op.create_index("ix_readings_triaged_at", "readings", ["triaged_at"])

    op.create_table(
        "measurements",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("reading_id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("patient_id", sa.String(36), nullable=True),
        sa.Column("measured_at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("systolic", sa.Float(), nullable=True),
        sa.Column("diastolic", sa.Float(), nullable=True),
        sa.Column("original_value", sa.Float(), nullable=True),
        sa.Column("original_unit", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_measurements"),
        _fk("measurements", "reading_id", "readings"),
        _fk("measurements", "organization_id", "organizations"),
        _fk("measurements", "patient_id", "patients", "SET NULL"),
    )
    op.create_index("ix_measurements_reading_id", "measurements", ["reading_id"])
    op.create_index("ix_measurements_patient_kind_measured", "measurements", ["patient_id", "kind", "measured_at"])

    op.create_table(
        "quarantine",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("gateway_id", sa.String(36), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("raw_body", sa.LargeBinary(), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("gateway_reading_id", sa.String(128), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reviewed_at", UTCDateTime(), nullable=True),
        sa.Column("reviewed_by", sa.String(100), nullable=True),
        sa.Column("review_note", sa.String(1000), nullable=True),
        sa.Column("reading_id", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_quarantine"),
        _fk("quarantine", "organization_id", "organizations"),
        _fk("quarantine", "gateway_id", "gateways", "SET NULL"),
        _fk("quarantine", "reading_id", "readings", "SET NULL"),
    )
    op.create_index("ix_quarantine_org_status_received", "quarantine", ["organization_id", "status", "received_at"])

    op.create_table(
        "outbox",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("practice_id", sa.String(36), nullable=True),
        sa.Column("patient_id", sa.String(36), nullable=True),
        sa.Column("reading_id", sa.String(36), nullable=False),
        sa.Column("measurement_id", sa.String(36), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("resource", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(400), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("blocked_reason", sa.String(32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(1000), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("ehr_resource_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        _fk("outbox", "organization_id", "organizations"),
        _fk("outbox", "practice_id", "practices"),
        _fk("outbox", "patient_id", "patients", "SET NULL"),
        _fk("outbox", "reading_id", "readings"),
        _fk("outbox", "measurement_id", "measurements"),
        sa.UniqueConstraint("measurement_id", name="uq_outbox_measurement_id"),
    )
    op.create_index("ix_outbox_status_next_attempt", "outbox", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_patient_status", "outbox", ["patient_id", "status"])
    op.create_index("ix_outbox_practice_status", "outbox", ["practice_id", "status"])

    op.create_table(
        "alerts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("patient_id", sa.String(36), nullable=False),
        sa.Column("rule_code", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee_user_id", sa.String(36), nullable=True),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("first_reading_id", sa.String(36), nullable=True),
        sa.Column("last_reading_id", sa.String(36), nullable=True),
        sa.Column("reading_ids", sa.JSON(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(100), nullable=True),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        _fk("alerts", "organization_id", "organizations"),
        _fk("alerts", "patient_id", "patients"),
        sa.ForeignKeyConstraint(
            ["assignee_user_id"], ["users.id"], name="fk_alerts_assignee_user_id_users", ondelete="SET NULL"
        ),
    )
    op.create_index(
        "uq_alerts_unresolved_patient_rule",
        "alerts",
        ["patient_id", "rule_code"],
        unique=True,
        sqlite_where=_UNRESOLVED,
        postgresql_where=_UNRESOLVED,
    )
    op.create_index("ix_alerts_org_status_opened", "alerts", ["organization_id", "status", "opened_at"])

    op.create_table(
        "alert_events",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, autoincrement=True),
        sa.Column("alert_id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("patient_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rule_code", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("reading_id", sa.String(36), nullable=True),
        sa.Column("assignee_user_id", sa.String(36), nullable=True),
        sa.Column("note", sa.String(1000), nullable=True),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("dispatched_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_alert_events"),
        _fk("alert_events", "alert_id", "alerts"),
        _fk("alert_events", "organization_id", "organizations"),
    )
    op.create_index("ix_alert_events_alert_seq", "alert_events", ["alert_id", "seq"])
    op.create_index("ix_alert_events_dispatched_seq", "alert_events", ["dispatched_at", "seq"])

    op.create_table(
        "patient_thresholds",
        sa.Column("patient_id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("patient_id", name="pk_patient_thresholds"),
        _fk("patient_thresholds", "patient_id", "patients"),
        _fk("patient_thresholds", "organization_id", "organizations"),
    )
    op.create_index("ix_patient_thresholds_organization_id", "patient_thresholds", ["organization_id"])


def downgrade() -> None:
    for table in (
        "patient_thresholds",
        "alert_events",
        "alerts",
        "outbox",
        "quarantine",
        "measurements",
        "readings",
        "device_assignments",
        "devices",
        "gateways",
    ):
        op.drop_table(table)
