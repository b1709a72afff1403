"""salesforce describes: an sObject's describe shared by every process

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "salesforce_describes",
        sa.Column("connection_key", sa.String(length=255), nullable=False),
        sa.Column("sobject", sa.String(length=255), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("describe", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("connection_key", "sobject", name=op.f("pk_salesforce_describes")),
    )


def downgrade() -> None:
    op.drop_table("salesforce_describes")
