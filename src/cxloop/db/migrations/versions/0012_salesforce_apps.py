"""connected apps set at run time: the default one and one per login host

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cxloop.db.ddl import foreign_key, id_column, primary_key, timestamp

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "salesforce_apps",
        sa.Column("login_host", sa.String(length=300), nullable=False),
        sa.Column("client_id", sa.String(length=300), nullable=False),
        sa.Column("client_secret", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        id_column("updated_by", nullable=True),
        timestamp("updated_at"),
        foreign_key("salesforce_apps", "updated_by", "users", ondelete="SET NULL"),
        primary_key("salesforce_apps", "login_host"),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("salesforce_apps")
