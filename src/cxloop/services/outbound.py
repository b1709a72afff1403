"""Receiving Salesforce Outbound Messages: check, store in the inbox, write runs, answer.

`receive` is the whole use case behind `POST /hooks/salesforce/outbound/{token}`:

1. the token names an enabled workflow whose event is `salesforce_outbound_message` (only the
   token's SHA-256 is looked up; an unknown token answers 404, as an address that does not exist);
2. the source address is in the event's `allowed_ips`, when it lists any;
3. the body is an outbound message (domain/outbound_message.py: defusedxml, size limit, 1-100
   notifications) of the event's `object`;
4. its OrganizationId is the org of the event's connection (a connection of the survey's
   owner), compared on 15 characters;
5. with `verify_session_id`, the message must carry a SessionId, and Salesforce must confirm it
   belongs to that org (`/services/oauth2/userinfo` at the connection's stored instance URL,
   never at a URL taken from the message);
6. in one transaction: each notification not already in the inbox (dedupe on the org's
   15-character id and the notification id) is stored, and when the workflow's conditions hold
   for its record, a run and its task runs are written; after the commit the ready batch keys go
   to the queue.

Then the answer is the Ack (HTTP 200). Anything else answers a SOAP fault whose faultstring says
what is wrong, with HTTP 500 (Salesforce counts it as not delivered and retries for 24 hours),
and nothing is stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from cxloop import metrics
from cxloop.db.models import Survey
from cxloop.db.run_models import OutboundNotification
from cxloop.db.uow import Database
from cxloop.db.workflow_models import Workflow
from cxloop.domain.outbound_message import (
    Notification,
    OutboundMessage,
    OutboundMessageError,
    id15,
    parse_notifications,
    render_ack,
    render_fault,
    same_org,
)
from cxloop.domain.workflow import OutboundMessageEvent, WorkflowDocument
from cxloop.ledger import Ledger, RunEvent, outbound_conditions_hold
from cxloop.salesforce import hosts
from cxloop.salesforce.errors import HostNotAllowed
from cxloop.services.workflows import outbound_token_hash, resolve_owner_connection

log = structlog.get_logger(__name__)

EVENT_TYPE = "salesforce_outbound_message"
USERINFO_PATH = "/services/oauth2/userinfo"
SESSION_CHECK_TIMEOUT_S = 10.0
SESSION_CACHE_S = 60.0  # a confirmed session id is not asked about again for this long
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,100}$")


@dataclass(frozen=True)
class ReceiveResult:
    """The HTTP answer (status and SOAP body) and what happened."""

    status: int
    body: bytes
    accepted: int = 0  # notifications new to the inbox
    duplicates: int = 0  # notifications already in it (a redelivery)
    runs: int = 0
    reason: str | None = None  # why the message was refused (a metrics label), None if acked

    @property
    def acknowledged(self) -> bool:
        return self.status == 200


class Refused(Exception):
    """The message is refused: `faultstring` for Salesforce's log, `reason` for metrics."""

    def __init__(self, faultstring: str, reason: str, status: int = 500) -> None:
        super().__init__(faultstring)
        self.faultstring = faultstring
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class _Target:
    """What the checks need to know about the token's workflow."""

    workflow_id: str
    revision: int
    name: str
    survey_id: str
    document: WorkflowDocument
    event: OutboundMessageEvent
    connection_name: str
    org_id: str
    instance_url: str


class _Stale(Exception):
    """The workflow changed (a new revision) between the first look and the write."""


def receive(
    db: Database,
    token: str,
    body: bytes,
    client_ip: str | None,
    *,
    extra_hosts: list[str] | None = None,
) -> ReceiveResult:
    """Check and store an outbound message; the answer to send back (see the module doc)."""
    started = time.perf_counter()
    try:
        result = _receive(db, token, body, client_ip, extra_hosts or [])
    except Refused as refused:
        metrics.OUTBOUND_REJECTED.labels(refused.reason).inc()
        log.info("outbound.refused", reason=refused.reason, message=refused.faultstring)
        result = ReceiveResult(
            refused.status, render_fault(refused.faultstring), reason=refused.reason
        )
    except Exception:
        metrics.OUTBOUND_REJECTED.labels("internal_error").inc()
        log.exception("outbound.failed")
        result = ReceiveResult(
            500,
            render_fault(
                "cxloop could not store this message just now (the error was logged); "
                "Salesforce will send it again.",
                code="Server",
            ),
            reason="internal_error",
        )
    metrics.OUTBOUND_ACK_LATENCY.observe(time.perf_counter() - started)
    return result


def _receive(
    db: Database, token: str, body: bytes, client_ip: str | None, extra_hosts: list[str]
) -> ReceiveResult:
    token_hash = _token_hash(token)
    targets = db.ledger.outbound_targets
    try:
        return _receive_for(
            db, _cached_target(db, token_hash), token_hash, body, client_ip, extra_hosts
        )
    except _Stale:
        targets.pop(token_hash)
    try:
        return _receive_for(
            db, _cached_target(db, token_hash), token_hash, body, client_ip, extra_hosts
        )
    except _Stale:
        targets.pop(token_hash)
        raise Refused(
            "The cxloop workflow changed while this message arrived; Salesforce will send it "
            "again.",
            "workflow_changed",
        ) from None


