"""server-side web sessions, throttle counters, and the browser binding of OAuth attempts"""

from __future__ import annotations

from alembic import op

from cxloop.db import ddl

revision = "0008"
down_revision = "0006"


def upgrade() -> None:
    ddl.create_table(
        "web_sessions",
        ddl.string("id_hash", 64),
        ddl.id_column("user_id"),
        ddl.timestamp("created_at"),
        ddl.timestamp("last_seen_at"),
        ddl.timestamp("expires_at"),
        key=["id_hash"],
        references={"user_id": ddl.cascade("users")},
    )
    ddl.create_indexes("web_sessions", "user_id", "expires_at")

    ddl.create_table(
        "throttle_counters",
        ddl.string("key", 200),
        ddl.integer("hits"),
        ddl.timestamp("window_started_at"),
        ddl.timestamp("blocked_until", nullable=True),
        ddl.timestamp("updated_at"),
        key=["key"],
    )
    ddl.create_indexes("throttle_counters", "updated_at")
    with op.batch_alter_table("oauth_attempts", schema=None) as batch_op:
        batch_op.add_column(ddl.string("bootstrap_hash", 64, nullable=True))
        batch_op.add_column(ddl.timestamp("bootstrap_expires_at", nullable=True))
        batch_op.add_column(ddl.string("browser_hash", 64, nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_oauth_attempts_bootstrap_hash"), ["bootstrap_hash"]
        )


def downgrade() -> None:
    with op.batch_alter_table("oauth_attempts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_oauth_attempts_bootstrap_hash"), type_="unique")
        batch_op.drop_column("browser_hash")
        batch_op.drop_column("bootstrap_expires_at")
        batch_op.drop_column("bootstrap_hash")
    op.drop_table("throttle_counters")
    op.drop_table("web_sessions")
