"""operations: idempotency keys of submissions, process heartbeats, the key check"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cxloop.db import ddl

revision = "0014"
down_revision = "0013"


def upgrade() -> None:
    ddl.create_table(
        "idempotency_keys",
        ddl.id_column("user_id"),
        ddl.id_column("survey_id"),
        ddl.string("key", 255),
        ddl.string("request_hash", 64),
        ddl.id_column("response_id"),
        ddl.integer("status_code", nullable=True),
        ddl.json("body", nullable=True),
        ddl.timestamp("created_at"),
        ddl.timestamp("expires_at"),
        key=["user_id", "survey_id", "key"],
        references={"user_id": ddl.cascade("users"), "survey_id": ddl.cascade("surveys")},
    )
    ddl.create_indexes("idempotency_keys", "expires_at")
    ddl.create_table(
        "process_heartbeats",
        ddl.string("id", 120),
        ddl.string("role", 16),
        ddl.string("host", 255),
        ddl.integer("pid"),
        ddl.timestamp("started_at"),
        ddl.timestamp("beat_at"),
    )
    ddl.create_indexes("process_heartbeats", "role")
    ddl.create_table(
        "key_checks",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        ddl.text("sealed"),
        ddl.timestamp("created_at"),
    )


def downgrade() -> None:
    op.drop_table("key_checks")
    op.drop_index(op.f("ix_process_heartbeats_role"), table_name="process_heartbeats")
    op.drop_table("process_heartbeats")
    op.drop_index(op.f("ix_idempotency_keys_expires_at"), table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
