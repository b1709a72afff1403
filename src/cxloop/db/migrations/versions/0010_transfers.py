"""survey transfer offers, per-survey connection grants, and paused workflow tasks

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 13:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "survey_transfers",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("survey_id", sa.String(length=20), nullable=False),
        sa.Column("from_user_id", sa.String(length=20), nullable=False),
        sa.Column("to_user_id", sa.String(length=20), nullable=False),
        sa.Column("created_by", sa.String(length=20), nullable=False),
        sa.Column("keep_previous_owner_as_editor", sa.Boolean(), nullable=False),
        sa.Column("kept_previous_owner", sa.Boolean(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["surveys.id"],
            name=op.f("fk_survey_transfers_survey_id_surveys"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["from_user_id"], ["users.id"],
            name=op.f("fk_survey_transfers_from_user_id_users"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["to_user_id"], ["users.id"],
            name=op.f("fk_survey_transfers_to_user_id_users"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"],
            name=op.f("fk_survey_transfers_created_by_users"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_transfers")),
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
        sa.Column("survey_id", sa.String(length=20), nullable=False),
        sa.Column("connection_id", sa.String(length=20), nullable=False),
        sa.Column("granted_by", sa.String(length=20), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["surveys.id"],
            name=op.f("fk_survey_connection_grants_survey_id_surveys"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["connections.id"],
            name=op.f("fk_survey_connection_grants_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "survey_id", "connection_id", name=op.f("pk_survey_connection_grants")
        ),
    )  # fmt: skip
    with op.batch_alter_table("survey_connection_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_survey_connection_grants_connection_id"), ["connection_id"], unique=False
        )

    op.create_table(
        "workflow_task_pauses",
        sa.Column("workflow_id", sa.String(length=20), nullable=False),
        sa.Column("task_id", sa.String(length=40), nullable=False),
        sa.Column("connection", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"], ["workflows.id"],
            name=op.f("fk_workflow_task_pauses_workflow_id_workflows"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workflow_id", "task_id", name=op.f("pk_workflow_task_pauses")),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("workflow_task_pauses")
    with op.batch_alter_table("survey_connection_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_survey_connection_grants_connection_id"))
    op.drop_table("survey_connection_grants")
    with op.batch_alter_table("survey_transfers", schema=None) as batch_op:
        batch_op.drop_index("uq_survey_transfers_open")
        batch_op.drop_index(batch_op.f("ix_survey_transfers_to_user_id"))
        batch_op.drop_index(batch_op.f("ix_survey_transfers_from_user_id"))
        batch_op.drop_index(batch_op.f("ix_survey_transfers_survey_id"))
    op.drop_table("survey_transfers")
