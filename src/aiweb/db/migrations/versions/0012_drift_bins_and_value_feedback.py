"""predictions.drift_bins and .value, feedback.value and .predicted_value

Binned drift features (a model's input columns: :mod:`aiweb.monitoring.drift`) log the
bin of each feature with each prediction, as JSON; a model that predicts a number logs
it, and feedback on such a prediction is the true value (live RMSE and MAE).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 18:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("drift_bins", sa.JSON(), nullable=True))
    op.add_column("predictions", sa.Column("value", sa.Float(), nullable=True))
    op.add_column("feedback", sa.Column("value", sa.Float(), nullable=True))
    op.add_column("feedback", sa.Column("predicted_value", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("predicted_value")
        batch.drop_column("value")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("value")
        batch.drop_column("drift_bins")
