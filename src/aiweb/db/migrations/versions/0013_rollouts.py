"""rollouts: shadow, canary and A/B rollouts of a model's candidate version (issue 21)

One row per rollout; ``active_model`` (unique, ``NULL`` once ended) keeps one running
rollout per model. Serving processes add their request, error and comparison counts to
the row (:mod:`aiweb.rollout`).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 13:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("model", sa.String(63), nullable=False),
        sa.Column("active_model", sa.String(63), nullable=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("baseline", sa.Integer(), nullable=False),
        sa.Column("candidate", sa.Integer(), nullable=False),
        sa.Column("traffic", sa.Float(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("decision", sa.JSON(), nullable=True),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("requests_baseline", sa.BigInteger(), nullable=False),
        sa.Column("errors_baseline", sa.BigInteger(), nullable=False),
        sa.Column("requests_candidate", sa.BigInteger(), nullable=False),
        sa.Column("errors_candidate", sa.BigInteger(), nullable=False),
        sa.Column("compared", sa.BigInteger(), nullable=False),
        sa.Column("agreed", sa.BigInteger(), nullable=False),
        sa.Column("shadow_dropped", sa.BigInteger(), nullable=False),
        sa.Column("started_by", sa.String(128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stepped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
        sa.UniqueConstraint("active_model", name=op.f("uq_rollouts_active_model")),
    )
    op.create_index("ix_rollouts_model_started_at", "rollouts", ["model", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_rollouts_model_started_at", table_name="rollouts")
    op.drop_table("rollouts")
