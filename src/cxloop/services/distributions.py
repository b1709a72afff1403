"""Distributions: what a workflow's directory task settles in the database, and reading them.

`prepare_invitation` runs inside the directory task's transaction: it upserts the contact, puts
it on the mailing list, applies opt-out and the frequency rule, then finds or makes the
distribution of the task run (one per task run) and the contact's invitation in it (one per
distribution and contact) with its personal link. A retried task run, or an outbound message
Salesforce delivers twice, finds the same invitation again; one already `sent` is never sent
again. `mark_sent` / `mark_failed` record what the mail server said.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cxloop.db.base import utcnow
from cxloop.db.directory_models import Contact, Directory, Distribution, Invitation
from cxloop.db.models import Survey
from cxloop.db.uow import Database
from cxloop.domain.frequency import check_frequency
from cxloop.domain.statuses import InvitationStatus
from cxloop.domain.workflow import DirectoryTask, FrequencyRule
from cxloop.errors import NotFound
from cxloop.services.access import Actor, SurveyAccess, get_survey_for
from cxloop.services.directory import (
    ContactFields,
    add_to_mailing_list,
    directory_of_owner,
    upsert_contact,
)
from cxloop.services.pagination import Page, paginate
from cxloop.services.personal_links import add_personal_link

# Invitations the frequency rule counts: on their way or delivered.
COUNTED_STATUSES = (InvitationStatus.PENDING, InvitationStatus.SENT)


@dataclass
class PreparedInvitation:
    """What the directory task settled: the contact, and the invitation to send (if any).

    `skipped_reason` is set when nothing may be sent (opted out, frequency rule);
    `already_sent` when the invitation went out before (a retried run sends nothing more).
    """

    contact_id: str
    email: str
    first_name: str
    last_name: str
    language: str
    external_ref: str
    directory_id: str
    contact_created: bool
    mailing_list_id: str | None = None
    distribution_id: str | None = None
    invitation_id: str | None = None
    link_token: str | None = None
    message_id: str | None = None
    already_sent: bool = False
    skipped_reason: str | None = None

    @property
    def recipient(self) -> dict[str, Any]:
        """The contact as `${m://...}` reads it."""
        return recipient_fields(
            self.email, self.first_name, self.last_name, self.external_ref, self.language
        )

    @property
    def output(self) -> dict[str, Any]:
        """What later tasks read as `${task://ID/...}` (Id is the contact's id)."""
        return {
            "ContactID": self.contact_id,
            "Email": self.email,
            "DirectoryID": self.directory_id,
            "DistributionID": self.distribution_id or "",
            "InvitationID": self.invitation_id or "",
        }


def recipient_fields(
    email: str, first_name: str, last_name: str, external_ref: str, language: str
) -> dict[str, Any]:
    """A contact under the names `${m://...}` reads (the reference product's recipient)."""
    return {
        "FirstName": first_name,
        "LastName": last_name,
        "Email": email,
        "ExternalDataReference": external_ref,
        "Language": language,
    }


def prepare_invitation(
    session: Session,
    survey: Survey,
    task: DirectoryTask,
    task_run_id: str,
    contact_fields: ContactFields,
    link_embedded_data: Mapping[str, Any],
    *,
    now: datetime | None = None,
) -> PreparedInvitation:
    """Upsert the contact and settle its invitation, in the caller's transaction.

    Raises InvalidInput (a bad email, embedded data the survey does not declare): the caller
    fails the task run with that message, and nothing of this is stored.
    """
    now = now or utcnow()
    directory = directory_of_owner(session, survey.owner_id, task.directory)
    contact, created = upsert_contact(session, directory, contact_fields, match_on=task.match_on)
    # Invitations to one contact are decided one at a time (PostgreSQL; SQLite's writers are
    # serialised already), so two runs at once cannot both pass the frequency rule.
    session.execute(select(Contact.id).where(Contact.id == contact.id).with_for_update())
    prepared = PreparedInvitation(
        contact_id=contact.id,
        email=contact.email,
        first_name=contact.first_name,
        last_name=contact.last_name,
        language=contact.language,
        external_ref=contact.external_ref or "",
        directory_id=directory.id,
        contact_created=created,
    )
    if task.mailing_list:
        prepared.mailing_list_id = add_to_mailing_list(
            session, directory, task.mailing_list, contact
        ).id
    distribute = task.distribute
    if distribute is None:
        return prepared
    distribution = session.scalar(
        select(Distribution).where(Distribution.task_run_id == task_run_id)
    )
    invitation = (
        session.scalar(
            select(Invitation).where(
                Invitation.distribution_id == distribution.id,
                Invitation.contact_id == contact.id,
            )
        )
        if distribution is not None
        else None
    )
    if invitation is not None and invitation.status == InvitationStatus.SENT:
        prepared.distribution_id, prepared.invitation_id = invitation.distribution_id, invitation.id
        prepared.message_id, prepared.already_sent = invitation.message_id, True
        return prepared
    reason = _why_not(session, directory, contact, task.frequency, distribution, now)
    if reason is not None:
        prepared.skipped_reason = reason
        if invitation is not None:
            invitation.status, invitation.status_reason = InvitationStatus.SKIPPED, reason
            prepared.distribution_id = invitation.distribution_id
            prepared.invitation_id = invitation.id
        return prepared
    if distribution is None:
        distribution = Distribution(
            survey_id=survey.id,
            directory_id=directory.id,
            mailing_list_id=prepared.mailing_list_id,
            task_run_id=task_run_id,
            subject=distribute.subject,
            body=distribute.body,
            from_name=distribute.from_name,
            from_address=distribute.from_address,
            reply_to=distribute.reply_to,
            link_expiry_days=distribute.link_expiry_days,
        )
        session.add(distribution)
        session.flush()
    if invitation is None:
        invitation = Invitation(distribution_id=distribution.id, contact_id=contact.id)
        session.add(invitation)
        session.flush()
    if invitation.link_token is None:
        token, link = add_personal_link(
            session,
            survey,
            link_embedded_data,
            contact_id=contact.id,
            distribution_id=distribution.id,
            expires_at=now + timedelta(days=distribute.link_expiry_days),
        )
        invitation.personal_link_id, invitation.link_token = link.id, token
    invitation.status, invitation.status_reason = InvitationStatus.PENDING, ""
    session.flush()
    prepared.distribution_id, prepared.invitation_id = distribution.id, invitation.id
    prepared.link_token = invitation.link_token
    return prepared


def _why_not(
    session: Session,
    directory: Directory,
    contact: Contact,
    rule: FrequencyRule | None,
    distribution: Distribution | None,
    now: datetime,
) -> str | None:
    """Why the contact may not be invited now (opted out, frequency rule), or None."""
    if contact.opted_out:
        since = f" on {contact.opted_out_at:%Y-%m-%d}" if contact.opted_out_at else ""
        return f"{contact.email} opted out{since}; cxloop never mails contacts who opted out."
    limit, days = (
        (rule.max_invitations, rule.days)
        if rule is not None
        else (directory.frequency_limit, directory.frequency_days)
    )
    if not limit or not days:
        return None
    query = select(Invitation.created_at).where(
        Invitation.contact_id == contact.id,
        Invitation.status.in_(COUNTED_STATUSES),
        Invitation.created_at > now - timedelta(days=days),
    )
    if distribution is not None:
        query = query.where(Invitation.distribution_id != distribution.id)
    decision = check_frequency(limit, days, now, session.scalars(query), who=contact.email)
    if decision.allowed:
        return None
    source = "the task" if rule is not None else f"the directory {directory.name!r}"
    return f"{decision.reason} (Rule set on {source}.)"


def mark_sent(session: Session, invitation_id: str, message_id: str) -> None:
    """The mail server took the invitation."""
    invitation = session.get(Invitation, invitation_id)
    if invitation is None:
        return
    invitation.status, invitation.status_reason = InvitationStatus.SENT, ""
    invitation.message_id = message_id[:250]
    invitation.sent_at = utcnow()
    session.flush()


def mark_failed(session: Session, invitation_id: str, reason: str) -> None:
    """The invitation could not be sent and will not be tried again (unless the run is)."""
    invitation = session.get(Invitation, invitation_id)
    if invitation is None or invitation.status == InvitationStatus.SENT:
        return
    invitation.status, invitation.status_reason = InvitationStatus.FAILED, reason
    session.flush()


# --- reading, for the API


@dataclass(frozen=True)
class InvitationView:
    id: str
    contact_id: str
    email: str
    status: str
    reason: str
    message_id: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class DistributionView:
    id: str
    survey_id: str
    directory_id: str
    mailing_list_id: str | None
    task_run_id: str | None
    subject: str
    body: str
    from_name: str
    from_address: str
    reply_to: str
    link_expiry_days: int | None
    created_at: datetime
    invitation_counts: dict[str, int] = field(default_factory=dict)
    invitations: list[InvitationView] = field(default_factory=list)


def list_distributions(
    db: Database, actor: Actor, survey_id: str, *, limit: int = 50, cursor: str | None = None
) -> Page[DistributionView]:
    """A survey's distributions, newest first, with how many invitations are in each status."""
    query = select(Distribution).where(Distribution.survey_id == survey_id)
    with db.reader() as uow:
        get_survey_for(uow.session, survey_id, actor, SurveyAccess.VIEW)
        page = paginate(
            uow.session, query, Distribution.created_at, Distribution.id, limit=limit, cursor=cursor
        )
        counts: dict[str, dict[str, int]] = {}
        if page.items:
            for distribution_id, status, count in uow.session.execute(
                select(Invitation.distribution_id, Invitation.status, func.count())
                .where(Invitation.distribution_id.in_([r.id for r in page.items]))
                .group_by(Invitation.distribution_id, Invitation.status)
            ):
                counts.setdefault(distribution_id, {})[status] = int(count)
        items = [_view(row, counts.get(row.id, {})) for row in page.items]
    return Page(items, page.next_cursor)


def get_distribution(
    db: Database, actor: Actor, distribution_id: str, *, survey_id: str | None = None
) -> DistributionView:
    """A distribution with its invitations (status, contact email, when sent, why not)."""
    with db.reader() as uow:
        distribution = uow.session.get(Distribution, distribution_id)
        if distribution is None or (survey_id is not None and distribution.survey_id != survey_id):
            raise NotFound(f"No distribution {distribution_id!r}.", subject="distribution")
        try:
            get_survey_for(uow.session, distribution.survey_id, actor, SurveyAccess.VIEW)
        except NotFound:
            raise NotFound(
                f"No distribution {distribution_id!r}.", subject="distribution"
            ) from None
        rows = uow.session.execute(
            select(Invitation, Contact.email)
            .join(Contact, Contact.id == Invitation.contact_id)
            .where(Invitation.distribution_id == distribution.id)
            .order_by(Invitation.created_at, Invitation.id)
        ).all()
        invitations = [
            InvitationView(
                id=invitation.id,
                contact_id=invitation.contact_id,
                email=email,
                status=invitation.status,
                reason=invitation.status_reason,
                message_id=invitation.message_id,
                created_at=invitation.created_at,
                sent_at=invitation.sent_at,
            )
            for invitation, email in rows
        ]
        counts: dict[str, int] = {}
        for item in invitations:
            counts[item.status] = counts.get(item.status, 0) + 1
        view = _view(distribution, counts)
    return DistributionView(**{**view.__dict__, "invitations": invitations})


def _view(row: Distribution, counts: dict[str, int]) -> DistributionView:
    return DistributionView(
        id=row.id,
        survey_id=row.survey_id,
        directory_id=row.directory_id,
        mailing_list_id=row.mailing_list_id,
        task_run_id=row.task_run_id,
        subject=row.subject,
        body=row.body,
        from_name=row.from_name,
        from_address=row.from_address,
        reply_to=row.reply_to,
        link_expiry_days=row.link_expiry_days,
        created_at=row.created_at,
        invitation_counts=counts,
    )
