"""survey transfer offers, per-survey connection grants, and paused workflow tasks

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 13:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cxloop.db.ddl import create_indexes, foreign_key, id_column, primary_key, timestamp

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "survey_transfers",
        id_column("id"),
        id_column("survey_id"),
        id_column("from_user_id"),
        id_column("to_user_id"),
        id_column("created_by"),
        sa.Column("keep_previous_owner_as_editor", sa.Boolean(), nullable=False),
        sa.Column("kept_previous_owner", sa.Boolean(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        timestamp("created_at"),
        timestamp("expires_at"),
        timestamp("decided_at", nullable=True),
        id_column("decided_by", nullable=True),
        foreign_key("survey_transfers", "survey_id", "surveys", ondelete="CASCADE"),
        foreign_key("survey_transfers", "from_user_id", "users", ondelete="CASCADE"),
        foreign_key("survey_transfers", "to_user_id", "users", ondelete="CASCADE"),
        foreign_key("survey_transfers", "created_by", "users", ondelete="CASCADE"),
        primary_key("survey_transfers", "id"),
    )  # fmt: skip
    with op.batch_alter_table("survey_transfers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_survey_transfers_survey_id"), ["survey_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_survey_transfers_from_user_id"), ["from_user_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_survey_transfers_to_user_id"), ["to_user_id"], unique=False
        )
        batch_op.create_index(
            "uq_survey_transfers_open",
            ["survey_id"],
            unique=True,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )

    op.create_table(
        "survey_connection_grants",
        id_column("survey_id"),
        id_column("connection_id"),
        id_column("granted_by"),
        timestamp("granted_at"),
        foreign_key("survey_connection_grants", "survey_id", "surveys", ondelete="CASCADE"),
        foreign_key("survey_connection_grants", "connection_id", "connections", ondelete="CASCADE"),
        primary_key("survey_connection_grants", "survey_id", "connection_id"),
    )  # fmt: skip
    create_indexes("survey_connection_grants", "connection_id")

    op.create_table(
        "workflow_task_pauses",
        id_column("workflow_id"),
        sa.Column("task_id", sa.String(length=40), nullable=False),
        sa.Column("connection", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        timestamp("paused_at"),
        foreign_key("workflow_task_pauses", "workflow_id", "workflows", ondelete="CASCADE"),
        primary_key("workflow_task_pauses", "workflow_id", "task_id"),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("workflow_task_pauses")
    op.drop_table("survey_connection_grants")
    with op.batch_alter_table("survey_transfers", schema=None) as batch_op:
        batch_op.drop_index("uq_survey_transfers_open")
        batch_op.drop_index(batch_op.f("ix_survey_transfers_to_user_id"))
        batch_op.drop_index(batch_op.f("ix_survey_transfers_from_user_id"))
        batch_op.drop_index(batch_op.f("ix_survey_transfers_survey_id"))
    op.drop_table("survey_transfers")
