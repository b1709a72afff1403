"""Salesforce Outbound Messages: parse the SOAP `notifications` request, render the answers.

An outbound message is untrusted input from the internet. It is parsed with defusedxml (no DTD,
no entities, no external references), after a size check, and must be exactly what Salesforce
sends (reference/salesforce/outbound_message_notifications_contact.xml)::

    soapenv:Envelope (http://schemas.xmlsoap.org/soap/envelope/)
      soapenv:Body
        notifications (http://soap.sforce.com/2005/09/outbound)
          OrganizationId, ActionId, SessionId (or xsi:nil), EnterpriseUrl, PartnerUrl
          Notification x 1..100: Id, sObject xsi:type="sf:Case" with one element per field

Anything else raises `OutboundMessageError` whose message is the SOAP faultstring: what is wrong,
in words an administrator can act on. Decisions beyond the WSDL:

- one message carries one sObject type (Salesforce binds an Outbound Message to one object);
  a message that mixes types is refused;
- record fields are flat text; a field element with elements inside is refused;
  fields sent as ``xsi:nil`` are left out, as Salesforce leaves out empty fields;
- a Notification's record must have an ``Id`` field; it comes first in `fields`.

Answers: `render_ack()` (HTTP 200, the only reply Salesforce counts as delivered) and
`render_fault(faultstring)` (HTTP 500; Salesforce retries for 24 hours).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV_NS = "http://www.w3.org/2003/05/soap-envelope"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

MAX_MESSAGE_BYTES = 5 * 1024 * 1024
MAX_NOTIFICATIONS = 100
MAX_FIELDS = 1000  # per record; Salesforce objects have at most 800 fields
MAX_FAULTSTRING = 1000

_SALESFORCE_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
_NOT_XML_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_HEADER = ("OrganizationId", "ActionId", "SessionId", "EnterpriseUrl", "PartnerUrl")

ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV_NS}" xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
    f' xmlns:xsi="{XSI_NS}">\n'
    " <soapenv:Body>\n"
    f'  <notificationsResponse xmlns="{OUTBOUND_NS}">\n'
    "   <Ack>true</Ack>\n"
    "  </notificationsResponse>\n"
    " </soapenv:Body>\n"
    "</soapenv:Envelope>\n"
).encode()

_FAULT_TEMPLATE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV_NS}" xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
    f' xmlns:xsi="{XSI_NS}">\n'
    " <soapenv:Body>\n"
    "  <soapenv:Fault>\n"
    "   <faultcode>soapenv:{code}</faultcode>\n"
    "   <faultstring>{faultstring}</faultstring>\n"
    "   <detail />\n"
    "  </soapenv:Fault>\n"
    " </soapenv:Body>\n"
    "</soapenv:Envelope>\n"
)


class OutboundMessageError(ValueError):
    """The body is not an outbound message we accept; the message is the SOAP faultstring."""

    def __init__(self, faultstring: str, *, reason: str = "malformed") -> None:
        super().__init__(faultstring)
        self.faultstring = faultstring
        self.reason = reason  # a short label for metrics: malformed, too_large, ...


@dataclass(frozen=True)
class Notification:
    """One record change: the notification's own id, the record's type and its fields."""

    notification_id: str
    sobject_type: str
    fields: dict[str, str] = field(default_factory=dict)  # name -> text, Id first

    @property
    def record_id(self) -> str:
        return self.fields["Id"]


@dataclass(frozen=True)
class OutboundMessage:
    """A parsed `notifications` request."""

    organization_id: str
    action_id: str
    session_id: str | None
    enterprise_url: str
    partner_url: str
    notifications: list[Notification]

    @property
    def sobject_type(self) -> str:
        return self.notifications[0].sobject_type


def parse_notifications(body: bytes) -> OutboundMessage:
    """The outbound message in `body`, or OutboundMessageError saying what is wrong."""
    if not isinstance(body, bytes | bytearray):
        raise OutboundMessageError("The message must be sent as bytes.")
    if len(body) > MAX_MESSAGE_BYTES:
        raise OutboundMessageError(
            f"The message is larger than {MAX_MESSAGE_BYTES // (1024 * 1024)} MB; an outbound "
            "message of 100 notifications is far smaller: send fewer fields.",
            reason="too_large",
        )
    if not body.strip():
        raise OutboundMessageError("The message is empty: expected a SOAP 1.1 envelope.")
    root = _parse_xml(bytes(body))
    body_element = _soap_body(root)
    notifications = _only_child(body_element, "the SOAP Body")
    if notifications.tag != f"{{{OUTBOUND_NS}}}notifications":
        raise OutboundMessageError(
            f"The SOAP Body holds {_describe(notifications.tag)}, not a `notifications` element "
            f"in the namespace {OUTBOUND_NS}: this is not a Salesforce outbound message.",
            reason="wrong_namespace"
            if _local(notifications.tag) == "notifications"
            else "not_soap",
        )
    return _message(notifications)


def render_ack() -> bytes:
    """The acknowledgement: the reference answer's bytes (without its byte-order mark)."""
    return ACK


