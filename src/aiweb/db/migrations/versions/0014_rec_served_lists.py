"""rec_served_lists: recommendation lists served while a rollout ran (issue 21, item 4)

The evidence of a recommender rollout's click-through rate: which version served which
items to which user, and when (:mod:`aiweb.recommendations.rollout`).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 14:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rec_served_lists",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("model", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("served_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rec_served_lists")),
    )
    op.create_index(
        "ix_rec_served_lists_model_version_served_at",
        "rec_served_lists",
        ["model", "version", "served_at"],
    )
    op.create_index("ix_rec_served_lists_user_id", "rec_served_lists", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_rec_served_lists_user_id", table_name="rec_served_lists")
    op.drop_index("ix_rec_served_lists_model_version_served_at", table_name="rec_served_lists")
    op.drop_table("rec_served_lists")
