"""server-side web sessions, throttle counters, and the browser binding of OAuth attempts

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-05 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cxloop.db.ddl import create_indexes, foreign_key, id_column, primary_key, timestamp

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        id_column("user_id"),
        timestamp("created_at"),
        timestamp("last_seen_at"),
        timestamp("expires_at"),
        foreign_key("web_sessions", "user_id", "users", ondelete="CASCADE"),
        primary_key("web_sessions", "id_hash"),
    )
    create_indexes("web_sessions", "user_id", "expires_at")

    op.create_table(
        "throttle_counters",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        timestamp("window_started_at"),
        timestamp("blocked_until", nullable=True),
        timestamp("updated_at"),
        primary_key("throttle_counters", "key"),
    )
    create_indexes("throttle_counters", "updated_at")
    with op.batch_alter_table("oauth_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bootstrap_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(timestamp("bootstrap_expires_at", nullable=True))
        batch_op.add_column(sa.Column("browser_hash", sa.String(length=64), nullable=True))
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
