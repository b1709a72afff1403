"""Command line: ``python -m sfemu serve [options]`` (``cxloop emulator serve`` wraps the same)."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable
from typing import Any

from .orgfile import OrgFileError
from .server import ServerPlan, essentials, plan_server, serve_forever
from .settings import DEFAULT_PORT, EmulatorSettings


def build_plan(
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    tls: bool = False,
    org_file: str | None = None,
    auto_login: str | None = None,
    database: str = ":memory:",
    public_url: str | None = None,
    outbound_time_scale: float = 1.0,
    tls_dir: str | None = None,
    latency_ms: float = 0.0,
    per_record_ms: float = 0.0,
) -> ServerPlan:
    """Bind the port and build the emulator (raises OrgFileError / ValueError / OSError)."""
    for name, value in (("--latency-ms", latency_ms), ("--per-record-ms", per_record_ms)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0 (milliseconds), not {value:g}")
    settings = EmulatorSettings(
        org_file=org_file,
        database=database,
        public_url=public_url,
        auto_login=auto_login,
        outbound_time_scale=outbound_time_scale,
        latency_ms=latency_ms,
        per_record_ms=per_record_ms,
    )
    return plan_server(settings, host=host, port=port, tls=tls, tls_dir=tls_dir)


def format_essentials(data: dict[str, Any]) -> str:
    """The info essentials as plain text: one whole id or URL per line, never cut (it is read
    from files and pipes)."""
    lines = [
        f"sfemu listening at {data['base_url']}"
        f"  (control API: {data['base_url']}/__emulator__/info)"
    ]
    if data.get("ca_file"):
        lines.append(f"TLS: trust the CA certificate {data['ca_file']} (give it to clients)")
    if data.get("auto_login"):
        lines.append(f"auto-login as {data['auto_login']} (no login form, no consent)")
    for org in data["orgs"]:
        lines.append("")
        lines.append(f"org {org['alias']} ({org['kind']})  id {org['id']}")
        lines.append(f"  login URL     {org['login_url']}")
        lines.append(f"  instance URL  {org['instance_url']}")
        for user in org["users"]:
            lines.append(
                f"  user {user['username']}  password {user['password']}  profile {user['profile']}"
            )
    for app in data["connected_apps"]:
        lines.append("")
        lines.append(f"connected app {app['name']}")
        lines.append(f"  client id      {app['client_id']}")
        lines.append(f"  client secret  {app['client_secret']}")
        for url in app["callback_urls"]:
            lines.append(f"  callback URL   {url}")
    return "\n".join(lines)


def serve(
    print_essentials: Callable[[dict[str, Any]], None] | None = None,
    log_level: str = "info",
    **options: Any,
) -> None:
    """Build, print the essentials, serve until interrupted."""
    plan = build_plan(**options)
    data = essentials(plan)
    if print_essentials is None:
        print(format_essentials(data), flush=True)
    else:
        print_essentials(data)
    serve_forever(plan, log_level=log_level)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m sfemu``."""
    parser = argparse.ArgumentParser(
        prog="python -m sfemu", description="A local Salesforce emulator."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="run the emulator")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"default {DEFAULT_PORT}; 0 picks a free port",
    )
    run.add_argument("--tls", action="store_true", help="HTTPS with a generated self-signed CA")
    run.add_argument(
        "--tls-dir", default=None, help="where to write the certificates (default: a temp dir)"
    )
    run.add_argument(
        "--org", dest="org_file", default=None, help="org file (YAML); default: the packaged one"
    )
    run.add_argument(
        "--auto-login", default=None, metavar="USER", help="skip login and consent as USER"
    )
    run.add_argument(
        "--db", dest="database", default=":memory:", help="SQLite file, or :memory: (default)"
    )
    run.add_argument(
        "--public-url", default=None, help="base URL clients use, if not http(s)://host:port"
    )
    run.add_argument(
        "--outbound-time-scale",
        type=float,
        default=1.0,
        help="multiply outbound retry intervals and horizon (0.001 for quick demos)",
    )
    run.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        metavar="N",
        help="every REST call of every org waits N ms (a real org's round trip)",
    )
    run.add_argument(
        "--per-record-ms",
        type=float,
        default=0.0,
        metavar="M",
        help="plus M ms per record of a Collections, Composite or Bulk call",
    )
    run.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    options = vars(args)
    options.pop("command")
    log_level = options.pop("log_level")
    try:
        serve(log_level=log_level, **options)
    except (OrgFileError, ValueError, OSError, sqlite3.Error) as exc:
        print(f"sfemu: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0
