"""Every request body passes here: one size limit, a minimum rate, a whole-request deadline, and a
fair share of the upload slots, whatever route reads it.

What closed slow bodies before this module: nothing. The request-head deadline
(:mod:`nstr.server.header_timeout`) ends once the head is complete, the old per-chunk timeout (30 s)
restarted with every byte, and ``POST /v1/prune`` read its body with no timeout at all, so a client
trickling one byte a second held its connection for as long as it liked, and 63 of them held
uvicorn's connection cap: every other request, health included, got 503. Now:

* **size**: a declared ``Content-Length`` over ``--max-body-mb`` is refused before anything is read
  (413), and so is a body that grows past it while streaming; routes that take JSON read through
  :func:`body_chunks` with their own smaller limit;
* **rate and deadline**: from the moment its head is in, a body must keep an average of at least
  ``--min-body-rate`` (after a grace of ``grace_s``) and end within ``--request-timeout``; an offender
  is cut off with 408, counted, and named in the server's log;
* **fair share**: at most ``uploads`` bodies are received at once, at most ``uploads_per_client``
  from one client address; a body beyond its share waits up to ``wait_s`` for a slot, then gets 429
  (its client's share is taken) or 503 (all slots are). Bodies never hold more than ``uploads`` of
  the server's connections, so health and the job list always find one.

Requests without a body pass straight through.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from nstr.server.guard import HTTPError, send_error

KIB = 1024
MIB = 2**20


@dataclass(frozen=True)
class BodyLimits:
    max_body: int  # bytes, every route (--max-body-mb)
    request_timeout_s: float = 300.0  # head in -> last body byte (--request-timeout)
    min_rate: float = 64 * KIB  # bytes/s averaged since the head arrived, after the grace (--min-body-rate)
    grace_s: float = 5.0
    uploads: int = 64  # bodies received at once
    uploads_per_client: int = 32
    wait_s: float = 5.0  # a body beyond its share waits this long for a slot


@dataclass
class RequestStats:
    """What the guards refused or cut, for health (``requests``) and the log."""

    say: Callable[[str], None] = print
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("cut_slow", "cut_deadline", "too_large", "refused_busy", "refused_client_share", "refused_connections"), 0))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, kind: str, line: str | None = None) -> int:
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            n = self.counts[kind]
        if line is not None:
            self.say(f"{line} [{kind}: {n} so far]")
        return n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


def declared_length(scope: dict) -> int | None:
    for k, v in scope.get("headers", []):
        if k.lower() == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


def has_body(scope: dict) -> bool:
    length = declared_length(scope)
    if length is not None:
        return length > 0
    return any(k.lower() == b"transfer-encoding" and b"chunked" in v.lower() for k, v in scope.get("headers", []))


def too_large(size: int, limit: int, at_least: bool = False) -> HTTPError:
    return HTTPError(413, "body_too_large",
                     f"the request body is {'over ' if at_least else ''}{size / MIB:.1f} MiB; this server accepts "
                     f"at most {limit / MIB:.1f} MiB here",
                     "Decimate the mesh, or restart the server with a larger --max-body-mb")


class BodyGuard:
    """ASGI middleware enforcing :class:`BodyLimits` on every request that has a body."""

    def __init__(self, app: Any, limits: BodyLimits, stats: RequestStats) -> None:
        self.app = app
        self.limits = limits
        self.stats = stats
        self._total = 0
        self._by_client: dict[str, int] = {}
        self._freed: asyncio.Condition | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not has_body(scope):
            await self.app(scope, receive, send)
            return
        lim = self.limits
        length = declared_length(scope)
        if length is not None and length > lim.max_body:
            self.stats.count("too_large")
            err = too_large(length, lim.max_body)
            await send_error(send, err.status, err.code, err.message, err.fix)
            return
        client = (scope.get("client") or ("?", 0))[0]
        refusal = await self._take_slot(client)
        if refusal is not None:
            await send_error(send, *refusal, headers=[(b"retry-after", b"2")])
            return
        try:
            await self.app(scope, self._limited(scope, receive, client), send)
        finally:
            await self._give_slot(client)

    def _limited(self, scope: dict, receive: Any, client: str) -> Callable[[], Any]:
        """``receive`` with the size limit, the minimum rate and the whole-request deadline."""
        lim = self.limits
        loop = asyncio.get_running_loop()
        start = loop.time()
        received = 0
        what = f"{scope.get('method', '?')} {scope.get('path', '?')} from {client}"

        async def limited_receive() -> dict:
            nonlocal received
            by_rate = start + lim.grace_s + received / lim.min_rate
            by_deadline = start + lim.request_timeout_s
            try:
                message = await asyncio.wait_for(receive(), max(0.0, min(by_rate, by_deadline) - loop.time()))
            except asyncio.TimeoutError:
                elapsed = loop.time() - start
                if by_deadline <= by_rate:
                    self.stats.count("cut_deadline", f"cut off {what}: the request took over {lim.request_timeout_s:g} s "
                                                     f"({received} body bytes in); answered 408")
                    raise HTTPError(408, "request_timeout",
                                    f"the request took longer than {lim.request_timeout_s:g} s ({received} bytes of its "
                                    "body had arrived)", "Send it faster, or restart the server with a larger "
                                    "--request-timeout; submit again with the same Idempotency-Key") from None
                rate = received / max(elapsed, 1e-9)
                self.stats.count("cut_slow", f"cut off {what}: its body came at {rate:.0f} B/s ({received} bytes in "
                                             f"{elapsed:.1f} s), below {lim.min_rate / KIB:g} KiB/s; answered 408")
                raise HTTPError(408, "body_too_slow",
                                f"the request body arrived at {rate:.0f} bytes/s, below this server's minimum of "
                                f"{lim.min_rate / KIB:g} KiB/s", "Check the connection and submit again (with the "
                                "same Idempotency-Key), or restart the server with a lower --min-body-rate") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > lim.max_body:
                    self.stats.count("too_large")
                    raise too_large(received, lim.max_body, at_least=True)
            return message

        return limited_receive

    async def _take_slot(self, client: str) -> tuple[int, str, str, str] | None:
        """A slot for one more body, waiting up to ``wait_s``; else the refusal to answer."""
        lim = self.limits
        if self._freed is None:
            self._freed = asyncio.Condition()
        deadline = asyncio.get_running_loop().time() + lim.wait_s
        async with self._freed:
            while self._total >= lim.uploads or self._by_client.get(client, 0) >= lim.uploads_per_client:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(self._freed.wait(), remaining)
                except asyncio.TimeoutError:
                    pass
            else:
                self._total += 1
                self._by_client[client] = self._by_client.get(client, 0) + 1
                return None
        if self._total >= lim.uploads:
            self.stats.count("refused_busy")
            return (503, "uploads_busy", f"the server is receiving {lim.uploads} request bodies already",
                    "Retry in a few seconds")
        self.stats.count("refused_client_share")
        return (429, "too_many_uploads", f"this client ({client}) is sending {lim.uploads_per_client} request bodies "
                f"already, its share of the server's {lim.uploads}", "Send fewer at once, or retry in a few seconds")

    async def _give_slot(self, client: str) -> None:
        assert self._freed is not None
        async with self._freed:
            self._total -= 1
            left = self._by_client.get(client, 1) - 1
            if left:
                self._by_client[client] = left
            else:
                self._by_client.pop(client, None)
            self._freed.notify_all()


async def body_chunks(request: Any, limit: int) -> AsyncIterator[bytes]:
    """A route's body, chunk by chunk, at most ``limit`` bytes (413 on the declared length or while
    streaming). The :class:`BodyGuard` in front has already bounded its rate and its deadline."""
    length = declared_length(request.scope)
    if length is not None and length > limit:
        raise too_large(length, limit)
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise HTTPError(400, "disconnected", "the client went away during the upload")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(size, limit, at_least=True)
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
