"""builder drafts: the workflow builder's unsaved form, kept server-side across an account's page"""

from __future__ import annotations

from alembic import op

from cxloop.db import ddl

revision = "0020"
# The head of this branch's base; the coordinator re-chains migrations when merging.
down_revision = "0019"


def upgrade() -> None:
    ddl.create_table(
        "builder_drafts",
        ddl.id_column("id"),
        ddl.id_column("user_id"),
        ddl.string("session_hash", 64),
        ddl.id_column("survey_id"),
        ddl.id_column("workflow_id", nullable=True),
        ddl.string("revision", 12),
        ddl.json("form"),
        ddl.timestamp("created_at"),
        ddl.timestamp("expires_at"),
        references={
            "user_id": ddl.cascade("users"),
            "session_hash": ddl.cascade("web_sessions", column="id_hash"),
            "survey_id": ddl.cascade("surveys"),
        },
    )
    ddl.create_indexes("builder_drafts", "user_id", "session_hash", "expires_at")


def downgrade() -> None:
    op.drop_table("builder_drafts")
