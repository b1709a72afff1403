"""cxloop's Salesforce REST client: a thin layer on httpx with typed errors.

It knows nothing of cxloop's database: a `TokenSource` hands it the current access token, and
refreshes it when Salesforce answers 401 INVALID_SESSION_ID (once per call). Every reply's
`Sforce-Limit-Info` goes to a usage callback, so the engine can slow down per org.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from cxloop.salesforce.errors import (
    InvalidSession,
    PermanentError,
    SalesforceError,
    SalesforceUnreachable,
    error_for,
    error_from_code,
)

COLLECTION_LIMIT = 200
COMPOSITE_LIMIT = 25
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")
_SAFE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")


class TokenSource(Protocol):
    """Where the client gets its access token, and how it asks for a fresh one."""

    @property
    def instance_url(self) -> str: ...

    def access_token(self) -> str: ...

    def refresh(self, stale_token: str) -> str:
        """A new access token; `stale_token` is the one Salesforce just refused."""
        ...


@dataclass(frozen=True)
class ApiUsage:
    used: int
    allocation: int

    @property
    def fraction(self) -> float:
        return self.used / self.allocation if self.allocation else 0.0


def parse_limit_info(header: str | None) -> ApiUsage | None:
    """`api-usage=18/5000` → ApiUsage(18, 5000)."""
    match = _LIMIT_INFO.search(header or "")
    return ApiUsage(int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class RecordResult:
    """One record's outcome in a Collections call (or a single write)."""

    success: bool
    id: str | None = None
    created: bool | None = None
    errors: list[SalesforceError] = field(default_factory=list)

    @property
    def error(self) -> SalesforceError | None:
        return self.errors[0] if self.errors else None


class DescribeStore(Protocol):
    """Where a process's describe cache looks after its own memory: describes other processes
    asked for (`db.describe_store`). Never raises: a store it cannot use is a miss."""

    def load(
        self, key: tuple[str, str], max_age_s: float
    ) -> tuple[float, dict[str, Any]] | None: ...

    def save(self, key: tuple[str, str], describe: dict[str, Any]) -> None: ...

    def forget(self, connection_key: str, sobject: str | None = None) -> None: ...


