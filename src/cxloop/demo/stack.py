"""The demo's three servers, in this process: the Salesforce emulator (sfemu), the mail catcher
and cxloop (on SQLite in the demo's data directory, with its worker and scheduler)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from cxloop.bootstrap import Container, build_container
from cxloop.demo.seed import SF_USER
from cxloop.logs import configure_logging
from cxloop.settings import Settings

if TYPE_CHECKING:
    from cxloop.mail.catcher import MailCatcher
    from cxloop.web.background import BackgroundServer


class DemoError(Exception):
    """Something the demo needs did not work; the message says what."""


class Stack:
    """The emulator, the mail catcher and cxloop, started in order and stopped in reverse."""

    def __init__(
        self,
        *,
        port: int,
        emulator_port: int,
        smtp_port: int,
        mail_port: int,
        data_dir: Path,
        configure_logs: bool = True,
    ) -> None:
        self.configure_logs = configure_logs
        self.ports = {"port": port, "emulator": emulator_port, "smtp": smtp_port, "mail": mail_port}
        self.data_dir = data_dir
        self.emulator_server: Any = None
        self.emulator_url = ""
        self.catcher: MailCatcher | None = None
        self.server: BackgroundServer | None = None
        self.container: Container | None = None

    # -- starting and stopping -----------------------------------------------------------------

    def start(self) -> None:
        """Start the three servers; on failure, stop what had started and raise DemoError."""
        for what, option, port in (
            ("cxloop", "--port", self.ports["port"]),
            ("the emulator", "--emulator-port", self.ports["emulator"]),
            ("the mail catcher's SMTP server", "--smtp-port", self.ports["smtp"]),
            ("the mail catcher's web view", "--mail-port", self.ports["mail"]),
        ):
            _check_port_free(what, option, port)
        try:
            self._start_emulator()
            self._start_catcher()
            self._start_cxloop()
        except BaseException:
            self.stop()
            raise

    def _start_emulator(self) -> None:
        from sfemu.server import BackgroundServer as EmulatorServer
        from sfemu.server import plan_server
        from sfemu.settings import EmulatorSettings

        settings = EmulatorSettings(
            auto_login=SF_USER,
            outbound_time_scale=0.001,  # retries after 15 ms, 30 ms, ... instead of 15 s, 30 s
            outbound_timeout_s=10.0,
        )
        try:
            plan = plan_server(settings, port=self.ports["emulator"])
        except OSError as exc:
            raise DemoError(_port_problem("the emulator", self.ports["emulator"], exc)) from None
        self.emulator_server = EmulatorServer(plan)
        self.emulator_server.start()
        self.emulator_url = plan.base_url

    def _start_catcher(self) -> None:
        from cxloop.mail.catcher import MailCatcher  # with its web server: only for a demo

        try:
            self.catcher = MailCatcher(
                smtp_port=self.ports["smtp"], web_port=self.ports["mail"]
            ).start()
        except OSError as exc:
            raise DemoError(
                _port_problem("the mail catcher", f"{self.ports['smtp']}/{self.ports['mail']}", exc)
            ) from None

    def _start_cxloop(self) -> None:
        # The web app is imported when the demo starts it, not by every `cxloop` command.
        from cxloop.web.app import create_app
        from cxloop.web.background import BackgroundServer

        try:
            self.server = BackgroundServer(port=self.ports["port"], name="cxloop-server")
        except OSError as exc:
            raise DemoError(_port_problem("cxloop", self.ports["port"], exc)) from None
        with self.emulator() as control:
            app = control.get("/info").raise_for_status().json()["connected_apps"][0]
        assert self.catcher is not None
        overrides: dict[str, Any] = {
            "data_dir": self.data_dir,
            "database_url": f"sqlite:///{self.data_dir / 'cxloop.db'}",
            "queue_url": f"sqlite:///{self.data_dir / 'queue.db'}",
            "base_url": self.server.url,
            "smtp_host": "127.0.0.1",
            "smtp_port": self.catcher.smtp_port,
            "smtp_username": None,
            "smtp_password": None,
            "smtp_starttls": False,
            "smtp_ssl": False,
            "salesforce_client_id": app["client_id"],
            "salesforce_client_secret": app["client_secret"],
            "salesforce_apps": {},
            "salesforce_extra_hosts": [urlsplit(self.emulator_url).netloc],
            # a demo should feel instant: no lingering for batches, quick retries
            "batch_linger_s": 0.0,
            "retry_base_s": 0.5,
            "retry_cap_s": 5.0,
        }
        if "CXLOOP_LOG_LEVEL" not in os.environ:
            overrides["log_level"] = "WARNING"
        settings = Settings(**overrides)
        if self.configure_logs:
            configure_logging(settings.log_level, settings.log_json)
        self.container = build_container(settings, upgrade_sqlite=True)
        self.server.start(create_app(self.container, embedded_worker=True), grace_s=5.0)

    def stop(self) -> None:
        """Stop cxloop (its worker finishes what runs), then the catcher, then the emulator."""
        for stop in (
            self.server.stop if self.server else None,
            self.container.close if self.container else None,
            self.catcher.stop if self.catcher else None,
            self.emulator_server.stop if self.emulator_server else None,
        ):
            if stop is not None:
                try:
                    stop()
                except Exception as exc:  # stopping the rest matters more
                    print(f"while stopping: {exc}", file=sys.stderr)
        self.server = self.container = self.catcher = self.emulator_server = None

    # -- clients ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def mail_url(self) -> str:
        assert self.catcher is not None and self.catcher.web_url is not None
        return self.catcher.web_url

    def emulator(self) -> httpx.Client:
        return local_client(base_url=f"{self.emulator_url}/__emulator__", timeout=10)


def _port_problem(what: str, port: int | str, exc: OSError) -> str:
    return f"{what} cannot listen on port {port} ({exc.strerror or exc}): pick another port"


def _check_port_free(what: str, option: str, port: int) -> None:
    """Say which option to change before anything starts, rather than half-way."""
    from cxloop.web.background import bind

    if port == 0:
        return
    try:
        bind("127.0.0.1", port).close()
    except OSError as exc:
        raise DemoError(
            f"{what} cannot listen on port {port} ({exc.strerror or exc}): "
            f"pick another with {option}"
        ) from None


def local_client(**options: Any) -> httpx.Client:
    """An HTTP client for the demo's own servers: never through a proxy from the environment."""
    return httpx.Client(trust_env=False, **options)
