"""predictions.spans, feedback.spans and feedback.correct (issue 23, item 3)

A model whose predictions are spans (entities) logs the spans it found with each
prediction, ``[[start, end, label], …]`` as JSON; feedback on such a prediction may be
the corrected list of spans, kept in ``feedback.spans``. ``feedback.correct`` says
whether the prediction was right — the labels equal, or the span lists equal exactly —
and is what live accuracy counts; the rows already there get ``label = predicted_label``
(feedback on a value keeps ``NULL``: it has no accuracy).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 20:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("spans", sa.JSON(), nullable=True))
    op.add_column("feedback", sa.Column("spans", sa.JSON(), nullable=True))
    op.add_column("feedback", sa.Column("correct", sa.Boolean(), nullable=True))
    feedback = sa.table(
        "feedback",
        sa.column("label", sa.String()),
        sa.column("predicted_label", sa.String()),
        sa.column("value", sa.Float()),
        sa.column("correct", sa.Boolean()),
    )
    op.execute(
        feedback.update()
        .where(feedback.c.value.is_(None))
        .values(correct=feedback.c.label == feedback.c.predicted_label)
    )


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("correct")
        batch.drop_column("spans")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("spans")
