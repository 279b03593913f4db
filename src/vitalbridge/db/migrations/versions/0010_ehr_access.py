"""Practices choose which token their EHR calls use: backend services (default) or the standalone
(user-consent) grant, for EHRs that allow only user consent (issue 12, item 6).

Revision ID: 0010_ehr_access
Revises: 0009_push
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_ehr_access"
down_revision = "0009_push"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("practices") as batch:
        batch.add_column(sa.Column("ehr_access", sa.String(32), nullable=False, server_default="backend"))


def downgrade() -> None:
    with op.batch_alter_table("practices") as batch:
        batch.drop_column("ehr_access")
