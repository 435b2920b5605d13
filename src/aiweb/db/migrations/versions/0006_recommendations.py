"""recommendations: the item catalogue and the interaction log

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rec_items",
        sa.Column("item_id", sa.String(length=255), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_rec_items")),
    )
    op.create_table(
        "rec_interactions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=128), nullable=True),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("item_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rec_interactions")),
    )
    with op.batch_alter_table("rec_interactions", schema=None) as batch_op:
        batch_op.create_index("ix_rec_interactions_event_id", ["event_id"], unique=True)
        batch_op.create_index("ix_rec_interactions_user_id", ["user_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rec_interactions", schema=None) as batch_op:
        batch_op.drop_index("ix_rec_interactions_user_id")
        batch_op.drop_index("ix_rec_interactions_event_id")
    op.drop_table("rec_interactions")
    op.drop_table("rec_items")
