"""api_keys.targets and .origins: publishable keys (issue 24, item 6)

A key with scope ``chat`` is embedded in a web page, so it is limited to the targets it
names (for ``chat``: assistants) and to the origins (``https://shop.example``) whose
pages may use it. Both null for every other key.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 15:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("targets", sa.JSON(), nullable=True))
    op.add_column("api_keys", sa.Column("origins", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("origins")
        batch.drop_column("targets")
