"""The composition root: builds the real things once, from settings, and wires them together."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field

from huey import Huey

from cxloop.db import migrate
from cxloop.db.engine import create_database_engine
from cxloop.db.types import use_secret_box
from cxloop.db.uow import Database
from cxloop.engine.jobs import periodic_jobs
from cxloop.engine.queue import create_huey
from cxloop.engine.scheduler import PeriodicJob, Scheduler
from cxloop.engine.tasks import QueueTasks, register_tasks
from cxloop.files import secure_data_dir
from cxloop.salesforce.client import DescribeCache
from cxloop.security import SecretBox
from cxloop.services import response_events, runs
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
        self.db.dispose()


def build_container(
    settings: Settings, *, upgrade_sqlite: bool = False, read_only: bool = False
) -> Container:
    """Build the container. With `upgrade_sqlite`, an SQLite database is migrated to the newest
    schema (a laptop install should just work); PostgreSQL is migrated explicitly
    (`cxloop db upgrade`), as operators expect. A `read_only` container (of a command that
    only reads) creates no data directory; its settings must carry their secrets."""
    settings = settings.with_secrets().with_served_base_url()
    # The cycle collector's default first threshold (700 new objects) runs it hundreds of times
    # per thousand responses taken in; fewer, larger collections cost a tenth less CPU per
    # imported response (measured), and memory no more than a few thousand objects.
    gc.set_threshold(10_000, 10, 10)
    if not read_only or settings.data_dir.is_dir():
        secure_data_dir(settings.data_dir)
    engine = create_database_engine(
        settings.effective_database_url,
        sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    if upgrade_sqlite and settings.is_sqlite:
        migrate.upgrade(engine)
    db = Database(engine)
    secret_box = SecretBox(settings.fernet_keys())
    use_secret_box(secret_box)
    container = Container(
        settings=settings,
        db=db,
        huey=create_huey(settings.effective_queue_url),
        secret_box=secret_box,
        describe_cache=DescribeCache(
            settings.salesforce_describe_ttl_s, max_entries=DESCRIBE_CACHE_ENTRIES
        ),
    )
    container.jobs = periodic_jobs(container)
    container.response_intake = ResponseIntake(db)
    container.token_memory = TokenMemory(db)
    container.tasks = register_tasks(container.huey, container)
    # Process-wide wiring: the last container built is the one this process serves.
    runs.use_dispatcher(lambda keys: [container.tasks.dispatch(key) for key in keys])
    if runs.match_response not in response_events.registered_hooks():
        response_events.register_hook(
            runs.match_response, for_many=runs.match_responses, interested=runs.wants_responses
        )
    return container
