"""search_collections.answer_threshold and .calibration (issue 24, item 2)

The cosine similarity a collection's top hit must reach to answer a question (an
assistant's help collection), calibrated on questions the collection should not answer,
and how it was calibrated (questions, quantile, revision, similarities). Both null until
the collection is calibrated.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 11:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("search_collections", sa.Column("answer_threshold", sa.Float(), nullable=True))
    op.add_column("search_collections", sa.Column("calibration", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("search_collections") as batch:
        batch.drop_column("calibration")
        batch.drop_column("answer_threshold")
