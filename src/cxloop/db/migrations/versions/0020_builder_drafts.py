"""builder drafts: the workflow builder's unsaved form, kept server-side across an account's page

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
# The head of this branch's base; the coordinator re-chains migrations when merging.
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "builder_drafts",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.String(length=20), nullable=False),
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("survey_id", sa.String(length=20), nullable=False),
        sa.Column("workflow_id", sa.String(length=20), nullable=True),
        sa.Column("revision", sa.String(length=12), nullable=False),
        sa.Column("form", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_builder_drafts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_hash"], ["web_sessions.id_hash"],
            name=op.f("fk_builder_drafts_session_hash_web_sessions"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["surveys.id"], name=op.f("fk_builder_drafts_survey_id_surveys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_builder_drafts")),
    )  # fmt: skip
    op.create_index(op.f("ix_builder_drafts_user_id"), "builder_drafts", ["user_id"])
    op.create_index(op.f("ix_builder_drafts_session_hash"), "builder_drafts", ["session_hash"])
    op.create_index(op.f("ix_builder_drafts_expires_at"), "builder_drafts", ["expires_at"])


def downgrade() -> None:
    op.drop_table("builder_drafts")
