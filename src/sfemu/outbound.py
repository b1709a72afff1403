"""Outbound messages: rules, the queue, the SOAP ``notifications`` message, delivery and retry.

As Salesforce does it: when a record change meets a rule ("Status becomes Closed"), a
notification is queued; notifications of one rule are sent together (up to 100 per message)
as a SOAP 1.1 ``notifications`` request; a message counts as delivered only on HTTP 200 with
``<Ack>true</Ack>``; otherwise it is retried at growing intervals (capped) until a horizon,
then dropped. Delivery is at least once: a fault can deliver an acknowledged message again.
The message bytes match reference/salesforce/outbound_message_notifications_contact.xml.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
import httpx

from . import ids
from .schema import FieldType

if TYPE_CHECKING:
    from .dml import Change
    from .emulator import Emulator
    from .orgs import Org, OutboundRule

log = logging.getLogger("sfemu.outbound")

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
SOBJECT_NS = "urn:sobject.enterprise.soap.sforce.com"


@dataclass
class NotificationContent:
    """What one Notification element carries."""

    notification_id: str
    sobject: str
    fields: list[tuple[str, str]]  # (name, text), Id first


def soap_text(ftype: FieldType, value: Any) -> str:
    """A field value as the enterprise SOAP API writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if ftype == FieldType.DATETIME and isinstance(value, str) and value.endswith("+0000"):
        return value[:-5] + "Z"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def render_notifications(
    organization_id: str,
    action_id: str,
    session_id: str | None,
    enterprise_url: str,
    partner_url: str,
    notifications: list[NotificationContent],
    *,
    xml_declaration: bool = False,
) -> bytes:
    """The SOAP envelope of an outbound message, laid out byte for byte as Salesforce's."""
    lines = []
    if xml_declaration:
        lines.append('<?xml version="1.0" encoding="UTF-8"?>')
    lines += [
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
        " <soapenv:Body>",
        f'  <notifications xmlns="{OUTBOUND_NS}">',
        f"   <OrganizationId>{escape(organization_id)}</OrganizationId>",
        f"   <ActionId>{escape(action_id)}</ActionId>",
        f"   <SessionId>{escape(session_id)}</SessionId>"
        if session_id
        else '   <SessionId xsi:nil="true"/>',
        f"   <EnterpriseUrl>{escape(enterprise_url)}</EnterpriseUrl>",
        f"   <PartnerUrl>{escape(partner_url)}</PartnerUrl>",
    ]
    for item in notifications:
        lines += [
            "   <Notification>",
            f"    <Id>{escape(item.notification_id)}</Id>",
            f'    <sObject xsi:type="sf:{escape(item.sobject)}" xmlns:sf="{SOBJECT_NS}">',
        ]
        lines += [f"     <sf:{name}>{escape(text)}</sf:{name}>" for name, text in item.fields]
        lines += ["    </sObject>", "   </Notification>"]
    lines += ["  </notifications>", " </soapenv:Body>", "</soapenv:Envelope>", ""]
    return "\n".join(lines).encode("utf-8")


def is_ack(status_code: int, body: bytes) -> bool:
    """Whether a listener's answer acknowledges the message: HTTP 200 and <Ack>true</Ack>."""
    if status_code != 200:
        return False
    try:
        root = SafeET.fromstring(body)
    except Exception:  # any parse problem means "not acknowledged", as for Salesforce
        return False
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "Ack":
            return (element.text or "").strip().lower() == "true"
    return False