def render_fault(faultstring: str, *, code: str = "Client") -> bytes:
    """A SOAP 1.1 fault carrying `faultstring` (escaped, without characters XML forbids)."""
    text = _NOT_XML_CHARS.sub("\ufffd", faultstring)
    if len(text) > MAX_FAULTSTRING:
        text = text[: MAX_FAULTSTRING - 1] + "…"
    code = code if code in ("Client", "Server") else "Client"
    return _FAULT_TEMPLATE.format(code=code, faultstring=escape(text)).encode("utf-8")


def id15(salesforce_id: str) -> str:
    """An Id in its 15-character, case-sensitive form (how Salesforce compares Ids)."""
    return salesforce_id[:15]


def same_org(id_a: str | None, id_b: str | None) -> bool:
    """Whether two org Ids (15 or 18 characters) name the same org."""
    if not id_a or not id_b or len(id_a) < 15 or len(id_b) < 15:
        return False
    return id15(id_a) == id15(id_b)


def is_salesforce_id(value: str) -> bool:
    return bool(_SALESFORCE_ID.match(value))


# --- parsing


def _parse_xml(body: bytes) -> Element:
    try:
        return SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise OutboundMessageError(
            f"The message contains a DTD, entity or external reference ({type(exc).__name__}); "
            "Salesforce never sends them and cxloop does not read them.",
            reason="forbidden_xml",
        ) from None
    except ParseError as exc:
        raise OutboundMessageError(
            f"The message is not well-formed XML ({exc}).", reason="not_xml"
        ) from None
    except (ValueError, LookupError, TypeError, RecursionError, MemoryError) as exc:
        raise OutboundMessageError(
            f"The message could not be read as XML ({type(exc).__name__}).", reason="not_xml"
        ) from None


def _soap_body(root: Element) -> Element:
    if root.tag == f"{{{SOAP12_ENV_NS}}}Envelope":
        raise OutboundMessageError(
            "The message is a SOAP 1.2 envelope; Salesforce outbound messages are SOAP 1.1 "
            f"({SOAP_ENV_NS}).",
            reason="wrong_namespace",
        )
    if root.tag != f"{{{SOAP_ENV_NS}}}Envelope":
        reason = "wrong_namespace" if _local(root.tag) == "Envelope" else "not_soap"
        raise OutboundMessageError(
            f"The message is {_describe(root.tag)}, not a SOAP 1.1 Envelope in the namespace "
            f"{SOAP_ENV_NS}.",
            reason=reason,
        )
    bodies = [child for child in root if child.tag == f"{{{SOAP_ENV_NS}}}Body"]
    if len(bodies) != 1:
        raise OutboundMessageError(
            f"The SOAP Envelope has {len(bodies)} Body elements; it must have exactly one.",
            reason="not_soap",
        )
    return bodies[0]


def _only_child(parent: Element, what: str) -> Element:
    children = _elements(parent)
    if len(children) != 1:
        raise OutboundMessageError(
            f"{what[:1].upper()}{what[1:]} holds {len(children)} elements; it must hold exactly "
            "one `notifications` element.",
            reason="not_soap",
        )
    return children[0]


def _message(element: Element) -> OutboundMessage:
    header: dict[str, Element] = {}
    notifications: list[Notification] = []
    types: set[str] = set()
    for child in _elements(element):
        name = _in_outbound_ns(child, "the notifications element")
        if name == "Notification":
            if len(notifications) >= MAX_NOTIFICATIONS:
                raise OutboundMessageError(
                    f"The message holds more than {MAX_NOTIFICATIONS} Notification elements; "
                    f"Salesforce sends at most {MAX_NOTIFICATIONS} per message.",
                    reason="too_many_notifications",
                )
            notification = _notification(child, len(notifications) + 1)
            notifications.append(notification)
            types.add(notification.sobject_type)
        elif name in _HEADER:
            if name in header:
                raise OutboundMessageError(f"The message has more than one {name} element.")
            if notifications:
                raise OutboundMessageError(
                    f"{name} comes after a Notification; it must come before them."
                )
            header[name] = child
        else:
            raise OutboundMessageError(
                f"The notifications element holds an unknown element `{_short(name)}`."
            )
    organization_id = _id_text(header.get("OrganizationId"), "OrganizationId")
    action_id = _id_text(header.get("ActionId"), "ActionId")
    if not notifications:
        raise OutboundMessageError(
            f"The message holds no Notification element; it must hold 1 to {MAX_NOTIFICATIONS}.",
            reason="no_notifications",
        )
    if len(types) > 1:
        raise OutboundMessageError(
            "The message mixes records of several objects ("
            + ", ".join(sorted(types))
            + "); an outbound message carries records of one object.",
            reason="mixed_objects",
        )
    return OutboundMessage(
        organization_id=organization_id,
        action_id=action_id,
        session_id=_session_id(header.get("SessionId")),
        enterprise_url=_plain_text(header.get("EnterpriseUrl"), "EnterpriseUrl"),
        partner_url=_plain_text(header.get("PartnerUrl"), "PartnerUrl"),
        notifications=notifications,
    )


