"""Sending mail through SMTP (any server; the built-in catcher in demo and tests)."""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formataddr, getaddresses, make_msgid

from cxloop.settings import Settings


class MailError(Exception):
    """Sending failed. `permanent` says whether trying again can help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def one_line(text: str) -> str:
    """Header text with line breaks removed: no header injection through piped values."""
    return re.sub(r"[\r\n]+", " ", text).strip()


def parse_addresses(text: str) -> list[str]:
    """`a@x.com, Bob <b@y.com>` → the addresses, line breaks neutralised."""
    return [addr for _name, addr in getaddresses([one_line(text)]) if "@" in addr]


def build_message(
    settings: Settings,
    *,
    to: Sequence[str],
    subject: str,
    body: str,
    cc: Sequence[str] = (),
    from_name: str | None = None,
    from_address: str | None = None,
    reply_to: str | None = None,
    html: str | None = None,
) -> EmailMessage:
    message = EmailMessage()
    sender = settings.mail_from
    if from_address:
        sender = formataddr((one_line(from_name or ""), one_line(from_address)))
    message["From"] = sender
    message["To"] = ", ".join(one_line(a) for a in to)
    if cc:
        message["Cc"] = ", ".join(one_line(a) for a in cc)
    if reply_to:
        message["Reply-To"] = one_line(reply_to)
    message["Subject"] = one_line(subject)
    message["Message-ID"] = make_msgid(domain="cxloop")
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


def send(settings: Settings, message: EmailMessage) -> None:
    """Hand the message to the SMTP server; MailError says whether to retry."""
    try:
        smtp_class = smtplib.SMTP_SSL if settings.smtp_ssl else smtplib.SMTP
        with smtp_class(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s
        ) as smtp:
            if settings.smtp_starttls and not settings.smtp_ssl:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username and settings.smtp_password is not None:
                smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        raise MailError(
            f"the mail server refused every recipient: {exc.recipients}", permanent=True
        ) from exc
    except smtplib.SMTPResponseException as exc:
        permanent = 500 <= exc.smtp_code < 600
        raise MailError(
            f"the mail server answered {exc.smtp_code}: {exc.smtp_error!r}", permanent=permanent
        ) from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"the mail server could not be reached: {exc}", permanent=False) from exc
