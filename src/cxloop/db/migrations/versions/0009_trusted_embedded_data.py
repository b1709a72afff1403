"""trusted embedded data: a response's channel, a survey's anonymous-link switch and its
encrypted key for signed links

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-05 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("anonymous_link", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(sa.Column("link_signing_key", sa.Text(), nullable=True))
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel", sa.String(length=16), nullable=True))
    # Existing responses: the API and imports say so in `source`; a web response answered
    # through a personal link has the link (or the contact or distribution it came with).
    op.execute("UPDATE responses SET channel = source WHERE source IN ('api', 'import')")
    op.execute(
        "UPDATE responses SET channel = 'personal_link' WHERE channel IS NULL AND ("
        "contact_id IS NOT NULL OR distribution_id IS NOT NULL OR id IN "
        "(SELECT response_id FROM personal_links WHERE response_id IS NOT NULL))"
    )
    op.execute("UPDATE responses SET channel = 'anonymous_link' WHERE channel IS NULL")
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.alter_column("channel", existing_type=sa.String(length=16), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.drop_column("channel")
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.drop_column("link_signing_key")
        batch_op.drop_column("anonymous_link")
