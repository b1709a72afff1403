"""The few calls cxloop makes to a local Salesforce emulator's control API (`/__emulator__`):
read its connected apps and register cxloop's callback URL in one. Real Salesforce has no such
API; its connected app is set up by hand (docs/salesforce-setup.md)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import httpx

from cxloop.salesforce.errors import SalesforceUnreachable

CONTROL_PATH = "/__emulator__"


@dataclass(frozen=True)
class EmulatorApp:
    name: str
    client_id: str
    client_secret: str
    callback_urls: list[str]


def connected_apps(origin: str, *, timeout: float = 10) -> list[EmulatorApp]:
    """The emulator's connected apps, with their credentials (it is a local development tool)."""
    body = _call("GET", origin + CONTROL_PATH + "/info", timeout=timeout)
    try:
        return [
            EmulatorApp(
                name=str(app["name"]),
                client_id=str(app["client_id"]),
                client_secret=str(app["client_secret"]),
                callback_urls=[str(u) for u in app.get("callback_urls") or []],
            )
            for app in body["connected_apps"]
        ]
    except (KeyError, TypeError) as exc:
        raise SalesforceUnreachable("its control API answered something else") from exc


def add_callback_url(origin: str, app_name: str, url: str, *, timeout: float = 10) -> None:
    """Add `url` to the callback URLs of the emulator's app `app_name`."""
    _call(
        "PATCH",
        f"{origin}{CONTROL_PATH}/apps/{quote(app_name, safe='')}",
        json={"add_callback_urls": [url]},
        timeout=timeout,
    )


def _call(method: str, url: str, *, timeout: float, json: object = None) -> dict:
    try:
        reply = httpx.request(method, url, json=json, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise SalesforceUnreachable(f"{type(exc).__name__}: {exc}") from exc
    if reply.status_code != 200:
        raise SalesforceUnreachable(f"HTTP {reply.status_code} from {url}")
    try:
        body = reply.json()
    except ValueError as exc:
        raise SalesforceUnreachable(f"{url} did not answer JSON") from exc
    if not isinstance(body, dict):
        raise SalesforceUnreachable(f"{url} answered something else")
    return body
