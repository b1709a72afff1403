"""A lean HTTP/1.1 load generator for the benchmarks: N concurrent keep-alive clients on asyncio.

httpx in client threads costs about as much CPU per request as the server spends on it, and the
benchmarks run client and server on the same two cores: measured that way, the server would be
charged for the client. This client writes each request as bytes on a raw keep-alive connection
and reads the reply by its Content-Length, a few tens of microseconds per request. Its event
loop is uvloop's (installed with uvicorn) where there is one: the same requests on the wire, for
half the client's CPU (86-111 µs a request with asyncio's loop, 49-55 with uvloop's), which the
server would otherwise miss.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    """What the clients saw: latency of every accepted request, and the other statuses."""

    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    bodies: list[bytes] = field(default_factory=list)


async def _client(
    host: str,
    port: int,
    request_for: Callable[[int], bytes],
    numbers: Any,
    stop_at: float,
    ok_status: bytes,
    result: LoadResult,
    keep_bodies: bool,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for n in numbers:
            if time.monotonic() >= stop_at:
                break
            request = request_for(n)
            began = time.perf_counter()
            writer.write(request)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                result.errors["closed"] = result.errors.get("closed", 0) + 1
                break
            status = head[9:12]
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            elapsed = time.perf_counter() - began
            if status == ok_status:
                result.latencies.append(elapsed)
                if keep_bodies:
                    result.bodies.append(body)
            else:
                key = status.decode()
                result.errors[key] = result.errors.get(key, 0) + 1
    finally:
        writer.close()


def post_json_requests(
    base_url: str, path: str, headers: dict[str, str], body_for: Callable[[int], Any]
) -> Callable[[int], bytes]:
    """A function making the raw bytes of `POST path` with the JSON body `body_for(n)`."""
    host = urlsplit(base_url).netloc
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())

    def request_for(n: int) -> bytes:
        body = json.dumps(body_for(n)).encode()
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body

    return request_for


def run_load(
    base_url: str,
    request_for: Callable[[int], bytes],
    *,
    clients: int,
    seconds: float | None = None,
    total: int | None = None,
    ok_status: int = 201,
    keep_bodies: bool = False,
) -> LoadResult:
    """Run `clients` concurrent keep-alive connections sending `request_for(n)`, n = 0, 1, ...

    Stops after `seconds`, or once `total` requests are sent (shared among the clients).
    """
    parts = urlsplit(base_url)
    result = LoadResult()
    counter = iter(range(total)) if total is not None else itertools.count()
    stop_at = time.monotonic() + (seconds if seconds is not None else 1e9)

    host, port, ok = parts.hostname or "127.0.0.1", parts.port or 80, str(ok_status).encode()

    async def main() -> None:
        began = time.monotonic()
        await asyncio.gather(
            *(
                _client(host, port, request_for, counter, stop_at, ok, result, keep_bodies)
                for _ in range(clients)
            )
        )
        result.seconds = time.monotonic() - began

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main())
    return result


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (it is, with uvicorn); else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
