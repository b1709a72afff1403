"""connections, oauth attempts, org api usage"""

from __future__ import annotations

from alembic import op

from cxloop.db import ddl

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    ddl.create_table(
        "org_api_usage",
        ddl.string("org_id", 18),
        ddl.integer("used"),
        ddl.integer("allocation"),
        ddl.timestamp("updated_at"),
        key=["org_id"],
    )
    ddl.create_table(
        "connections",
        ddl.id_column("id"),
        ddl.id_column("owner_id"),
        ddl.string("name", 100),
        ddl.string("type", 16),
        ddl.string("login_url", 300),
        ddl.string("instance_url", 300),
        ddl.string("org_id", 18),
        ddl.string("sf_user_id", 18),
        ddl.string("username", 320),
        ddl.string("identity_url", 400),
        ddl.string("status", 16),
        ddl.text("status_reason"),
        ddl.text("access_token", nullable=True),
        ddl.text("refresh_token", nullable=True),
        ddl.timestamp("token_issued_at", nullable=True),
        ddl.integer("token_version"),
        ddl.timestamp("last_used_at", nullable=True),
        ddl.text("last_error"),
        ddl.timestamp("last_error_at", nullable=True),
        ddl.timestamp("created_at"),
        ddl.timestamp("updated_at"),
        references={"owner_id": ddl.cascade("users")},
        unique_on=[["owner_id", "name"]],
    )
    ddl.create_indexes("connections", "org_id", "owner_id")

    ddl.create_table(
        "oauth_attempts",
        ddl.id_column("id"),
        ddl.string("state_hash", 64),
        ddl.id_column("user_id"),
        ddl.id_column("connection_id", nullable=True),
        ddl.string("name", 100),
        ddl.string("type", 16),
        ddl.string("login_url", 300),
        ddl.text("code_verifier"),
        ddl.string("status", 16),
        ddl.text("error"),
        ddl.timestamp("created_at"),
        ddl.timestamp("expires_at"),
        ddl.timestamp("finished_at", nullable=True),
        references={"connection_id": ddl.cascade("connections"), "user_id": ddl.cascade("users")},
        unique_on=[["state_hash"]],
    )
    ddl.create_indexes("oauth_attempts", "user_id")


def downgrade() -> None:
    op.drop_table("oauth_attempts")
    op.drop_table("connections")
    op.drop_table("org_api_usage")
