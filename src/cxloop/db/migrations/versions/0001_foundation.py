"""users, api tokens, surveys, collaborators, audit log, periodic slots"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cxloop.db import ddl

revision = "0001"
down_revision = None


def upgrade() -> None:
    ddl.create_table(
        "audit_log",
        ddl.serial_id(),
        ddl.timestamp("at"),
        ddl.id_column("actor_id", nullable=True),
        ddl.string("action", 64),
        ddl.string("object_type", 32),
        ddl.string("object_id", 64),
        ddl.json("details"),
    )
    ddl.create_indexes(
        "audit_log", "actor_id", "at", ix_audit_log_object=["object_type", "object_id"]
    )

    ddl.create_table(
        "periodic_slots",
        ddl.string("job", 64),
        sa.Column("slot", sa.BigInteger(), autoincrement=False, nullable=False),
        ddl.timestamp("scheduled_at"),
        ddl.integer("executions"),
        ddl.timestamp("last_run_at", nullable=True),
        key=["job", "slot"],
    )
    ddl.create_table(
        "users",
        ddl.id_column("id"),
        ddl.string("email", 320),
        ddl.string("name", 200),
        ddl.string("password_hash", 200, nullable=True),
        ddl.boolean("is_admin"),
        ddl.boolean("is_active"),
        ddl.timestamp("created_at"),
        ddl.timestamp("last_login_at", nullable=True),
        unique_on=[["email"]],
    )
    ddl.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        ddl.id_column("user_id"),
        ddl.string("name", 200),
        ddl.string("token_prefix", 16),
        ddl.string("token_hash", 64),
        ddl.timestamp("created_at"),
        ddl.timestamp("last_used_at", nullable=True),
        ddl.timestamp("expires_at", nullable=True),
        ddl.timestamp("revoked_at", nullable=True),
        references={"user_id": ddl.cascade("users")},
        unique_on=[["token_hash"]],
    )
    ddl.create_indexes("api_tokens", "user_id")

    ddl.create_table(
        "surveys",
        ddl.id_column("id"),
        ddl.string("name", 200),
        ddl.text("description"),
        ddl.string("status", 10),
        ddl.string("language", 16),
        ddl.id_column("owner_id"),
        ddl.timestamp("created_at"),
        ddl.timestamp("updated_at"),
        references={"owner_id": ddl.Reference("users")},
    )
    ddl.create_indexes("surveys", "owner_id", ix_surveys_created=["created_at", "id"])

    ddl.create_table(
        "survey_collaborators",
        ddl.id_column("survey_id"),
        ddl.id_column("user_id"),
        ddl.string("role", 10),
        ddl.timestamp("added_at"),
        key=["survey_id", "user_id"],
        references={"survey_id": ddl.cascade("surveys"), "user_id": ddl.cascade("users")},
    )
    ddl.create_indexes("survey_collaborators", "user_id")


def downgrade() -> None:
    op.drop_table("survey_collaborators")
    op.drop_table("surveys")
    op.drop_table("api_tokens")
    op.drop_table("users")
    op.drop_table("periodic_slots")
    op.drop_table("audit_log")
