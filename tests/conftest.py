"""Fixtures shared by every test: databases (SQLite, PostgreSQL), queues (SQLite, Redis), the app.

`database_url` is parametrised over SQLite and PostgreSQL, `queue_url` over SQLite and Redis, so
every test that uses them (directly or through `container` / `client`) runs on both. Without a
PostgreSQL or Redis server the second variant skips with the reason; under CI=true it fails.
The same holds for the reference samples of ../shared/reference (`reference_sample`).

Under pytest-xdist (`make test` runs one worker per core) each worker has a PostgreSQL database
and a Redis db of its own (`worker_resources`); everything else a test uses is in its tmp_path or
on a free port.

Each test builds its own container and app. What an app builds that holds nothing of the app or
its container is built once per test process instead (the `shared_*` fixtures: the UI's
languages, FastAPI's validators and endpoint signatures, the default SSL context): rebuilt per
test it was a third to a half of the CPU of the API and page tests.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from cxloop import security
from cxloop.bootstrap import Container, build_container
from cxloop.db import migrate
from cxloop.db.base import Base
from cxloop.db.engine import create_database_engine
from cxloop.services import users
from cxloop.settings import Settings
from cxloop.web.app import create_app
from cxloop.web.ui import i18n

POSTGRES_ADMIN_URL = os.environ.get(
    "CXLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# The Redis db of the first xdist worker (or of a run without xdist); worker gwN takes db base+N.
REDIS_BASE_URL = os.environ.get("CXLOOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# ../shared beside the project; CXLOOP_TEST_SHARED_DIR points elsewhere (the tests of the CI
# rule point it at a directory that does not exist).
SHARED_DIR = Path(
    os.environ.get("CXLOOP_TEST_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared"
)
REFERENCE_DIR = SHARED_DIR / "reference"

# The developer's own settings must not leak into tests.
for _name in [n for n in os.environ if n.startswith("CXLOOP_") and not n.startswith("CXLOOP_TEST")]:
    del os.environ[_name]
os.environ["CXLOOP_CONFIG"] = "/nonexistent/cxloop.toml"
# Nor may a test write into the real per-user data directory (the default data_dir).
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="cxloop-test-xdg-")

# argon2 with production parameters costs ~0.5 s a hash on this kind of machine, and tests make
# hundreds of users; hashes made with these parameters still verify the same way. The production
# hasher has tests of its own (tests/unit/test_password_hasher.py).
security._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def unavailable(service: str, reason: str) -> None:
    """Skip a test whose service is missing; under CI that is a failure, not a skip."""
    message = f"{service} is not reachable ({reason}); start it to run this variant"
    if IN_CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def reference_sample(*parts: str) -> Path:
    """A file (or folder) of ../shared/reference, e.g. `reference_sample("salesforce", name)`.

    Missing, it skips the test saying why; under CI=true it fails it, as a missing PostgreSQL
    does, so that a CI run without the samples cannot pass on skips."""
    path = REFERENCE_DIR.joinpath(*parts)
    if not path.exists():
        message = (
            f"the reference sample {path} is missing: check out the shared directory beside "
            "the project (../shared) to run this test"
        )
        if IN_CI:
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    return path


def reference_samples(folder: str, pattern: str) -> list[Path]:
    """The files of a folder of ../shared/reference matching `pattern`; none is as missing."""
    found = sorted(reference_sample(*folder.split("/")).glob(pattern))
    if not found:
        reference_sample(folder, pattern)  # skips (fails under CI) with the path in the reason
    return found


# --- what each pytest-xdist worker has of its own


@dataclass(frozen=True)
class WorkerResources:
    """The shared servers' parts one test process may use: its PostgreSQL database's name and
    its Redis URL. Under xdist, worker gwN has `test_gwN_<checkout>_<run>` and Redis db base+N;
    a run without xdist has `test_main_<checkout>_<run>` and the base db."""

    worker: str
    postgres_prefix: str  # the worker's databases of every run of this checkout
    postgres_database: str  # this run's
    redis_url: str


def xdist_worker(config: pytest.Config) -> str:
    """This xdist worker's id (gw0, gw1, ...), or "" without xdist. Read from the worker's own
    config, not from PYTEST_XDIST_WORKER: a pytest that a test starts (test_ci_rules.py)
    inherits that variable and would take its parent's database."""
    workerinput = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else ""


def worker_resources_for(
    worker: str, *, checkout: Path, postgres_url: str, redis_url: str, run: str
) -> WorkerResources:
    """The names for `worker` ("" without xdist) in run `run`. The checkout's path is in the
    database name so that two checkouts (worktrees) running their suites at once never share a
    database. The run is too: processes a killed run left behind (a server, a worker) must not
    write into the next run's database; the next run drops theirs (see postgres_session_url)."""
    index = int(worker[2:]) if worker.startswith("gw") else 0
    tag = re.sub(r"[^a-z0-9]+", "_", checkout.name.lower()).strip("_")[:20]
    digest = hashlib.sha256(str(checkout).encode()).hexdigest()[:6]
    base = postgres_url.rsplit("/", 1)[1].split("?")[0] or "test"
    prefix = f"{base}_{worker or 'main'}_{tag[: 63 - len(base) - 26]}_{digest}_"
    parts = urlsplit(redis_url)
    base_db = int(parts.path.strip("/") or 0)
    redis = urlunsplit(parts._replace(path=f"/{base_db + index}"))
    return WorkerResources(worker or "main", prefix, prefix + run[:8], redis)


