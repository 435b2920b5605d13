"""predictions.created_at and feedback.created_at indexes: retention prunes by age

The retention sweep (:mod:`aiweb.monitoring.retention`) deletes the prediction log and
feedback older than their windows in small batches; without an index on ``created_at``
every batch would scan the whole table.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 04:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_feedback_created_at", table_name="feedback")
    op.drop_index("ix_predictions_created_at", table_name="predictions")