def _receive_for(
    db: Database,
    target: _Target,
    token_hash: str,
    body: bytes,
    client_ip: str | None,
    extra_hosts: list[str],
) -> ReceiveResult:
    _check_source(target, client_ip)
    try:
        message = parse_notifications(body)
    except OutboundMessageError as exc:
        raise Refused(exc.faultstring, exc.reason) from None
    _check_message(target, message)
    if target.event.verify_session_id:
        _verify_session(db.ledger, target, message, extra_hosts)
    for attempt in (1, 2):
        try:
            return _store(db, token_hash, target, message)
        except IntegrityError:
            # Another delivery of the same notifications committed first (PostgreSQL lets two
            # transactions look at the same moment); the second look finds them in the inbox.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _token_hash(token: str) -> str:
    if not _TOKEN.match(token or ""):
        raise _unknown_token()
    return outbound_token_hash(token)


def _unknown_token() -> Refused:
    return Refused(
        "This outbound message URL is not known to cxloop: its workflow was deleted, changed "
        "to another event, or its URL was rotated. Copy the current URL (cxloop workflows "
        "outbound-url) into the Outbound Message's Endpoint URL in Salesforce Setup.",
        "unknown_token",
        status=404,
    )


# What a token's workflow looked like a moment ago. The write re-reads the token's workflow and
# its revision, so a rotated token, a disabled or edited workflow count at once; only a change
# of the owner's connection (relinked to another org) may take TARGET_CACHE_S to be seen.
TARGET_CACHE_S = 5.0


def _cached_target(db: Database, token_hash: str) -> _Target:
    targets = db.ledger.outbound_targets  # the container's, kept TARGET_CACHE_S each
    cached = targets.get(token_hash)
    if cached is not None:
        return cached
    with db.reader() as uow:
        target = _target(uow.session, token_hash)
    targets.set(token_hash, target, ttl_s=TARGET_CACHE_S)
    return target


def _target(session: Any, token_hash: str) -> _Target:
    workflow = session.scalar(select(Workflow).where(Workflow.outbound_token_hash == token_hash))
    if workflow is None or workflow.event_type != EVENT_TYPE:
        raise _unknown_token()
    document = session.info["ledger"].workflow_document(
        workflow.id, workflow.revision, workflow.document
    )
    event = document.event
    if not isinstance(event, OutboundMessageEvent):
        raise _unknown_token()
    if not workflow.enabled:
        raise Refused(
            f"The cxloop workflow {workflow.name!r} ({workflow.id}) is disabled, so it accepts no "
            "messages; Salesforce keeps retrying for 24 hours. Enable the workflow to receive "
            "them, or deactivate the Outbound Message.",
            "workflow_disabled",
        )
    survey = session.get(Survey, workflow.survey_id)
    connection = (
        resolve_owner_connection(session, survey.owner_id, event.connection) if survey else None
    )
    if connection is None:
        raise Refused(
            f"The cxloop workflow {workflow.name!r} names the connection {event.connection!r}, "
            "which the survey's owner no longer has; fix the workflow's event.",
            "no_connection",
        )
    return _Target(
        workflow_id=workflow.id,
        revision=workflow.revision,
        name=workflow.name,
        survey_id=workflow.survey_id,
        document=document,
        event=event,
        connection_name=connection.name,
        org_id=connection.org_id,
        instance_url=connection.instance_url,
    )


def _check_source(target: _Target, client_ip: str | None) -> None:
    if not target.event.allowed_ips:
        return
    address: Any = None
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address((client_ip or "").strip())
    mapped = getattr(address, "ipv4_mapped", None)
    address = mapped or address
    if address is not None and any(
        address in ipaddress.ip_network(cidr, strict=False) for cidr in target.event.allowed_ips
    ):
        return
    raise Refused(
        f"The address {client_ip or '(unknown)'} may not send messages to the cxloop workflow "
        f"{target.name!r}: it is not in the workflow's allowed_ips.",
        "ip_not_allowed",
    )


def _check_message(target: _Target, message: OutboundMessage) -> None:
    expected = target.event.object
    if message.sobject_type.lower() != expected.lower():
        raise Refused(
            f"The message carries {message.sobject_type} records, but the cxloop workflow "
            f"{target.name!r} expects {expected} records. Point this Outbound Message at the "
            "workflow for its object.",
            "wrong_object",
        )
    if not same_org(message.organization_id, target.org_id):
        raise Refused(
            f"The message comes from the org {message.organization_id}, but the cxloop workflow "
            f"{target.name!r} accepts messages from the org {target.org_id} (its connection "
            f"{target.connection_name!r}).",
            "wrong_org",
        )


# --- session id verification


