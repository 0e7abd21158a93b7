"""Connection-level guards for uvicorn's h11 protocol: a request-head deadline and a per-client
connection cap, the slow-loris defences uvicorn lacks.

uvicorn times out idle keep-alive connections, and :mod:`nstr.server.bodies` bounds request bodies,
but a client that opens a connection and sends its request line and headers a byte at a time holds
it forever. Here every connection must finish its request head within ``timeout`` seconds of
arriving (or of the previous response), or it is closed. And one client address may hold at most
``per_client`` connections at once (the rest are answered 503 and closed at once), so a few clients
cannot take uvicorn's whole connection cap (``limit_concurrency``) from everyone else.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from nstr.server.guard import error_body


def protocol_with_header_timeout(timeout: float, per_client: int | None = None, stats: Any = None) -> type[H11Protocol]:
    """An :class:`H11Protocol` subclass whose request heads must arrive within ``timeout`` seconds and
    whose clients may each hold ``per_client`` connections; refusals are counted in ``stats``."""
    open_by_client: dict[str, int] = {}

    class HeaderTimeoutH11(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head_timer: asyncio.TimerHandle | None = None
            peer = transport.get_extra_info("peername")
            self._peer: str | None = str(peer[0]) if peer else None
            if per_client is not None and self._peer is not None and open_by_client.get(self._peer, 0) >= per_client:
                self._peer = None  # not counted: refused
                self._refuse(transport)
                return
            if self._peer is not None:
                open_by_client[self._peer] = open_by_client.get(self._peer, 0) + 1
            self._arm_head_timer()

        def _refuse(self, transport: asyncio.Transport) -> None:
            body = error_body(503, "too_many_connections", f"this client has {per_client} connections open already",
                              "Close idle connections, or retry in a few seconds")
            transport.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
                            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            transport.close()
            if stats is not None:
                stats.count("refused_connections")

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
            if self.transport.is_closing():
                return
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the head is complete: the body has its own limits
                self._cancel_head_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_head_timer()  # the next request on this keep-alive connection

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            peer = getattr(self, "_peer", None)
            if peer is not None:
                left = open_by_client.get(peer, 1) - 1
                if left:
                    open_by_client[peer] = left
                else:
                    open_by_client.pop(peer, None)
                self._peer = None
            super().connection_lost(exc)

    return HeaderTimeoutH11