@dataclass
class Notification:
    """One queued notification (one record change meeting one rule)."""

    id: str
    org_id: str
    rule_id: str
    sobject: str
    record_id: str
    fields: list[list[str]]
    created_at: float
    next_attempt_at: float
    status: str = "pending"  # pending | sending | delivered | dropped
    attempts: int = 0
    deliveries: int = 0
    last_error: str | None = None
    last_status_code: int | None = None
    last_attempt_at: float | None = None
    delivered_at: float | None = None
    message_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (control API)."""
        return asdict(self)


@dataclass
class Delivery:
    """One message: up to 100 notifications of one rule, sent in one POST."""

    org: Org
    rule: OutboundRule
    notifications: list[Notification]
    session_id: str | None
    base_url: str
    message_id: str = ""


class OutboundService:
    """The queue of every org and the thread that delivers it."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.settings = emulator.settings
        self.queue: dict[str, Notification] = {}
        self._message_counter = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()

    # -- queueing -------------------------------------------------------------------------

    def load(self) -> None:
        """Read persisted notifications (a message being sent when the process died is pending)."""
        for key, doc in self.emulator.db.load_json("outbound"):
            notification = Notification(**doc)
            if notification.status == "sending":
                notification.status = "pending"
            self.queue[key] = notification
        if (
            any(n.status == "pending" for n in self.queue.values())
            and self.settings.outbound_autostart
        ):
            self.start()

    def on_changes(self, changes: list[Change]) -> None:
        """Queue a notification for every committed change that meets an active rule."""
        queued: list[Notification] = []
        for change in changes:
            org = change.org
            if not org.outbound_rules or change.new.get("IsDeleted"):
                continue
            event = "created" if change.old is None else "updated"
            for rule in org.outbound_rules:
                if (
                    not rule.active
                    or rule.sobject != change.sobject.name
                    or event not in rule.events
                ):
                    continue
                if rule.field is not None:
                    if not _same(change.new.get(rule.field), rule.value):
                        continue
                    if change.old is not None and _same(change.old.get(rule.field), rule.value):
                        continue  # it was already so: the field did not *become* the value
                queued.append(self._notification(org, rule, change))
        if not queued:
            return
        for notification in queued:
            self.queue[notification.id] = notification
        self._persist(queued)
        if self.settings.outbound_autostart:
            self.start()
        self._wake.set()

    def _notification(self, org: Org, rule: OutboundRule, change: Change) -> Notification:
        record = change.new
        sobject = change.sobject
        names = ["Id", *sorted((n for n in rule.fields if n != "Id"), key=str.lower)]
        fields = []
        for name in names:
            value = record.get(name)
            if value is None:
                continue  # Salesforce leaves empty fields out of the sObject
            fdef = sobject.fields.get(name)
            fields.append([name, soap_text(fdef.type if fdef else FieldType.STRING, value)])
        now = time.time()
        return Notification(
            id=self.emulator.new_id(org, ids.OUTBOUND_NOTIFICATION),
            org_id=org.id,
            rule_id=rule.id,
            sobject=sobject.name,
            record_id=record["Id"],
            fields=fields,
            created_at=now,
            next_attempt_at=now,
        )

    def _persist(self, notifications: list[Notification]) -> None:
        self.emulator.db.put_many_json(
            "outbound", [(n.id, n.org_id, n.as_dict()) for n in notifications]
        )

    # -- delivery -------------------------------------------------------------------------

    def seconds_until_due(self) -> float | None:
        """Seconds until the next pending notification is due (None: nothing pending)."""
        with self.emulator.lock:
            pending = [n.next_attempt_at for n in self.queue.values() if n.status == "pending"]
        if not pending:
            return None
        return max(0.0, min(pending) - time.time())

    def take_due(self, *, force: bool = False, org_id: str | None = None) -> list[Delivery]:
        """Group due notifications into messages, marking them as being sent."""
        now = time.time()
        deliveries: list[Delivery] = []
        with self.emulator.lock:
            groups: dict[tuple[str, str], list[Notification]] = {}
            dropped: list[Notification] = []
            for notification in self.queue.values():
                if notification.status != "pending" or (org_id and notification.org_id != org_id):
                    continue
                if (
                    now - notification.created_at >= self.settings.horizon
                    and notification.attempts > 0
                ):
                    notification.status = "dropped"
                    notification.last_error = (
                        notification.last_error or ""
                    ) + " (dropped: retry horizon passed)"
                    dropped.append(notification)
                    continue
                if force or notification.next_attempt_at <= now:
                    groups.setdefault((notification.org_id, notification.rule_id), []).append(
                        notification
                    )
            for (group_org_id, rule_id), members in groups.items():
                org = self.emulator.orgs.get(group_org_id)
                rule = (
                    next((r for r in org.outbound_rules if r.id == rule_id), None) if org else None
                )
                if org is None or rule is None:
                    for notification in members:
                        notification.status = "dropped"
                        notification.last_error = "the outbound message rule no longer exists"
                        dropped.append(notification)
                    continue
                size = max(1, min(100, self.settings.outbound_batch_size))
                for start in range(0, len(members), size):
                    chunk = members[start : start + size]
                    for notification in chunk:
                        notification.status = "sending"
                    self._message_counter += 1
                    deliveries.append(
                        Delivery(
                            org=org,
                            rule=rule,
                            notifications=chunk,
                            session_id=self._session_for(org, rule),
                            base_url=self.emulator.public_base_url(),
                            message_id=f"msg-{self._message_counter}",
                        )
                    )
            if dropped:
                self._persist(dropped)
        return deliveries

    def _session_for(self, org: Org, rule: OutboundRule) -> str | None:
        if not rule.include_session_id:
            return None
        user = org.user(rule.user or "") or next(iter(org.users.values()))
        session = self.emulator.tokens.issue_session(
            org.id, user.id, None, ["api"], self.emulator.login_url(org), kind="outbound"
        )
        return session.token

    def message_bytes(self, delivery: Delivery) -> bytes:
        """The SOAP message for a delivery."""
        org, rule = delivery.org, delivery.rule
        base = delivery.base_url.rstrip("/")
        return render_notifications(
            organization_id=org.id,
            action_id=rule.id,
            session_id=delivery.session_id,
            enterprise_url=f"{base}/services/Soap/c/{rule.api_version}/{org.id15}",
            partner_url=f"{base}/services/Soap/u/{rule.api_version}/{org.id15}",
            notifications=[
                NotificationContent(n.id, n.sobject, [(k, v) for k, v in n.fields])
                for n in delivery.notifications
            ],
        )

    def deliver_due(
        self, *, force: bool = False, org_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Send every due message now (all pending ones with force); returns what happened."""
        deliveries = self.take_due(force=force, org_id=org_id)
        results = []
        if not deliveries:
            return results
        client = self._client()
        try:
            for delivery in deliveries:
                results.append(self._deliver(client, delivery))
        finally:
            client.close()
        return results

    def _client(self) -> httpx.Client:
        if self.settings.outbound_client_factory is not None:
            return self.settings.outbound_client_factory()
        return httpx.Client(
            timeout=self.settings.outbound_timeout_s, verify=self.settings.outbound_verify_tls
        )

    def _deliver(self, client: httpx.Client, delivery: Delivery) -> dict[str, Any]:
        body = self.message_bytes(delivery)
        url = delivery.rule.endpoint_url
        with self.emulator.lock:
            decision = self.emulator.faults.decide("outbound", delivery.org.id, None, "POST", url)
        if decision.latency_ms:
            time.sleep(decision.latency_ms / 1000)
        status_code: int | None = None
        error: str | None = None
        try:
            response = client.post(
                url,
                content=body,
                headers={
                    "Content-Type": "text/xml; charset=utf-8",
                    "SOAPAction": '""',
                    "User-Agent": "Salesforce Outbound Messaging (sfemu)",
                },
                timeout=self.settings.outbound_timeout_s,
            )
            status_code = response.status_code
            acknowledged = is_ack(response.status_code, response.content)
            if not acknowledged:
                error = f"HTTP {response.status_code}: no <Ack>true</Ack> in the answer"
        except httpx.HTTPError as exc:
            acknowledged = False
            error = f"{type(exc).__name__}: {exc}"
        self._record(
            delivery, acknowledged, status_code, error, duplicate=decision.mode == "duplicate"
        )
        return {
            "message_id": delivery.message_id,
            "org": delivery.org.id,
            "rule": delivery.rule.name,
            "endpoint_url": url,
            "notifications": [n.id for n in delivery.notifications],
            "acknowledged": acknowledged,
            "status_code": status_code,
            "error": error,
        }

    def _record(
        self,
        delivery: Delivery,
        acknowledged: bool,
        status_code: int | None,
        error: str | None,
        *,
        duplicate: bool,
    ) -> None:
        now = time.time()
        with self.emulator.lock:
            for notification in delivery.notifications:
                notification.attempts += 1
                notification.last_attempt_at = now
                notification.last_status_code = status_code
                notification.message_ids.append(delivery.message_id)
                if acknowledged:
                    notification.deliveries += 1
                    notification.delivered_at = now
                    notification.last_error = None
                    # A duplicate fault sends it again, as Salesforce may (at least once).
                    notification.status = "pending" if duplicate else "delivered"
                    notification.next_attempt_at = now
                else:
                    notification.last_error = error
                    notification.status = "pending"
                    retry_at = now + self.settings.retry_delay(notification.attempts)
                    notification.next_attempt_at = min(
                        retry_at, notification.created_at + self.settings.horizon
                    )
            self._persist(delivery.notifications)
        if duplicate:
            self._wake.set()

    # -- queue management -----------------------------------------------------------------

    def messages(
        self, org_id: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        """The queue (of one org / in one status), oldest first."""
        with self.emulator.lock:
            return [
                n.as_dict()
                for n in self.queue.values()
                if (org_id is None or n.org_id == org_id) and (status is None or n.status == status)
            ]

    def redeliver(self, notification_id: str) -> Notification | None:
        """Queue a notification again, whatever its state (forces a redelivery)."""
        with self.emulator.lock:
            notification = self.queue.get(notification_id)
            if notification is None:
                return None
            notification.status = "pending"
            notification.next_attempt_at = time.time()
            self._persist([notification])
        self._wake.set()
        return notification

    def clear(self, org_id: str | None = None) -> None:
        """Forget queued notifications (of one org)."""
        with self.emulator.lock:
            if org_id is None:
                self.queue.clear()
                self.emulator.db.clear_table("outbound")
            else:
                dead = [k for k, n in self.queue.items() if n.org_id == org_id]
                for key in dead:
                    del self.queue[key]
                self.emulator.db.delete_json("outbound", dead)

    # -- the delivery thread --------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery thread (once)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sfemu-outbound", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the delivery thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def is_running(self) -> bool:
        """Whether the delivery thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                delay = self.seconds_until_due()
                if delay is None or delay > 0:
                    self._wake.wait(1.0 if delay is None else min(delay, 1.0))
                    continue
                self.deliver_due()
            except Exception:  # keep delivering whatever one message did
                log.exception("outbound delivery round failed")
                self._stop.wait(0.5)


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    if a is None or b is None:
        return False
    return str(a).lower() == str(b).lower()
