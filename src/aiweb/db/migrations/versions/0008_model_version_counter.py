"""registered_models.last_version: version numbers are never given twice

A deleted version's number is not given again to a new version (the prediction log,
feedback and the caches of other processes know versions by number).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 00:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registered_models") as batch:
        batch.add_column(sa.Column("last_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("registered_models") as batch:
        batch.drop_column("last_version")
