"""assistant_messages.feedback: a visitor's feedback on a bot reply (issue 24, item 3)

``{"helpful": true | false | null, "intent": "<the right intent>" | null, "at": ISO-8601}``;
null until the visitor gives some. A label it implies is also sent to the intents model's
prediction feedback (live accuracy, retraining data).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 15:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("assistant_messages", sa.Column("feedback", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assistant_messages") as batch:
        batch.drop_column("feedback")
