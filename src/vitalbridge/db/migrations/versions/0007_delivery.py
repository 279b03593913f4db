"""Delivery worker: merges the migration heads and adds dead-letter bookkeeping to the outbox.

Revision ID: 0007_delivery
Revises: 0003_smart, 0005_readings, 0006_hl7
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vitalbridge.db.types import UTCDateTime

revision = "0007_delivery"
down_revision = ("0003_smart", "0005_readings", "0006_hl7")
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("dead_reason", sa.String(40), nullable=True))
        batch.add_column(sa.Column("retry_since", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("retry_since")
        batch.drop_column("dead_reason")
