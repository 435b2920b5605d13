"""predictions.objects and feedback.objects (issue 25, item 7)

A model whose answers are objects found in its input logs them with each prediction as
JSON: boxes ``{"boxes": [[label, x, y, width, height], …]}`` (a detector's), or the text
read ``{"text_sha256": hex, "text": …}`` (a reader's; the text itself only with
``AIWEB_LOG_INPUTS``). Feedback on such a prediction may be the corrected boxes or text,
kept in ``feedback.objects``.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 21:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("objects", sa.JSON(), nullable=True))
    op.add_column("feedback", sa.Column("objects", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("objects")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("objects")
