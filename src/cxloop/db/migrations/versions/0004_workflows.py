"""workflows and their revisions"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cxloop.db import ddl

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    ddl.create_table(
        "workflows",
        ddl.id_column("id"),
        ddl.id_column("survey_id"),
        ddl.string("name", 200),
        ddl.boolean("enabled"),
        ddl.string("event_type", 40),
        ddl.json("document"),
        ddl.integer("revision"),
        ddl.string("outbound_token_hash", 64, nullable=True),
        ddl.id_column("created_by"),
        ddl.timestamp("created_at"),
        ddl.timestamp("updated_at"),
        references={"created_by": ddl.Reference("users"), "survey_id": ddl.cascade("surveys")},
        unique_on=[["outbound_token_hash"], ["survey_id", "name"]],
    )
    ddl.create_table(
        "workflow_revisions",
        ddl.id_column("workflow_id"),
        sa.Column("revision", sa.Integer(), autoincrement=False, nullable=False),
        ddl.json("document"),
        ddl.boolean("enabled"),
        ddl.string("summary", 500),
        ddl.id_column("author_id"),
        ddl.timestamp("created_at"),
        key=["workflow_id", "revision"],
        references={"author_id": ddl.Reference("users"), "workflow_id": ddl.cascade("workflows")},
    )


def downgrade() -> None:
    op.drop_table("workflow_revisions")
    op.drop_table("workflows")
