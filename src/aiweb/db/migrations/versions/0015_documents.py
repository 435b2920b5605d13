"""documents: uploaded PDF, DOCX and text documents (issue 23, item 4)

One row per uploaded document: its name, media type, page and character counts, the
sha256 of the uploaded bytes, whether PII was redacted (and how many of each kind), and
where its extracted pages (and, unless redacted, its original file) are in the artifact
store (:mod:`aiweb.documents`).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 18:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("chars", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("redacted", sa.Boolean(), nullable=False),
        sa.Column("redactions", sa.JSON(), nullable=True),
        sa.Column("original_uri", sa.String(1024), nullable=True),
        sa.Column("text_uri", sa.String(1024), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
    )
    op.create_index("ix_documents_created_at", "documents", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_documents_created_at", table_name="documents")
    op.drop_table("documents")
