"""the directory (directories, mailing lists, contacts, distributions, invitations), the
outbound-message inbox, and the workflow's encrypted outbound token

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 18:46:09.316792
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "directories",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("owner_id", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("frequency_limit", sa.Integer(), nullable=True),
        sa.Column("frequency_days", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_directories_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directories")),
        sa.UniqueConstraint("owner_id", "name", name=op.f("uq_directories_owner_id")),
    )
    with op.batch_alter_table("directories", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_directories_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "contacts",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("directory_id", sa.String(length=20), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("external_ref", sa.String(length=100), nullable=True),
        sa.Column("embedded_data", sa.JSON(), nullable=False),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["directory_id"],
            ["directories.id"],
            name=op.f("fk_contacts_directory_id_directories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("directory_id", "email", name=op.f("uq_contacts_directory_id")),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_contacts_directory_external_ref", ["directory_id", "external_ref"], unique=False
        )

    op.create_table(
        "mailing_lists",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("directory_id", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["directory_id"],
            ["directories.id"],
            name=op.f("fk_mailing_lists_directory_id_directories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailing_lists")),
        sa.UniqueConstraint("directory_id", "name", name=op.f("uq_mailing_lists_directory_id")),
    )
    op.create_table(
        "distributions",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("survey_id", sa.String(length=20), nullable=False),
        sa.Column("directory_id", sa.String(length=20), nullable=False),
        sa.Column("mailing_list_id", sa.String(length=20), nullable=True),
        sa.Column("task_run_id", sa.String(length=20), nullable=True),
        sa.Column("subject", sa.String(length=998), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("from_name", sa.String(length=200), nullable=False),
        sa.Column("from_address", sa.String(length=320), nullable=False),
        sa.Column("reply_to", sa.String(length=320), nullable=False),
        sa.Column("link_expiry_days", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=20), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_distributions_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["directory_id"],
            ["directories.id"],
            name=op.f("fk_distributions_directory_id_directories"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["mailing_list_id"],
            ["mailing_lists.id"],
            name=op.f("fk_distributions_mailing_list_id_mailing_lists"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["surveys.id"],
            name=op.f("fk_distributions_survey_id_surveys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_distributions")),
        sa.UniqueConstraint("task_run_id", name=op.f("uq_distributions_task_run_id")),
    )
    with op.batch_alter_table("distributions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_distributions_survey_id"), ["survey_id"], unique=False)

    op.create_table(
        "mailing_list_members",
        sa.Column("mailing_list_id", sa.String(length=20), nullable=False),
        sa.Column("contact_id", sa.String(length=20), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_mailing_list_members_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["mailing_list_id"],
            ["mailing_lists.id"],
            name=op.f("fk_mailing_list_members_mailing_list_id_mailing_lists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "mailing_list_id", "contact_id", name=op.f("pk_mailing_list_members")
        ),
    )
    with op.batch_alter_table("mailing_list_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mailing_list_members_contact_id"), ["contact_id"], unique=False
        )

    op.create_table(
        "outbound_notifications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.String(length=15), nullable=False),
        sa.Column("notification_id", sa.String(length=18), nullable=False),
        sa.Column("workflow_id", sa.String(length=20), nullable=True),
        sa.Column("action_id", sa.String(length=18), nullable=False),
        sa.Column("sobject", sa.String(length=80), nullable=False),
        sa.Column("record_id", sa.String(length=18), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_outbound_notifications_workflow_id_workflows"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_notifications")),
        sa.UniqueConstraint(
            "org_id", "notification_id", name=op.f("uq_outbound_notifications_org_id")
        ),
    )
    with op.batch_alter_table("outbound_notifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbound_notifications_received_at"), ["received_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_outbound_notifications_workflow_id"), ["workflow_id"], unique=False
        )

    op.create_table(
        "invitations",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("distribution_id", sa.String(length=20), nullable=False),
        sa.Column("contact_id", sa.String(length=20), nullable=False),
        sa.Column("personal_link_id", sa.String(length=20), nullable=True),
        sa.Column("link_token", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=250), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_invitations_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["distribution_id"],
            ["distributions.id"],
            name=op.f("fk_invitations_distribution_id_distributions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["personal_link_id"],
            ["personal_links.id"],
            name=op.f("fk_invitations_personal_link_id_personal_links"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint(
            "distribution_id", "contact_id", name=op.f("uq_invitations_distribution_id")
        ),
    )
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_invitations_contact_created", ["contact_id", "created_at"], unique=False
        )

    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outbound_token", sa.Text(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.drop_column("outbound_token")

    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.drop_index("ix_invitations_contact_created")

    op.drop_table("invitations")
    with op.batch_alter_table("outbound_notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbound_notifications_workflow_id"))
        batch_op.drop_index(batch_op.f("ix_outbound_notifications_received_at"))

    op.drop_table("outbound_notifications")
    with op.batch_alter_table("mailing_list_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mailing_list_members_contact_id"))

    op.drop_table("mailing_list_members")
    with op.batch_alter_table("distributions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_distributions_survey_id"))

    op.drop_table("distributions")
    op.drop_table("mailing_lists")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_directory_external_ref")

    op.drop_table("contacts")
    with op.batch_alter_table("directories", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_directories_owner_id"))

    op.drop_table("directories")
