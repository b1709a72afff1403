"""token_revocations: a revocation generation read on every API request"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cxloop.db import ddl

revision = "0013"
down_revision = "0012"


def upgrade() -> None:
    table = op.create_table(
        "token_revocations",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        ddl.primary_key("token_revocations", "id"),
    )
    op.bulk_insert(table, [{"id": 1, "generation": 0}])


def downgrade() -> None:
    op.drop_table("token_revocations")
