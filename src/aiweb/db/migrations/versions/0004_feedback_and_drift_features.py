"""feedback, drift alerts, and the drift features of predictions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 05:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("input_chars", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("oov_rate", sa.Float(), nullable=True))
    op.create_table(
        "drift_alerts",
        sa.Column("model", sa.String(length=63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("feature", sa.String(length=63), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("model", "version", "feature", name=op.f("pk_drift_alerts")),
    )
    op.create_table(
        "feedback",
        sa.Column("prediction_id", sa.String(length=36), nullable=False),
        sa.Column("model", sa.String(length=63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("predicted_label", sa.String(length=255), nullable=False),
        sa.Column("label", sa.String(length=255), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("submitted_by", sa.String(length=128), nullable=False),
        sa.Column("predicted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("prediction_id", name=op.f("pk_feedback")),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(
            "ix_feedback_model_version_predicted_at",
            ["model", "version", "predicted_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_model_version_predicted_at")
    op.drop_table("feedback")
    op.drop_table("drift_alerts")
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_column("oov_rate")
        batch_op.drop_column("input_chars")