def _verify_session(
    ledger: Ledger, target: _Target, message: OutboundMessage, extra_hosts: list[str]
) -> None:
    session_id = message.session_id
    if not session_id:
        raise Refused(
            f"The cxloop workflow {target.name!r} verifies session ids, and this message has "
            "none: tick 'Send Session ID' on the Outbound Message in Salesforce Setup.",
            "session_missing",
        )
    key = (hashlib.sha256(session_id.encode()).hexdigest(), id15(target.org_id))
    confirmed = ledger.confirmed_sessions  # the container's, kept SESSION_CACHE_S each
    if confirmed.get(key):
        return
    try:
        # The stored instance URL, never one from the message: the session id goes nowhere else.
        base = hosts.check_url(target.instance_url, extra_hosts, what="instance_url")
    except HostNotAllowed as exc:
        raise Refused(
            f"The connection's instance URL is not trusted: {exc}", "session_error"
        ) from None
    try:
        reply = httpx.get(
            base.rstrip("/") + USERINFO_PATH,
            headers={"Authorization": f"Bearer {session_id}"},
            timeout=SESSION_CHECK_TIMEOUT_S,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        raise Refused(
            f"Salesforce could not be asked about the message's session id ({type(exc).__name__})"
            "; the message will be accepted when Salesforce retries and answers.",
            "session_unverified",
        ) from None
    org = _userinfo_org(reply)
    if reply.status_code != 200 or org is None:
        raise Refused(
            f"Salesforce did not accept the message's session id (HTTP {reply.status_code} from "
            "the userinfo endpoint): the message may not come from Salesforce.",
            "session_rejected",
        )
    if not same_org(org, target.org_id):
        raise Refused(
            f"The message's session id belongs to the org {org}, not to {target.org_id} "
            f"(connection {target.connection_name!r}).",
            "session_rejected",
        )
    confirmed.set(key, True, ttl_s=SESSION_CACHE_S)


def _userinfo_org(reply: httpx.Response) -> str | None:
    try:
        body = reply.json()
    except ValueError:
        return None
    org = body.get("organization_id") if isinstance(body, dict) else None
    return org if isinstance(org, str) else None


# --- storing


def _store(
    db: Database, token_hash: str, target: _Target, message: OutboundMessage
) -> ReceiveResult:
    org15 = id15(message.organization_id)
    unique: dict[str, Notification] = {}  # a notification repeated within the message counts once
    for notification in message.notifications:
        unique.setdefault(notification.notification_id, notification)
    # Conditions are evaluated before the write transaction, so it holds the lock briefly.
    starts = {
        key: outbound_conditions_hold(target.document, target.survey_id, n.fields)
        for key, n in unique.items()
    }
    with db.uow() as uow:
        session = uow.session
        session.autoflush = False
        current = session.execute(
            select(Workflow.id, Workflow.revision, Workflow.enabled).where(
                Workflow.outbound_token_hash == token_hash
            )
        ).one_or_none()
        # Rotated, disabled or changed since the first look: look again, from the start.
        if current is None or current.id != target.workflow_id:
            db.ledger.outbound_targets.pop(token_hash)
            raise _unknown_token()
        if current.revision != target.revision or not current.enabled:
            raise _Stale()
        known = set(
            session.scalars(
                select(OutboundNotification.notification_id).where(
                    OutboundNotification.org_id == org15,
                    OutboundNotification.notification_id.in_(list(unique)),
                )
            )
        )
        fresh = [n for key, n in unique.items() if key not in known]
        runs = 0
        if fresh:
            session.execute(
                insert(OutboundNotification.__table__),
                [
                    {
                        "org_id": org15,
                        "notification_id": n.notification_id,
                        "workflow_id": target.workflow_id,
                        "action_id": message.action_id,
                        "sobject": n.sobject_type,
                        "record_id": n.record_id,
                        "fields": n.fields,
                    }
                    for n in fresh
                ],
            )
            survey = session.get(Survey, target.survey_id)
            assert survey is not None
            starting = [
                RunEvent(f"outbound:{org15}:{n.notification_id}", dict(n.fields))
                for n in fresh
                if starts[n.notification_id]
            ]
            runs = uow.ledger.record_outbound_message(
                uow,
                survey,
                target.workflow_id,
                target.revision,
                target.document,
                starting,
                event_type=EVENT_TYPE,
            )
        uow.commit()
    duplicates = len(message.notifications) - len(fresh)
    if fresh:
        metrics.OUTBOUND_NOTIFICATIONS.labels("accepted").inc(len(fresh))
    if duplicates:
        metrics.OUTBOUND_NOTIFICATIONS.labels("duplicate").inc(duplicates)
    log.info(
        "outbound.received",
        workflow_id=target.workflow_id,
        org_id=org15,
        notifications=len(message.notifications),
        accepted=len(fresh),
        duplicates=duplicates,
        runs=runs,
    )
    return ReceiveResult(200, render_ack(), len(fresh), duplicates, runs)
