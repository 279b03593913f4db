"""Rate buckets learn eCW's fixed minute window: ``ehr_rate_buckets.minute_window``.

Set after a 429 without Retry-After (eCW blocks the app until the minute resets); from then on
the hub paces that practice by wall-clock minute instead of a continuous bucket.

Revision ID: 0010_ecw_rate_window
Revises: 0009_push
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_ecw_rate_window"
down_revision = "0009_push"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ehr_rate_buckets") as batch:
        batch.add_column(sa.Column("minute_window", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("ehr_rate_buckets") as batch:
        batch.drop_column("minute_window")
