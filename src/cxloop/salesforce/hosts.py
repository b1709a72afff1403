"""Which hosts cxloop will send Salesforce credentials to.

Salesforce's own domains over HTTPS, and hosts the operator configured for custom and emulator
connections (`CXLOOP_SALESFORCE_EXTRA_HOSTS`). Anything else is refused before a byte is sent:
a token must never leak to a host that merely claims to be Salesforce.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from cxloop.salesforce.errors import HostNotAllowed

PRODUCTION_LOGIN_URL = "https://login.salesforce.com"
SANDBOX_LOGIN_URL = "https://test.salesforce.com"

SALESFORCE_DOMAINS = (
    "salesforce.com",
    "force.com",
    "cloudforce.com",
    "database.com",
    "salesforce-setup.com",
    "salesforce.mil",
    "sfcrmapps.cn",
    "sfcrmproducts.cn",
)


def host_of(url: str) -> str:
    """`host` or `host:port` of a URL, lower-case."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return f"{host}:{parts.port}" if parts.port else host


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of an http(s) URL; HostNotAllowed in words otherwise."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise HostNotAllowed(f"{url!r} is not an http(s) URL, like http://127.0.0.1:8701.")
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def is_salesforce_host(host: str) -> bool:
    name = host.split(":", 1)[0]
    return any(name == domain or name.endswith("." + domain) for domain in SALESFORCE_DOMAINS)


def check_url(url: str, extra_hosts: Iterable[str], *, what: str = "URL") -> str:
    """`url` without a trailing slash if it may receive credentials; HostNotAllowed otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise HostNotAllowed(f"The {what} {url!r} is not an http(s) URL.")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise HostNotAllowed(f"The {what} {url!r} must be a plain origin, like https://host.")
    host = host_of(url)
    configured = {h.lower() for h in extra_hosts}
    if host in configured or host.split(":", 1)[0] in configured:
        return url.rstrip("/")
    if not is_salesforce_host(host):
        raise HostNotAllowed(
            f"The {what} {url!r} is not a Salesforce host (*.salesforce.com, *.force.com, ...). "
            "To use another host (an emulator, a proxy), add it to CXLOOP_SALESFORCE_EXTRA_HOSTS."
        )
    if parts.scheme != "https":
        raise HostNotAllowed(f"The {what} {url!r} must use https.")
    return url.rstrip("/")


def login_url_for(connection_type: str, login_url: str | None, extra_hosts: Iterable[str]) -> str:
    """The login URL for a connection type: fixed for production and sandbox, given otherwise."""
    if connection_type == "production":
        return PRODUCTION_LOGIN_URL
    if connection_type == "sandbox":
        return SANDBOX_LOGIN_URL
    if not login_url:
        raise HostNotAllowed(f"A {connection_type} connection needs a login_url.")
    return check_url(login_url, extra_hosts, what="login_url")
