"""trusted embedded data: a response's channel, a survey's anonymous-link switch and its
encrypted key for signed links
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cxloop.db import ddl

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    # Plain ADD COLUMN, no batch: a batch table rebuild on SQLite drops the old table, and with
    # foreign keys on, dropping `surveys` would delete every row that cascades from it.
    op.add_column(
        "surveys",
        sa.Column("anonymous_link", sa.Boolean(), server_default=sa.true(), nullable=False),
    )
    op.add_column("surveys", ddl.text("link_signing_key", nullable=True))
    # The default is the least trusted channel.
    op.add_column(
        "responses",
        sa.Column("channel", sa.String(length=16), server_default="anonymous_link", nullable=False),
    )
    # Existing responses: the API and imports say so in `source`; a web response answered
    # through a personal link has the link (or the contact or distribution it came with).
    op.execute("UPDATE responses SET channel = source WHERE source IN ('api', 'import')")
    op.execute(
        "UPDATE responses SET channel = 'personal_link' WHERE source = 'web' AND ("
        "contact_id IS NOT NULL OR distribution_id IS NOT NULL OR id IN "
        "(SELECT response_id FROM personal_links WHERE response_id IS NOT NULL))"
    )


def downgrade() -> None:
    # DROP COLUMN (SQLite >= 3.35) rather than a batch rebuild, for the reason above.
    op.drop_column("responses", "channel")
    op.drop_column("surveys", "link_signing_key")
    op.drop_column("surveys", "anonymous_link")
