"""A request-head deadline for uvicorn's h11 protocol: the slow-loris guard uvicorn lacks.

uvicorn times out idle keep-alive connections and (through our guard middleware) stalled bodies, but
a client that opens a connection and sends its request line and headers a byte at a time holds it
forever. With ``limit_concurrency`` that caps the damage at 64 connections, yet those 64 lock
everyone else out with 503s. Here every connection must finish its request head within
``timeout`` seconds of arriving (or of the previous response), or it is closed.
"""

from __future__ import annotations

import asyncio
import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def protocol_with_header_timeout(timeout: float) -> type[H11Protocol]:
    """An :class:`H11Protocol` subclass whose request heads must arrive within ``timeout`` seconds."""

    class HeaderTimeoutH11(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head_timer: asyncio.TimerHandle | None = None
            self._arm_head_timer()

        def _arm_head_timer(self) -> None:
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(timeout, self._head_timed_out)

        def _cancel_head_timer(self) -> None:
            timer = getattr(self, "_head_timer", None)
            if timer is not None:
                timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            # still waiting for (the rest of) a request line and headers: give the connection up
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the head is complete: the body has its own limit
                self._cancel_head_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_head_timer()  # the next request on this keep-alive connection

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

    return HeaderTimeoutH11

