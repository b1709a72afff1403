"""Every setting of cxloop, typed, in one place.

Values come from (highest first): arguments, `CXLOOP_*` environment variables, an optional
TOML file (`CXLOOP_CONFIG`, else the first `cxloop.toml` in the current directory or one of its
parents), then the defaults below. The secret key and the encryption keys, when not given, are
generated once into the data directory (mode 0600) so that a laptop install needs no configuration
at all.

The data directory does not depend on the current directory unless told to: `CXLOOP_DATA_DIR`,
else `data_dir` in the config file (a relative path is relative to that file), else the per-user
data directory (`$XDG_DATA_HOME/cxloop`, by default `~/.local/share/cxloop`). So the server and
every CLI command, wherever they are started, find the same database.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Annotated, Any, Self

from cryptography.fernet import Fernet
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

SECRET_KEY_FILE = "secret_key"
ENCRYPTION_KEYS_FILE = "encryption_keys"
# Where `cxloop serve` notes the base URL it derived, for the commands run beside it.
SERVED_BASE_URL_FILE = "served_base_url"
REDACTED = "**********"
# An origin a CSP `frame-ancestors` may name: scheme, host (a leading `*.` allowed), port.
_ORIGIN = re.compile(r"^https?://(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:\d{1,5})?$")


CONFIG_FILE_NAME = "cxloop.toml"


def config_file() -> Path | None:
    """The config file in use: `CXLOOP_CONFIG` (whether or not it exists), else the first
    `cxloop.toml` in the current directory or one of its parents, else None."""
    explicit = os.environ.get("CXLOOP_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    here = Path.cwd()
    for directory in (here, *here.parents):
        candidate = directory / CONFIG_FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def default_data_dir() -> Path:
    """The per-user data directory: the same wherever a command is started.

    Linux and other Unix: `$XDG_DATA_HOME/cxloop`, else `~/.local/share/cxloop`; macOS:
    `~/Library/Application Support/cxloop`; Windows: `%LOCALAPPDATA%\\cxloop`.
    """
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "cxloop"
    if sys.platform == "darwin" and not os.environ.get("XDG_DATA_HOME"):
        return Path.home() / "Library" / "Application Support" / "cxloop"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cxloop"


def create_data_dir(path: Path) -> Path:
    """Create the data directory (and its parents) if missing: the one place that does. Only
    its owner may enter it (cxloop.files makes an existing one private when a process starts)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


class _TomlFile(TomlConfigSettingsSource):
    """The config file; a relative `data_dir` in it is relative to the file, not to wherever
    the command happens to run."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        data = super()._read_file(file_path)
        if (
            isinstance(data.get("data_dir"), str)
            and not Path(data["data_dir"]).expanduser().is_absolute()
        ):
            data["data_dir"] = str(Path(file_path).resolve().parent / data["data_dir"])
        return data


class SalesforceApp(BaseModel):
    """A connected app's credentials."""

    model_config = ConfigDict(extra="forbid")

    client_id: str
    client_secret: SecretStr


