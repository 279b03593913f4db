"""Practices choose which token their EHR calls use: backend services (default) or the standalone
(user-consent) grant, for EHRs that allow only user consent (issue 12, item 6). Bulk syncs keep the
manifest's ``deleted`` files apart and count the patients they retired (item 4).

Revision ID: 0012_access_deletions
Revises: 0011_tenancy
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_access_deletions"
down_revision = "0011_tenancy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("practices") as batch:
        batch.add_column(sa.Column("ehr_access", sa.String(32), nullable=False, server_default="backend"))
    with op.batch_alter_table("bulk_sync_files") as batch:
        batch.add_column(sa.Column("is_deleted", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("bulk_sync_jobs") as batch:
        batch.add_column(sa.Column("patients_retired", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("bulk_sync_jobs") as batch:
        batch.drop_column("patients_retired")
    with op.batch_alter_table("bulk_sync_files") as batch:
        batch.drop_column("is_deleted")
    with op.batch_alter_table("practices") as batch:
        batch.drop_column("ehr_access")
