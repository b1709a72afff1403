"""uvicorn's HTTP/1.1 protocol with a deadline for a request's headers.

uvicorn closes a connection that stays idle between requests (`timeout_keep_alive`) but not one
that sends its headers a byte at a time: a handful of such clients would hold every connection
open for ever. This protocol gives the headers of each request `CXLOOP_REQUEST_READ_TIMEOUT_S`
seconds (the `request_read_timeout_s` setting, which `cxloop serve` puts in the environment of
its server processes) from the moment the connection opens or the previous answer is sent;
then it closes the connection. A slow body is `RequestReadTimeoutMiddleware`'s business.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

READ_TIMEOUT_ENV = "CXLOOP_REQUEST_READ_TIMEOUT_S"
DEFAULT_READ_TIMEOUT_S = 30.0


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that closes a connection whose request headers are late."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = float(os.environ.get(READ_TIMEOUT_ENV, DEFAULT_READ_TIMEOUT_S))
        self.header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request's headers get the same time

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self.header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
            self.header_deadline = None

    def _headers_late(self) -> None:
        self.header_deadline = None
        busy = self.pipeline or (self.cycle is not None and not self.cycle.response_complete)
        if not busy and not self.transport.is_closing():
            self.transport.close()