@pytest.fixture(scope="session")
def worker_resources(request: pytest.FixtureRequest) -> WorkerResources:
    """This process's PostgreSQL database name and Redis URL (see WorkerResources)."""
    return worker_resources_for(
        xdist_worker(request.config),
        checkout=Path(__file__).resolve().parents[1],
        postgres_url=POSTGRES_ADMIN_URL,
        redis_url=REDIS_BASE_URL,
        run=uuid.uuid4().hex,
    )


def _run_first(item: pytest.Item) -> int:
    """0 for the longest tests (marked slow: benches, fuzzing, killed workers), 1 for the other
    page and process tests (tests/e2e), 2 for the rest."""
    if item.get_closest_marker("slow"):
        return 0
    if item.get_closest_marker("browser") or "tests/e2e/" in item.path.as_posix():
        return 1
    return 2


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In xdist workers, the longest tests first. `--dist load --maxschedchunk 1` (Makefile)
    gives a worker the next test when it is free, so the long tests spread over the workers and
    the run ends on short ones, not on a bench that one worker started last. Every worker sorts
    alike (xdist refuses different collections); a run without xdist keeps the file order."""
    if xdist_worker(config):
        items.sort(key=_run_first)


# --- PostgreSQL: one fresh database per test process, migrated once, emptied between tests


# Who made a test database: the run's process on this machine (its comment in PostgreSQL).
_OWNER = f"cxloop-test pid={os.getpid()} host={socket.gethostname()}"


def made_by_a_live_run(owner: str | None) -> bool:
    """Whether the test process that made a database (its comment, `_OWNER`) is still running
    on this machine; a database of an older run has no comment."""
    found = re.fullmatch(r"cxloop-test pid=(\d+) host=(.+)", owner or "")
    if found is None or found.group(2) != socket.gethostname():
        return False
    try:
        os.kill(int(found.group(1)), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive all the same
    return True


@pytest.fixture(scope="session")
def postgres_session_url(worker_resources: WorkerResources) -> Iterator[str]:
    name = worker_resources.postgres_database
    try:
        admin = create_engine(
            POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
        )
        with admin.connect() as connection:
            # This worker's databases of earlier runs of this checkout that were killed before
            # they dropped theirs go first, with their connections (a process such a run left);
            # not those of a run still going (a second pytest started in the same checkout).
            listed = connection.execute(
                text("SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database")
            )
            for stale, owner in listed:
                ours = stale.startswith(worker_resources.postgres_prefix)
                if ours and not made_by_a_live_run(owner):
                    connection.execute(text(f'DROP DATABASE "{stale}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
            connection.execute(text(f"COMMENT ON DATABASE \"{name}\" IS '{_OWNER}'"))
    except Exception as exc:
        unavailable("PostgreSQL", f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    engine = create_database_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


_emptiers: dict[str, tuple[Any, str]] = {}


def _empty_postgres(url: str) -> None:
    """Delete every row and restart every sequence, in one round trip. Not TRUNCATE: it makes
    new files for each of the ~40 tables and their indexes, ~1.5 s a test on a busy machine
    against ~30 ms for these DELETEs of the few rows a test leaves (children before parents)."""
    found = _emptiers.get(url)
    if found is None:  # one engine for the session: a connection per test is slow enough
        engine = create_database_engine(url)
        with engine.connect() as connection:
            sequences = connection.scalars(
                text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
            ).all()
        tables = reversed(Base.metadata.sorted_tables)
        statements = [f'DELETE FROM "{table.name}"' for table in tables]
        statements += [f'ALTER SEQUENCE "{name}" RESTART' for name in sequences]
        found = _emptiers[url] = (engine, "; ".join(statements))
    engine, statement = found
    with engine.begin() as connection:
        connection.exec_driver_sql(statement)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite database migrated once; each test gets a copy (migrating costs ~1 s a time)."""
    path = tmp_path_factory.mktemp("template") / "cxloop.db"
    engine = create_database_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: SQLite in a temp dir, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        target = tmp_path / "cxloop.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite:///{target}"
    url = request.getfixturevalue("postgres_session_url")
    _empty_postgres(url)
    return url


# --- queues


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A queue: SQLite in a temp dir, or this worker's Redis db (its queue keys removed before
    and after: an interrupted test leaves messages)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'queue.db'}"
        return
    import redis

    url = request.getfixturevalue("worker_resources").redis_url
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:
        unavailable("Redis", f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]} at {url}")
    for key in client.scan_iter("huey*"):
        client.delete(key)
    yield url
    for key in client.scan_iter("huey*"):
        client.delete(key)
    client.close()


# --- the app


