"""the directory (directories, mailing lists, contacts, distributions, invitations), the
outbound-message inbox, and the workflow's encrypted outbound token

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 18:46:09.316792
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cxloop.db.ddl import create_indexes, foreign_key, id_column, primary_key, timestamp, unique

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "directories",
        id_column("id"),
        id_column("owner_id"),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("frequency_limit", sa.Integer(), nullable=True),
        sa.Column("frequency_days", sa.Integer(), nullable=True),
        timestamp("created_at"),
        timestamp("updated_at"),
        foreign_key("directories", "owner_id", "users", ondelete="CASCADE"),
        primary_key("directories", "id"),
        unique("directories", "owner_id", "name"),
    )
    create_indexes("directories", "owner_id")

    op.create_table(
        "contacts",
        id_column("id"),
        id_column("directory_id"),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("external_ref", sa.String(length=100), nullable=True),
        sa.Column("embedded_data", sa.JSON(), nullable=False),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        timestamp("opted_out_at", nullable=True),
        timestamp("created_at"),
        timestamp("updated_at"),
        foreign_key("contacts", "directory_id", "directories", ondelete="CASCADE"),
        primary_key("contacts", "id"),
        unique("contacts", "directory_id", "email"),
    )
    create_indexes("contacts", ix_contacts_directory_external_ref=["directory_id", "external_ref"])

    op.create_table(
        "mailing_lists",
        id_column("id"),
        id_column("directory_id"),
        sa.Column("name", sa.String(length=100), nullable=False),
        timestamp("created_at"),
        foreign_key("mailing_lists", "directory_id", "directories", ondelete="CASCADE"),
        primary_key("mailing_lists", "id"),
        unique("mailing_lists", "directory_id", "name"),
    )
    op.create_table(
        "distributions",
        id_column("id"),
        id_column("survey_id"),
        id_column("directory_id"),
        id_column("mailing_list_id", nullable=True),
        id_column("task_run_id", nullable=True),
        sa.Column("subject", sa.String(length=998), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("from_name", sa.String(length=200), nullable=False),
        sa.Column("from_address", sa.String(length=320), nullable=False),
        sa.Column("reply_to", sa.String(length=320), nullable=False),
        sa.Column("link_expiry_days", sa.Integer(), nullable=True),
        id_column("created_by", nullable=True),
        timestamp("created_at"),
        foreign_key("distributions", "created_by", "users", ondelete="SET NULL"),
        foreign_key("distributions", "directory_id", "directories", ondelete="CASCADE"),
        foreign_key("distributions", "mailing_list_id", "mailing_lists", ondelete="SET NULL"),
        foreign_key("distributions", "survey_id", "surveys", ondelete="CASCADE"),
        primary_key("distributions", "id"),
        unique("distributions", "task_run_id"),
    )
    create_indexes("distributions", "survey_id")

    op.create_table(
        "mailing_list_members",
        id_column("mailing_list_id"),
        id_column("contact_id"),
        timestamp("added_at"),
        foreign_key("mailing_list_members", "contact_id", "contacts", ondelete="CASCADE"),
        foreign_key("mailing_list_members", "mailing_list_id", "mailing_lists", ondelete="CASCADE"),
        primary_key("mailing_list_members", "mailing_list_id", "contact_id"),
    )
    create_indexes("mailing_list_members", "contact_id")

    op.create_table(
        "outbound_notifications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.String(length=15), nullable=False),
        sa.Column("notification_id", sa.String(length=18), nullable=False),
        id_column("workflow_id", nullable=True),
        sa.Column("action_id", sa.String(length=18), nullable=False),
        sa.Column("sobject", sa.String(length=80), nullable=False),
        sa.Column("record_id", sa.String(length=18), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        timestamp("received_at"),
        foreign_key("outbound_notifications", "workflow_id", "workflows", ondelete="SET NULL"),
        primary_key("outbound_notifications", "id"),
        unique("outbound_notifications", "org_id", "notification_id"),
    )
    create_indexes("outbound_notifications", "received_at", "workflow_id")

    op.create_table(
        "invitations",
        id_column("id"),
        id_column("distribution_id"),
        id_column("contact_id"),
        id_column("personal_link_id", nullable=True),
        sa.Column("link_token", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=250), nullable=True),
        timestamp("created_at"),
        timestamp("sent_at", nullable=True),
        foreign_key("invitations", "contact_id", "contacts", ondelete="CASCADE"),
        foreign_key("invitations", "distribution_id", "distributions", ondelete="CASCADE"),
        foreign_key("invitations", "personal_link_id", "personal_links", ondelete="SET NULL"),
        primary_key("invitations", "id"),
        unique("invitations", "distribution_id", "contact_id"),
    )
    create_indexes("invitations", ix_invitations_contact_created=["contact_id", "created_at"])
    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outbound_token", sa.Text(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.drop_column("outbound_token")

    op.drop_table("invitations")
    op.drop_table("outbound_notifications")
    op.drop_table("mailing_list_members")
    op.drop_table("distributions")
    op.drop_table("mailing_lists")
    op.drop_table("contacts")
    op.drop_table("directories")
