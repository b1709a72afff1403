"""workflows and their revisions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cxloop.db.ddl import foreign_key, id_column, primary_key, timestamp, unique

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflows",
        id_column("id"),
        id_column("survey_id"),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("outbound_token_hash", sa.String(length=64), nullable=True),
        id_column("created_by"),
        timestamp("created_at"),
        timestamp("updated_at"),
        foreign_key("workflows", "created_by", "users"),
        foreign_key("workflows", "survey_id", "surveys", ondelete="CASCADE"),
        primary_key("workflows", "id"),
        unique("workflows", "outbound_token_hash"),
        unique("workflows", "survey_id", "name"),
    )
    op.create_table(
        "workflow_revisions",
        id_column("workflow_id"),
        sa.Column("revision", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("summary", sa.String(length=500), nullable=False),
        id_column("author_id"),
        timestamp("created_at"),
        foreign_key("workflow_revisions", "author_id", "users"),
        foreign_key("workflow_revisions", "workflow_id", "workflows", ondelete="CASCADE"),
        primary_key("workflow_revisions", "workflow_id", "revision"),
    )


def downgrade() -> None:
    op.drop_table("workflow_revisions")
    op.drop_table("workflows")