def _notification(element: Element, number: int) -> Notification:
    where = f"Notification {number}"
    notification_id: str | None = None
    sobject: Element | None = None
    for child in _elements(element):
        name = _in_outbound_ns(child, where)
        if name == "Id" and notification_id is None:
            notification_id = _id_text(child, f"the Id of {where}")
        elif name == "sObject" and sobject is None:
            sobject = child
        else:
            raise OutboundMessageError(
                f"{where} holds an unexpected element `{_short(name)}`; a Notification holds "
                "one Id and one sObject."
            )
    if notification_id is None:
        raise OutboundMessageError(f"{where} has no Id.")
    if sobject is None:
        raise OutboundMessageError(f"{where} has no sObject.")
    sobject_type = _sobject_type(sobject, where)
    fields: dict[str, str] = {}
    for child in _elements(sobject):
        name = _local(child.tag)
        if not _API_NAME.match(name):
            raise OutboundMessageError(
                f"{where} has a field named `{_short(name)}`, which is not a Salesforce field name."
            )
        if len(_elements(child)):
            raise OutboundMessageError(
                f"{where}: the field {name} holds elements; outbound message fields are "
                "plain values."
            )
        if child.get(f"{{{XSI_NS}}}nil") == "true" or name in fields:
            continue
        fields[name] = child.text or ""
        if len(fields) > MAX_FIELDS:
            raise OutboundMessageError(f"{where} has more than {MAX_FIELDS} fields.")
    record_id = fields.pop("Id", "").strip()
    if not record_id:
        raise OutboundMessageError(f"{where}: the {sobject_type} record has no Id field.")
    if not is_salesforce_id(record_id):
        raise OutboundMessageError(
            f"{where}: the record Id {_short(record_id)!r} is not a Salesforce Id "
            "(15 or 18 letters and digits)."
        )
    return Notification(notification_id, sobject_type, {"Id": record_id, **fields})


def _sobject_type(sobject: Element, where: str) -> str:
    declared = (sobject.get(f"{{{XSI_NS}}}type") or "").strip()
    if not declared:
        raise OutboundMessageError(f"{where}: the sObject has no xsi:type (such as sf:Case).")
    name = declared.rsplit(":", 1)[-1]
    if not _API_NAME.match(name):
        raise OutboundMessageError(
            f"{where}: the sObject type {_short(declared)!r} is not an object name."
        )
    return name


def _in_outbound_ns(element: Element, where: str) -> str:
    namespace, name = _split(element.tag)
    if namespace != OUTBOUND_NS:
        raise OutboundMessageError(
            f"In {where}, the element `{_short(name)}` is in the namespace "
            f"{_short(namespace or '(none)')!r}, not {OUTBOUND_NS}.",
            reason="wrong_namespace",
        )
    return name


def _id_text(element: Element | None, what: str) -> str:
    if element is None:
        raise OutboundMessageError(f"The message has no {what}.", reason="missing_field")
    text = (element.text or "").strip()
    if not is_salesforce_id(text):
        raise OutboundMessageError(
            f"The {what} {_short(text)!r} is not a Salesforce Id (15 or 18 letters and digits).",
            reason="bad_id",
        )
    return text


def _session_id(element: Element | None) -> str | None:
    if element is None or element.get(f"{{{XSI_NS}}}nil") == "true":
        return None
    text = (element.text or "").strip()
    if len(text) > 2000:
        raise OutboundMessageError("The SessionId is longer than a Salesforce session id can be.")
    return text or None


def _plain_text(element: Element | None, what: str) -> str:
    if element is None:
        return ""
    text = (element.text or "").strip()
    if len(text) > 2000:
        raise OutboundMessageError(f"The {what} is longer than 2000 characters.")
    return text


def _elements(parent: Element) -> list[Element]:
    # Comments and processing instructions are not elements (their tag is a function).
    return [child for child in parent if isinstance(child.tag, str)]


def _split(tag: Any) -> tuple[str | None, str]:
    if not isinstance(tag, str):
        return None, ""
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return None, tag


def _local(tag: Any) -> str:
    return _split(tag)[1]


def _describe(tag: Any) -> str:
    namespace, name = _split(tag)
    where = f" in the namespace {_short(namespace)!r}" if namespace else " without a namespace"
    return f"a `{_short(name)}` element{where}"


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