@pytest.fixture(scope="session", autouse=True)
def shared_ui_languages() -> Iterator[None]:
    """Every app a test process builds gets the same `UiLanguages` (the admin UI's catalogues
    and Jinja environments). The app builds its own at start: parsing the five .po files and
    compiling each page's templates again cost ~35 ms of CPU an app plus ~12 ms a template,
    about a fifth of the CPU of the UI page tests, for objects that hold nothing of an app or a
    container (the languages' texts and templates, read from the package). Only the argument-free
    construction `ui.install` makes is shared; `UiLanguages(some_dir, ...)` builds its own."""
    real = i18n.UiLanguages
    shared = real()

    def languages(*args: Any, **kwargs: Any) -> i18n.UiLanguages:
        return shared if not args and not kwargs else real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(i18n, "UiLanguages", languages)
        yield


@pytest.fixture(scope="session", autouse=True)
def shared_type_adapters() -> Iterator[None]:
    """Every app a test process builds shares the pydantic validators of its parameters and
    bodies. FastAPI makes a ModelField, with a TypeAdapter (a core schema built, then compiled),
    for each parameter, body and response model of each route an app serves, on the app's
    first requests; a test builds its own app, and this was about 40% of the CPU of the API
    tests. A TypeAdapter holds nothing of its app: only what its FieldInfo says (type,
    constraints, settings) and the model config, which are the cache's key, so two apps with
    the same route get equal validators either way. Each ModelField is still the app's own;
    a FieldInfo whose parts cannot be hashed gets a TypeAdapter of its own, as before."""
    from fastapi._compat import v2

    real = v2.ModelField.__post_init__
    built: dict[tuple[Any, ...], Any] = {}

    def post_init(field: Any) -> None:
        info = field.field_info
        # The settings by their repr (type, constraints and every attribute set): a FieldInfo
        # compares by identity.
        key = (type(info), info.annotation, tuple(info.metadata), repr(info), repr(field.config))
        try:
            found = built.get(key)
        except TypeError:  # a part that cannot be hashed: not shared
            real(field)
            return
        if found is None:
            real(field)
            built[key] = field._type_adapter
        else:
            field._type_adapter = found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(v2.ModelField, "__post_init__", post_init)
        yield


@pytest.fixture(scope="session", autouse=True)
def shared_endpoint_signatures() -> Iterator[None]:
    """FastAPI reads each endpoint's and dependency's typed signature again for every app that
    serves it (~5% of the CPU of the API tests, each test building its own app). A signature
    is the function's own, the same for every app: read once per function."""
    from fastapi.dependencies import utils

    real = utils.get_typed_signature
    read: dict[Any, Any] = {}

    def get_typed_signature(call: Any) -> Any:
        try:
            found = read.get(call)
        except TypeError:  # an unhashable callable object: read every time, as before
            return real(call)
        if found is None:
            found = read[call] = real(call)
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(utils, "get_typed_signature", get_typed_signature)
        yield


@pytest.fixture(scope="session", autouse=True)
def shared_default_ssl_context() -> Iterator[None]:
    """Every httpx client a test process makes with the default TLS settings (verify=True, no
    client certificate) shares one SSL context. Making one loads certifi's CA bundle (~20 ms of
    CPU), and the app makes clients per container and per sign-in (the OAuth identity call),
    the tests per emulator call: ~8% of the CPU of the tests that link a connection. Clients
    given a context or a CA file of their own (the TLS emulator) keep theirs."""
    from httpx._transports import default

    real = default.create_ssl_context
    shared = real()

    def create_ssl_context(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if verify is not True or cert is not None or not trust_env:
            return real(verify=verify, cert=cert, trust_env=trust_env)
        return shared

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(default, "create_ssl_context", create_ssl_context)
        yield


def make_settings(
    tmp_path: Path, database_url: str, queue_url: str, **overrides: object
) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        queue_url=queue_url,
        **overrides,
    ).with_secrets()


@pytest.fixture
def container(tmp_path: Path, database_url: str) -> Iterator[Container]:
    """The composition root on a fresh database (both engines) and an SQLite queue."""
    built = build_container(
        make_settings(tmp_path, database_url, f"sqlite:///{tmp_path / 'queue.db'}")
    )
    yield built
    built.close()


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container), raise_server_exceptions=False) as test_client:
        yield test_client


@dataclass
class Person:
    """A user with an API token, for tests."""

    id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def make_person(container: Container) -> Callable[..., Person]:
    def make(email: str, *, admin: bool = False) -> Person:
        user = users.create_user(container.db, email, "a long enough passphrase", is_admin=admin)
        issued = users.create_token(container.db, email, "test")
        return Person(id=user.id, email=user.email, token=issued.token)

    return make


@pytest.fixture
def admin(make_person: Callable[..., Person]) -> Person:
    return make_person("admin@example.com", admin=True)


@pytest.fixture
def alice(make_person: Callable[..., Person]) -> Person:
    return make_person("alice@example.com")


@pytest.fixture
def bob(make_person: Callable[..., Person]) -> Person:
    return make_person("bob@example.com")


@pytest.fixture
def carol(make_person: Callable[..., Person]) -> Person:
    return make_person("carol@example.com")
