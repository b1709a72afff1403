"""connected apps set at run time: the default one and one per login host

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

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
        sa.Column("updated_by", sa.String(length=20), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["updated_by"], ["users.id"],
            name=op.f("fk_salesforce_apps_updated_by_users"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("login_host", name=op.f("pk_salesforce_apps")),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("salesforce_apps")