def _listed(value: Any, info: ValidationInfo) -> Any:
    """A list setting as given: a list, a JSON array, or comma-separated values (the form an
    environment variable takes most naturally: `CXLOOP_TRUSTED_PROXIES=10.0.0.1,10.0.0.2`)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError(
                f'{info.field_name}: expected a JSON array such as ["a", "b"] or comma-separated '
                "values such as a,b"
            ) from None
        return parsed
    return [part.strip() for part in text.split(",") if part.strip()]


# A setting that is a list of text; NoDecode: pydantic-settings would take an environment
# variable for JSON only, `_listed` takes comma-separated values too.
ListSetting = Annotated[list[str], NoDecode, BeforeValidator(_listed)]


# --- the settings, by area. Each area is a mixin; `Settings` composes them, so every setting
# keeps its flat name (`settings.lease_s`, `CXLOOP_LEASE_S`) and no caller changes.


class StorageSettings(BaseModel):
    """Database and files"""

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Files: SQLite, keys. Default: the per-user data directory "
        "(`$XDG_DATA_HOME/cxloop`, `~/.local/share/cxloop`).",
    )
    database_url: str = Field(default="", description="Default: SQLite in the data directory.")
    database_pool_size: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="PostgreSQL: connections each process keeps open in its pool.",
    )
    database_max_overflow: int = Field(
        default=20,
        ge=0,
        le=1000,
        description="PostgreSQL: connections a process may open beyond its pool under load "
        "(closed again when returned).",
    )
    database_random_page_cost: float = Field(
        default=1.1,
        ge=0,
        le=100,
        description="PostgreSQL: the planner's cost of a random page read (`random_page_cost`) "
        "in cxloop's own sessions. 1.1 suits SSDs and a working set in memory; with the "
        "server's default of 4 the ledger's batch statements read whole tables of 10,000 to "
        "50,000 rows instead of looking their rows up by id. 0 keeps the server's value.",
    )
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()


class WebSettings(BaseModel):
    """Web server"""

    base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Public URL of the server: links in emails and the OAuth callback. When not "
        "set, `cxloop serve --host H --port P` uses http://H:P (127.0.0.1 for 0.0.0.0) and "
        "other commands use the one the server last served on.",
    )
    max_request_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    session_max_age_s: int = Field(
        default=14 * 24 * 3600,
        ge=60,
        description="Absolute timeout of a web session: it ends this long after login.",
    )
    session_idle_timeout_s: int = Field(
        default=8 * 3600, ge=60, description="A web session unused this long ends."
    )
    frame_ancestors: ListSetting = Field(
        default_factory=list,
        description="Origins (https://intranet.example.com, comma-separated) allowed to embed "
        "the survey pages (/s/...) in a frame; no page can be framed by default.",
    )
    request_read_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait for a request's headers, and between two parts of its body; "
        "a slower client is disconnected.",
    )
    trusted_proxies: ListSetting = Field(
        default_factory=list,
        description="Reverse proxies (IPs or networks, comma-separated, or `*` for any) whose "
        "X-Forwarded-For gives the client address; empty: the connecting peer is the client.",
    )
    # --- public survey pages: submissions (page POSTs) per minute; 0 for no limit
    submissions_per_address_per_minute: int = Field(
        default=60,
        ge=0,
        description="Public survey page submissions per client address a minute (0: no limit).",
    )
    submissions_per_survey_per_minute: int = Field(
        default=1200,
        ge=0,
        description="Public survey page submissions per survey a minute (0: no limit).",
    )
    survey_image_hosts: ListSetting = Field(
        default_factory=list,
        description="Hosts (such as images.example.org, comma-separated) whose images survey "
        "texts may show; they join the survey pages' CSP img-src. Other images are shown as "
        "their alt text.",
    )
    idempotency_key_ttl_s: int = Field(
        default=24 * 3600,
        ge=60,
        description="How long an `Idempotency-Key` of a response submission is kept: a retry "
        "with the key within this time gets the stored response.",
    )
    transfer_offer_days: int = Field(
        default=14, ge=1, le=365, description="How long an offer to take over a survey stays open."
    )

    @field_validator("frame_ancestors")
    @classmethod
    def _valid_origins(cls, value: list[str]) -> list[str]:
        # The origins go into a response header verbatim: nothing but an origin may pass.
        for origin in value:
            if not _ORIGIN.match(origin):
                raise ValueError(
                    f"frame_ancestors: {origin!r} is not an origin like https://intranet.example.com"
                )
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an IP address or network "
                    "(such as 10.0.0.1 or 10.0.0.0/8), nor `*`"
                ) from None
        return value


class SecuritySettings(BaseModel):
    """Secrets and sign-in throttling"""

    # Generated into the data directory when not given; never logged.
    secret_key: SecretStr | None = None
    encryption_keys: SecretStr | None = Field(
        default=None, description="Comma-separated Fernet keys, newest first."
    )
    # Throttling of logins and API token checks (counted per account and per client address).
    auth_free_failures: int = Field(
        default=5, ge=1, description="Failed checks allowed before each further one waits."
    )
    auth_backoff_base_s: float = Field(
        default=1.0, gt=0, description="First wait after the free failures; doubles each time."
    )
    auth_lockout_failures_per_account: int = Field(
        default=10, ge=1, description="Failed logins that lock an account for auth_lockout_s."
    )
    auth_lockout_failures_per_address: int = Field(
        default=50, ge=1, description="Failed logins or token checks that lock a client address."
    )
    auth_lockout_s: int = Field(default=900, ge=1, description="How long a lockout lasts.")
    auth_failure_window_s: int = Field(
        default=3600, ge=1, description="Failures older than this (since the first) are forgotten."
    )


class QueueSettings(BaseModel):
    """Queue, workers and scheduler"""

    queue_url: str = Field(
        default="", description="Default: SQLite in the data directory; redis://... for Redis."
    )
    worker_threads: int = Field(default=2, ge=1, le=64)
    periodic_tick_s: float = Field(default=1.0, gt=0, description="How often the scheduler looks.")
    heartbeat_period_s: int = Field(default=60, ge=1, description="Scheduler heartbeat period.")
    process_heartbeat_s: float = Field(
        default=5.0,
        gt=0,
        description="How often a worker and a scheduler note in the database that they are "
        "alive (`/readyz` reads it).",
    )
    process_silent_after_s: float = Field(
        default=60.0,
        gt=0,
        description="`/readyz` reports the workers or the scheduler as degraded when none has "
        "noted a heartbeat for this long.",
    )
    health_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port on which `cxloop worker` and `cxloop scheduler` serve /livez, /readyz "
        "and /metrics (0: none; `--health-port` wins).",
    )


class EngineSettings(BaseModel):
    """The ledger: retries, batching, leases"""

    retry_horizon_s: int = Field(
        default=24 * 3600, ge=0, description="How long transient errors are retried."
    )
    retry_base_s: float = Field(default=2.0, gt=0, description="First retry delay; doubles.")
    retry_cap_s: float = Field(default=3600.0, gt=0, description="Longest delay between tries.")
    lease_s: int = Field(
        default=10,
        ge=5,
        description="How long a claimed task run is held without a heartbeat: a worker renews "
        "the leases of the rows it holds every `lease_heartbeat_s`, so a call may take longer; "
        "a dead worker's rows are taken back this long after its last heartbeat (plus up to "
        "`sweeper_period_s`).",
    )
    lease_heartbeat_s: float | None = Field(
        default=None,
        gt=0,
        description="How often a worker renews the leases of the task runs it holds (one UPDATE "
        "per process). Default: a quarter of `lease_s`; at most a third, so that a late beat "
        "or two lose nothing.",
    )
    batch_size: int = Field(default=200, ge=1, le=200, description="Records per Collections call.")
    batch_linger_s: float = Field(
        default=0.5,
        ge=0,
        description="Under load, how long a record may wait for others to fill its batch "
        "(half as long again once the batch is two thirds full).",
    )
    batch_quiet_s: float = Field(
        default=0.15,
        ge=0,
        description="A filling batch goes early once no record has joined it for this long "
        "(0: never early).",
    )
    bulk_threshold: int = Field(
        default=2000,
        ge=0,
        description="A Salesforce batch key holding more ready task runs than this, the oldest "
        "from an imported response (a backfill), sends them through one Bulk API 2.0 ingest job "
        "instead of Collections calls (0: never). Live responses always go by Collections calls.",
    )
    bulk_max_records: int = Field(
        default=25_000,
        ge=1,
        le=10_000_000,
        description="Task runs per Bulk API 2.0 ingest job (the CSV is also kept under 100 MB). "
        "A worker holds each job's rows, then its results, in memory (about 2 KB a record, "
        "several jobs at once with several threads): 100,000 took a worker to 780 MB, 25,000 "
        "to about 410 MB, at about 0.3 API calls per 1,000 records.",
    )
    bulk_gather_s: float = Field(
        default=20.0,
        ge=0,
        description="While a backlog of a batch key grows fast (an import), how long it may "
        "wait to fill one Bulk API 2.0 job instead of several (0: send at once).",
    )
    bulk_poll_s: float = Field(
        default=2.0,
        gt=0,
        description="First wait before a Bulk API 2.0 job's state is checked; doubles per check.",
    )
    bulk_poll_max_s: float = Field(
        default=30.0, gt=0, description="Longest wait between two checks of a Bulk API 2.0 job."
    )
    batch_key_lease_s: float = Field(
        default=5.0,
        ge=1,
        description="How long a worker process owns a batch key (it fills and claims the key's "
        "batches alone) without renewing it; a dead owner's key is free again after this.",
    )
    sweeper_period_s: int = Field(
        default=3,
        ge=1,
        description="How often stuck work is re-queued: expired leases taken back (each with an "
        "attempt saying so), ready rows nobody took, paused work that may resume.",
    )
    api_usage_threshold: float = Field(
        default=0.9, gt=0, le=1, description="Slow down an org above this share of its API limit."
    )
    limit_backoff_s: float = Field(
        default=300.0, gt=0, description="Pause for an org that answered REQUEST_LIMIT_EXCEEDED."
    )
    run_retention_days: int = Field(default=365, ge=1, description="Run history kept this long.")

    @property
    def effective_lease_heartbeat_s(self) -> float:
        """How often a worker renews its leases: the setting, else a quarter of the lease."""
        return self.lease_heartbeat_s or self.lease_s / 4

    @model_validator(mode="after")
    def _heartbeat_fits_the_lease(self) -> Self:
        # Two beats may come late (a busy database, a long pause of the interpreter) before a
        # living worker's rows would be taken from it.
        if self.lease_heartbeat_s is not None and self.lease_heartbeat_s * 3 > self.lease_s:
            raise ValueError(
                f"lease_heartbeat_s ({self.lease_heartbeat_s:g}) must be at most a third of "
                f"lease_s ({self.lease_s}): set CXLOOP_LEASE_HEARTBEAT_S to "
                f"{self.lease_s / 3:g} or less, or raise CXLOOP_LEASE_S"
            )
        return self


class MailSettings(BaseModel):
    """Mail"""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    mail_from: str = "cxloop <cxloop@localhost>"


class SalesforceSettings(BaseModel):
    """Salesforce"""

    max_connections_per_user: int = Field(default=5, ge=1)
    salesforce_client_id: str = Field(
        default="",
        description="The connected app's consumer key. Without a restart, an admin sets the app "
        "in the database instead: `cxloop salesforce app set` (this setting wins when given).",
    )
    salesforce_client_secret: SecretStr | None = Field(
        default=None, description="The connected app's consumer secret (with the consumer key)."
    )
    salesforce_apps: Annotated[dict[str, SalesforceApp], NoDecode] = Field(
        default_factory=dict,
        description="Per login host, another connected app: {host: {client_id, client_secret}} "
        "(JSON). Or in the database: `cxloop salesforce app set --login-url URL`.",
    )
    salesforce_extra_hosts: ListSetting = Field(
        default_factory=list,
        description="Hosts (host or host:port, comma-separated) allowed besides Salesforce's "
        "own, for custom and emulator connections. A login host given an app in the database is "
        "allowed too (a local emulator's, once linked with "
        "`cxloop connections add --type emulator`).",
    )
    salesforce_api_version: str = Field(default="62.0", pattern=r"^\d{2,3}\.0$")
    salesforce_timeout_s: float = Field(default=30.0, gt=0)
    salesforce_max_concurrent_batches: int = Field(
        default=16,
        ge=1,
        le=25,
        description="Most Collections calls in flight per org, shared by every worker process. "
        "The engine starts at 2 and doubles towards this once per round trip while calls are "
        "slow, succeed and more is waiting; it halves on REQUEST_LIMIT_EXCEEDED and near the "
        "org's API allocation. Salesforce allows an org 25 long-running requests: 16 leaves 9 "
        "to its other integrations even if every call of ours ran long.",
    )
    salesforce_describe_ttl_s: int = Field(default=3600, ge=0)
    oauth_attempt_ttl_s: int = Field(default=900, ge=60)
    oauth_bootstrap_ttl_s: int = Field(
        default=300, ge=10, description="How long the link that starts linking in a browser works."
    )

    @field_validator("salesforce_apps", mode="before")
    @classmethod
    def _json_apps(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(
                'salesforce_apps: expected JSON such as {"login.example.my.salesforce.com": '
                '{"client_id": "...", "client_secret": "..."}}'
            ) from None


class LoggingSettings(BaseModel):
    """Logging"""

    log_level: str = "INFO"
    log_json: bool | None = Field(default=None, description="Default: JSON unless on a TTY.")

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("log_level must be DEBUG, INFO, WARNING or ERROR")
        return level


# The areas in the order the documentation shows them.
SETTINGS_AREAS: tuple[type[BaseModel], ...] = (
    StorageSettings,
    QueueSettings,
    WebSettings,
    SecuritySettings,
    EngineSettings,
    SalesforceSettings,
    MailSettings,
    LoggingSettings,
)


class Settings(
    StorageSettings,
    QueueSettings,
    WebSettings,
    SecuritySettings,
    EngineSettings,
    SalesforceSettings,
    MailSettings,
    LoggingSettings,
    BaseSettings,
):
    """cxloop's configuration. Field `x` is set by the environment variable `CXLOOP_X`.

    The fields are declared by area (the mixins above); access stays flat: `settings.lease_s`.
    """

    model_config = SettingsConfigDict(env_prefix="CXLOOP_", extra="forbid", validate_default=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        found = config_file()
        if found is None:
            return (init_settings, env_settings)
        return (init_settings, env_settings, _TomlFile(settings_cls, toml_file=found))

    # --- derived values: the defaults that depend on the data directory

    @property
    def effective_database_url(self) -> str:
        """The database URL, SQLite in the data directory unless one was set."""
        return self.database_url or f"sqlite:///{self.data_dir / 'cxloop.db'}"

    @property
    def effective_queue_url(self) -> str:
        """The queue URL, SQLite in the data directory unless one was set."""
        return self.queue_url or f"sqlite:///{self.data_dir / 'queue.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def redacted(self) -> dict[str, Any]:
        """The effective settings as plain values, every secret replaced by a fixed mask."""
        shown: dict[str, Any] = {}
        for name in (name for _, names in settings_by_area() for name in names):
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = REDACTED
            elif name == "salesforce_apps":
                value = {host: {"client_id": app.client_id, "client_secret": REDACTED}
                         for host, app in value.items()}  # fmt: skip
            elif isinstance(value, Path):
                value = str(value)
            shown[name] = value
        shown["database_url"] = redact_url(self.effective_database_url)
        shown["queue_url"] = redact_url(self.effective_queue_url)
        return shown

    # --- secrets

    def with_existing_secrets(self) -> Settings:
        """These settings with the secrets kept in the data directory filled in when they are
        there; nothing is generated or written (for read-only commands such as `config show`)."""
        updates: dict[str, Any] = {}
        for name, file_name in (
            ("secret_key", SECRET_KEY_FILE),
            ("encryption_keys", ENCRYPTION_KEYS_FILE),
        ):
            path = self.data_dir / file_name
            if getattr(self, name) is None and path.is_file():
                updates[name] = SecretStr(path.read_text().strip())
        return self.model_copy(update=updates) if updates else self

    def with_secrets(self) -> Settings:
        """These settings with the secret key and encryption keys filled in.

        Missing ones are read from, or generated once into, the data directory with mode 0600.
        """
        updates: dict[str, Any] = {}
        if self.secret_key is None:
            updates["secret_key"] = SecretStr(
                _read_or_create_secret(self.data_dir / SECRET_KEY_FILE, secrets.token_urlsafe(48))
            )
        if self.encryption_keys is None:
            updates["encryption_keys"] = SecretStr(
                _read_or_create_secret(
                    self.data_dir / ENCRYPTION_KEYS_FILE, Fernet.generate_key().decode()
                )
            )
        return self.model_copy(update=updates) if updates else self

    @property
    def base_url_is_set(self) -> bool:
        """Whether CXLOOP_BASE_URL (or cxloop.toml's base_url) was given, not derived."""
        return "base_url" in self.model_fields_set

    def with_served_base_url(self) -> Settings:
        """These settings with the base URL the server last served on (`cxloop serve` notes it
        in the data directory) when none was set: a command's links then match the server."""
        if self.base_url_is_set:
            return self
        try:
            served = (self.data_dir / SERVED_BASE_URL_FILE).read_text().strip()
        except OSError:
            return self
        if not served.startswith(("http://", "https://")) or any(c.isspace() for c in served):
            return self
        copy = self.model_copy(update={"base_url": served})
        # Still derived: the next `cxloop serve` may derive another one.
        copy.__pydantic_fields_set__.discard("base_url")
        return copy

    def note_served_base_url(self) -> None:
        """Remember this (derived) base URL for the other commands (see with_served_base_url)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / SERVED_BASE_URL_FILE).write_text(self.base_url + "\n")

    @property
    def oauth_callback_url(self) -> str:
        """The redirect URI to register in the connected app."""
        return self.base_url.rstrip("/") + "/oauth/salesforce/callback"

    def salesforce_app_for(self, login_host: str) -> SalesforceApp | None:
        """The connected app for a login host: a per-host one, else the default, else None."""
        if login_host in self.salesforce_apps:
            return self.salesforce_apps[login_host]
        if self.salesforce_client_id and self.salesforce_client_secret is not None:
            return SalesforceApp(
                client_id=self.salesforce_client_id, client_secret=self.salesforce_client_secret
            )
        return None

    def fernet_keys(self) -> list[str]:
        """The encryption keys, newest (the one that encrypts) first."""
        if self.encryption_keys is None:
            raise RuntimeError("encryption keys not loaded: call Settings.with_secrets() first")
        return [k.strip() for k in self.encryption_keys.get_secret_value().split(",") if k.strip()]


def settings_by_area() -> list[tuple[str, list[str]]]:
    """Every setting's name, grouped by area (title, names), in the documented order."""
    return [(area.__doc__ or area.__name__, list(area.model_fields)) for area in SETTINGS_AREAS]


def redact_url(url: str) -> str:
    """A URL with its password masked: `postgresql://u:****@h/db`."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user, has_password, _ = credentials.partition(":")
    return f"{scheme}://{user}{':' + REDACTED if has_password else ''}@{host}"


def _read_or_create_secret(path: Path, new_value: str) -> str:
    if path.exists():
        return path.read_text().strip()
    create_data_dir(path.parent)
    # O_EXCL: two processes starting together must not write two different keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(new_value + "\n")
    return new_value


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and config file, with secrets loaded or generated."""
    return Settings(**overrides).with_secrets().with_served_base_url()
