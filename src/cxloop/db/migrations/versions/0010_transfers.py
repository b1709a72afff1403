"""survey transfer offers, per-survey connection grants, and paused workflow tasks"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cxloop.db import ddl

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    ddl.create_table(
        "survey_transfers",
        ddl.id_column("id"),
        ddl.id_column("survey_id"),
        ddl.id_column("from_user_id"),
        ddl.id_column("to_user_id"),
        ddl.id_column("created_by"),
        ddl.boolean("keep_previous_owner_as_editor"),
        ddl.boolean("kept_previous_owner", nullable=True),
        ddl.string("status", 10),
        ddl.text("message"),
        ddl.timestamp("created_at"),
        ddl.timestamp("expires_at"),
        ddl.timestamp("decided_at", nullable=True),
        ddl.id_column("decided_by", nullable=True),
        references={
            "survey_id": ddl.cascade("surveys"),
            "from_user_id": ddl.cascade("users"),
            "to_user_id": ddl.cascade("users"),
            "created_by": ddl.cascade("users"),
        },
    )
    ddl.create_indexes("survey_transfers", "survey_id", "from_user_id", "to_user_id")
    with op.batch_alter_table("survey_transfers", schema=None) as batch_op:
        batch_op.create_index(
            "uq_survey_transfers_open",
            ["survey_id"],
            unique=True,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )

    ddl.create_table(
        "survey_connection_grants",
        ddl.id_column("survey_id"),
        ddl.id_column("connection_id"),
        ddl.id_column("granted_by"),
        ddl.timestamp("granted_at"),
        key=["survey_id", "connection_id"],
        references={
            "survey_id": ddl.cascade("surveys"),
            "connection_id": ddl.cascade("connections"),
        },
    )
    ddl.create_indexes("survey_connection_grants", "connection_id")

    ddl.create_table(
        "workflow_task_pauses",
        ddl.id_column("workflow_id"),
        ddl.string("task_id", 40),
        ddl.string("connection", 100),
        ddl.text("reason"),
        ddl.timestamp("paused_at"),
        key=["workflow_id", "task_id"],
        references={"workflow_id": ddl.cascade("workflows")},
    )


def downgrade() -> None:
    op.drop_table("workflow_task_pauses")
    op.drop_table("survey_connection_grants")
    with op.batch_alter_table("survey_transfers", schema=None) as batch_op:
        batch_op.drop_index("uq_survey_transfers_open")
        batch_op.drop_index(batch_op.f("ix_survey_transfers_to_user_id"))
        batch_op.drop_index(batch_op.f("ix_survey_transfers_from_user_id"))
        batch_op.drop_index(batch_op.f("ix_survey_transfers_survey_id"))
    op.drop_table("survey_transfers")
