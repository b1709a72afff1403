"""The composition root: builds the real things once, from settings, and wires them together."""

from __future__ import annotations

from dataclasses import dataclass, field

from huey import Huey

from cxloop.db import migrate
from cxloop.db.describe_store import DatabaseDescribeStore
from cxloop.db.engine import create_database_engine
from cxloop.db.types import attach_secret_box
from cxloop.db.uow import Database
from cxloop.engine.jobs import periodic_jobs
from cxloop.engine.parts import EngineState
from cxloop.engine.queue import create_huey
from cxloop.engine.scheduler import PeriodicJob, Scheduler
from cxloop.engine.tasks import QueueTasks, register_tasks
from cxloop.files import secure_data_dir
from cxloop.ledger import Ledger
from cxloop.salesforce.client import DescribeCache
from cxloop.security import SecretBox
from cxloop.services.response_intake import ResponseIntake
from cxloop.services.users import TokenMemory
from cxloop.settings import Settings

# Describes kept per process (connection x sObject); each is some tens of kB.
DESCRIBE_CACHE_ENTRIES = 500


@dataclass
class Container:
    """Everything a process of cxloop needs, built once."""

    settings: Settings
    db: Database
    huey: Huey
    secret_box: SecretBox
    describe_cache: DescribeCache
    ledger: Ledger
    engine_state: EngineState = field(default_factory=EngineState)
    tasks: QueueTasks = field(init=False)
    response_intake: ResponseIntake = field(init=False)
    jobs: list[PeriodicJob] = field(default_factory=list)
    token_memory: TokenMemory = field(init=False)  # API tokens accepted moments ago

    def scheduler(self) -> Scheduler:
        return Scheduler(
            self.db,
            self.jobs,
            lambda name, slot: self.tasks.run_periodic_job(name, slot),
            tick_s=self.settings.periodic_tick_s,
        )

    def close(self) -> None:
        self.response_intake.close()
        self.token_memory.close()
        self.engine_state.http.close()
        self.db.dispose()


def build_container(
    settings: Settings, *, upgrade_sqlite: bool = False, read_only: bool = False
) -> Container:
    """Build the container. With `upgrade_sqlite`, an SQLite database is migrated to the newest
    schema (a laptop install should just work); PostgreSQL is migrated explicitly
    (`cxloop db upgrade`), as operators expect. A `read_only` container (of a command that
    only reads) creates no data directory; its settings must carry their secrets."""
    settings = settings.with_secrets().with_served_base_url()
    if not read_only or settings.data_dir.is_dir():
        secure_data_dir(settings.data_dir)
    engine = create_database_engine(
        settings.effective_database_url,
        sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        random_page_cost=settings.database_random_page_cost,
    )
    if upgrade_sqlite and settings.is_sqlite:
        migrate.upgrade(engine)
    secret_box = SecretBox(settings.fernet_keys())
    attach_secret_box(engine, secret_box)  # this engine's keys; no other container's
    ledger = Ledger()
    db = Database(engine, ledger)
    container = Container(
        settings=settings,
        db=db,
        ledger=ledger,
        huey=create_huey(settings.effective_queue_url),
        secret_box=secret_box,
        describe_cache=DescribeCache(
            settings.salesforce_describe_ttl_s,
            max_entries=DESCRIBE_CACHE_ENTRIES,
            store=DatabaseDescribeStore(db),  # what one process asked, every process reads
        ),
    )
    container.jobs = periodic_jobs(container)
    container.response_intake = ResponseIntake(db)
    container.token_memory = TokenMemory(db)
    container.tasks = register_tasks(container.huey, container)
    ledger.connect_queue(container.tasks.dispatch)  # ready batch keys go to this queue
    return container