class DescribeCache:
    """Describe results per (connection, sObject), kept for a TTL; shared by a process's clients
    (the engine, the doctor, the checks on save), and through `store` (when given) by every
    process of the database: what one process asked Salesforce, the others read there.

    Bounded: past `max_entries` the oldest entry goes, so many connections times many objects
    cannot grow a long-running process without limit.
    """

    def __init__(
        self, ttl_s: float, max_entries: int = 1000, *, store: DescribeStore | None = None
    ) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max(1, max_entries)
        self._entries: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._store = store

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry[0] <= self._ttl_s:
            return entry[1]
        if self._store is None or self._ttl_s <= 0:
            return None
        kept = self._store.load(key, self._ttl_s)
        if kept is None:
            return None
        age, value = kept
        self._remember(key, value, time.monotonic() - age)  # it expires when the kept one does
        return value

    def put(self, key: tuple[str, str], value: dict[str, Any]) -> None:
        self._remember(key, value, time.monotonic())
        if self._store is not None and self._ttl_s > 0:
            self._store.save(key, value)

    def _remember(self, key: tuple[str, str], value: dict[str, Any], at: float) -> None:
        with self._lock:
            self._entries.pop(key, None)  # re-inserted last: the newest
            self._entries[key] = (at, value)
            while len(self._entries) > self._max_entries:
                del self._entries[next(iter(self._entries))]

    def invalidate(self, connection_key: str, sobject: str | None = None) -> None:
        """Forget one sObject's describe, or all of a connection's (here and in the store;
        other processes forget theirs when their copy expires)."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == connection_key]:
                if sobject is None or key[1].lower() == sobject.lower():
                    del self._entries[key]
        if self._store is not None:
            self._store.forget(connection_key, sobject)


class SalesforceClient:
    """REST calls for one connection."""

    def __init__(
        self,
        tokens: TokenSource,
        *,
        api_version: str = "62.0",
        timeout: float = 30.0,
        cache_key: str = "",
        describe_cache: DescribeCache | None = None,
        on_usage: Callable[[ApiUsage], None] | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self._tokens = tokens
        self.api_version = api_version
        self._http = http or httpx.Client(timeout=timeout, follow_redirects=False)
        self._owns_http = http is None
        self._cache_key = cache_key or tokens.instance_url
        self._describe_cache = DescribeCache(3600) if describe_cache is None else describe_cache
        self._on_usage = on_usage
        self.calls = 0  # API calls made, for tests, benchmarks and metrics
        self.last_usage: ApiUsage | None = None

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> SalesforceClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def base(self) -> str:
        return f"/services/data/v{self.api_version}"

    # --- the one place requests are made

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send a request, refreshing the access token once on INVALID_SESSION_ID.

        `content` and `headers` are for bodies that are not JSON (Bulk API 2.0's CSV)."""
        token = self._tokens.access_token()
        for attempt in (1, 2):
            reply = self._send(method, path, token, json, params, content, headers)
            if reply.status_code <= 300:  # 300: upsert matched several; the caller says so
                return reply
            error = error_for(reply.status_code, reply.text)
            if isinstance(error, InvalidSession) and attempt == 1:
                token = self._tokens.refresh(token)
                continue
            raise error
        raise AssertionError("unreachable")

    def _send(
        self,
        method: str,
        path: str,
        token: str,
        json: Any,
        params: dict[str, Any] | None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        url = path if path.startswith("http") else self._tokens.instance_url + path
        if not url.startswith(self._tokens.instance_url + "/"):
            raise PermanentError(f"refusing to send a token outside the instance: {url}")
        self.calls += 1
        try:
            reply = self._http.request(
                method,
                url,
                json=json,
                params=params,
                content=content,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/json",
                    **(headers or {}),
                },
            )
        except httpx.TimeoutException as exc:
            raise SalesforceUnreachable(f"Salesforce did not answer in time ({exc}).") from exc
        except httpx.HTTPError as exc:
            raise SalesforceUnreachable(f"Salesforce could not be reached ({exc}).") from exc
        usage = parse_limit_info(reply.headers.get("sforce-limit-info"))
        if usage is not None:
            self.last_usage = usage
            if self._on_usage is not None:
                self._on_usage(usage)
        return reply

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = self.request(method, path, **kwargs)
        if reply.status_code == 204 or not reply.content:
            return None
        try:
            return reply.json()
        except ValueError as exc:
            raise SalesforceUnreachable("Salesforce answered something that is not JSON.") from exc

    # --- metadata

    def versions(self) -> list[dict[str, Any]]:
        return self._json("GET", "/services/data/")

    def limits(self) -> dict[str, Any]:
        return self._json("GET", f"{self.base}/limits/")

    def describe_global(self) -> dict[str, Any]:
        return self._json("GET", f"{self.base}/sobjects/")

    def describe(self, sobject: str, *, fresh: bool = False) -> dict[str, Any]:
        """An sObject's describe, from the cache unless `fresh`."""
        key = (self._cache_key, sobject.lower())
        if not fresh:
            cached = self._describe_cache.get(key)
            if cached is not None:
                return cached
        result = self._json("GET", f"{self.base}/sobjects/{_name(sobject)}/describe/")
        self._describe_cache.put(key, result)
        return result

    def has_cached_describe(self, sobject: str) -> bool:
        """Whether `describe(sobject)` would come from the cache."""
        return self._describe_cache.get((self._cache_key, sobject.lower())) is not None

    def invalidate_describe(self, sobject: str | None = None) -> None:
        self._describe_cache.invalidate(self._cache_key, sobject)

    # --- single records

    def get(self, sobject: str, record_id: str, fields: Sequence[str] = ()) -> dict[str, Any]:
        params = {"fields": ",".join(_name(f) for f in fields)} if fields else None
        return self._json(
            "GET", f"{self.base}/sobjects/{_name(sobject)}/{quote(record_id)}", params=params
        )

    def create(self, sobject: str, record: dict[str, Any]) -> str:
        return self._json("POST", f"{self.base}/sobjects/{_name(sobject)}/", json=record)["id"]

    def update(self, sobject: str, record_id: str, record: dict[str, Any]) -> None:
        self._json(
            "PATCH", f"{self.base}/sobjects/{_name(sobject)}/{quote(record_id)}", json=record
        )

    def delete(self, sobject: str, record_id: str) -> None:
        self._json("DELETE", f"{self.base}/sobjects/{_name(sobject)}/{quote(record_id)}")

    def upsert(
        self, sobject: str, external_id_field: str, value: str, record: dict[str, Any]
    ) -> RecordResult:
        """Upsert on an external id: created (201) or updated (200); 300 is an error."""
        path = f"{self.base}/sobjects/{_name(sobject)}/{_name(external_id_field)}/{quote(value)}"
        reply = self.request("PATCH", path, json=record)
        if reply.status_code == 300:
            raise PermanentError(
                f"Several {sobject} records have {external_id_field} = {value!r}; Salesforce "
                "cannot tell which to update.",
                status=300,
                error_code="MULTIPLE_CHOICES",
            )
        body = reply.json() if reply.content else {}
        return RecordResult(
            success=True, id=body.get("id"), created=body.get("created", reply.status_code == 201)
        )

    # --- queries

    def query(self, soql: str) -> dict[str, Any]:
        """One page of a SOQL query."""
        return self._json("GET", f"{self.base}/query/", params={"q": soql})

    def query_all(self, soql: str) -> Iterator[dict[str, Any]]:
        """Every record of a SOQL query, following nextRecordsUrl page by page."""
        page = self.query(soql)
        while True:
            yield from page.get("records", [])
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            page = self._json("GET", next_url)

    # --- sObject Collections: up to 200 records a call, one result per record

    def collection_create(
        self, records: Sequence[dict[str, Any]], *, all_or_none: bool = False
    ) -> list[RecordResult]:
        """Insert records (each with `attributes.type`)."""
        return self._collection("POST", f"{self.base}/composite/sobjects", records, all_or_none)

    def collection_update(
        self, records: Sequence[dict[str, Any]], *, all_or_none: bool = False
    ) -> list[RecordResult]:
        """Update records (each with `attributes.type` and `Id`)."""
        return self._collection("PATCH", f"{self.base}/composite/sobjects", records, all_or_none)

    def collection_upsert(
        self,
        sobject: str,
        external_id_field: str,
        records: Sequence[dict[str, Any]],
        *,
        all_or_none: bool = False,
    ) -> list[RecordResult]:
        """Upsert records on an external id field (each with `attributes.type`)."""
        path = f"{self.base}/composite/sobjects/{_name(sobject)}/{_name(external_id_field)}"
        return self._collection("PATCH", path, records, all_or_none)

    def _collection(
        self, method: str, path: str, records: Sequence[dict[str, Any]], all_or_none: bool
    ) -> list[RecordResult]:
        _check_batch(records)
        body = {"allOrNone": all_or_none, "records": list(records)}
        return _results(self._json(method, path, json=body))

    def collection_delete(
        self, ids: Sequence[str], *, all_or_none: bool = False
    ) -> list[RecordResult]:
        _check_batch(ids)
        params = {"ids": ",".join(ids), "allOrNone": str(all_or_none).lower()}
        return _results(self._json("DELETE", f"{self.base}/composite/sobjects", params=params))

    def composite(
        self, subrequests: Sequence[dict[str, Any]], *, all_or_none: bool = False
    ) -> list[dict[str, Any]]:
        """A Composite request (up to 25 subrequests, `@{ref.id}` references)."""
        if not 1 <= len(subrequests) <= COMPOSITE_LIMIT:
            raise PermanentError(f"a Composite request takes 1 to {COMPOSITE_LIMIT} subrequests")
        body = {"allOrNone": all_or_none, "compositeRequest": list(subrequests)}
        return self._json("POST", f"{self.base}/composite", json=body)["compositeResponse"]


def checked_name(name: str) -> str:
    """An sObject or field API name, checked so it cannot smuggle a path into the URL."""
    return _name(name)


def _name(name: str) -> str:
    """An sObject or field API name, checked so it cannot smuggle a path into the URL."""
    if not _SAFE_NAME.match(name):
        raise PermanentError(f"{name!r} is not a Salesforce API name.", error_code="INVALID_TYPE")
    return name


def _check_batch(items: Sequence[Any]) -> None:
    if not 1 <= len(items) <= COLLECTION_LIMIT:
        raise PermanentError(
            f"an sObject Collections call takes 1 to {COLLECTION_LIMIT} records, not {len(items)}"
        )


def _results(body: Any) -> list[RecordResult]:
    results = []
    for item in body or []:
        errors = [
            error_from_code(
                str(e.get("statusCode") or e.get("errorCode") or ""),
                str(e.get("message") or ""),
                fields=[str(f) for f in e.get("fields") or []],
            )
            for e in item.get("errors") or []
        ]
        results.append(
            RecordResult(
                success=bool(item.get("success")),
                id=item.get("id"),
                created=item.get("created"),
                errors=errors,
            )
        )
    return results
