"""REST clients bound to stored connections: tokens from the database, refresh coordinated."""

from __future__ import annotations

import httpx

from cxloop.db.uow import Database
from cxloop.domain.statuses import ConnectionStatus
from cxloop.errors import Conflict
from cxloop.salesforce import hosts
from cxloop.salesforce.client import ApiUsage, DescribeCache, SalesforceClient
from cxloop.salesforce.errors import HostNotAllowed, NeedsReauth
from cxloop.services import connections, salesforce_apps
from cxloop.settings import Settings


class ConnectionUnusable(Conflict):
    """The connection cannot make calls now (needs reauth, revoked); the message says why."""

    code = "connection_unusable"


class ConnectionTokenSource:
    """Tokens of one stored connection; refreshes go through the row lock."""

    def __init__(self, db: Database, settings: Settings, connection_id: str) -> None:
        self._db = db
        self._settings = settings
        self._current = connections.tokens_for(db, connection_id)
        if self._current.status != ConnectionStatus.ACTIVE:
            raise ConnectionUnusable(
                f"The connection is {self._current.status}: {self._current.status_reason}"
            )
        hosts.check_url(
            self._current.instance_url,
            salesforce_apps.trusted_hosts_of(db, settings),
            what="instance_url",
        )

    @property
    def instance_url(self) -> str:
        return self._current.instance_url

    @property
    def org_id(self) -> str:
        return self._current.org_id

    def access_token(self) -> str:
        return self._current.access_token

    def refresh(self, stale_token: str) -> str:
        fresh = connections.refresh_access_token(
            self._db, self._settings, self._current.connection_id, self._current.token_version
        )
        if fresh.status != ConnectionStatus.ACTIVE:
            raise NeedsReauth(fresh.status_reason or "the connection needs to be reconnected")
        self._current = fresh
        return fresh.access_token


def client_for(
    db: Database,
    settings: Settings,
    connection_id: str,
    describe_cache: DescribeCache | None = None,
    *,
    http: httpx.Client | None = None,
) -> SalesforceClient:
    """A REST client for a stored connection, recording the org's API usage as it goes
    (on `http`, a shared connection pool, when given)."""
    try:
        tokens = ConnectionTokenSource(db, settings, connection_id)
    except HostNotAllowed as exc:
        raise ConnectionUnusable(exc.message) from exc

    def on_usage(usage: ApiUsage) -> None:
        connections.record_api_usage(db, tokens.org_id, usage.used, usage.allocation)

    return SalesforceClient(
        tokens,
        api_version=settings.salesforce_api_version,
        timeout=settings.salesforce_timeout_s,
        cache_key=connection_id,
        describe_cache=describe_cache,
        on_usage=on_usage,
        http=http,
    )
