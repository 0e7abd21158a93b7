"""Who may talk to the server: the checks every request passes before any route sees it.

A browser page can reach a loopback server too: by DNS rebinding (a name that resolves to 127.0.0.1,
so the request carries ``Host: attacker.example``) or by a cross-site form post (``text/plain`` needs
no CORS preflight). So, as ASGI middleware in front of every route:

* without a token, the ``Host`` header must name a loopback address (``127.0.0.1``, ``[::1]``,
  ``localhost``), whatever address the socket is bound to; with a token, the token decides;
* any ``Origin`` header is refused (403): the add-on and the CLI never send one, browsers always do
  on cross-origin requests, and the server serves no pages of its own;
* a state-changing request (POST, PUT, PATCH, DELETE) needs a content type a form cannot send
  (the wire format or JSON) or the ``X-NSTR-Client`` header, which a page cannot add without a
  preflight that the Origin check refuses;
* the token, when there is one, is compared in constant time.

Starlette's own TrustedHostMiddleware is not used: it splits ``Host`` on the first ``:`` and so
cannot accept ``[::1]:PORT``, and it answers in plain text rather than our error JSON.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from typing import Any, Awaitable, Callable

from nstr.errors import NSTRError

CLIENT_HEADER = "x-nstr-client"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SAFE_CONTENT_TYPES = frozenset({"application/x-nstr-wire", "application/json"})

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """A bind address or host name that only this machine can reach."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_of(header: str) -> str:
    """The host part of a ``Host`` header: ``[::1]:8765`` -> ``::1``, ``localhost:80`` -> ``localhost``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else ""
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HTTPError(NSTRError):
    """A refusal with its answer: raised by a route or by a middleware (inside ``receive``), answered
    by the app's one error handler as ``{"error": {"status", "code", "message", "fix"}}``. An
    :class:`NSTRError` (a problem and its fix) that also carries its HTTP status and code."""

    def __init__(self, status: int, code: str, message: str, fix: str | None = None) -> None:
        super().__init__(message, fix)
        self.status, self.code, self.message = status, code, message


def error_body(status: int, code: str, message: str, fix: str | None) -> bytes:
    return json.dumps({"error": {"status": status, "code": code, "message": message, "fix": fix}}).encode()


async def send_error(send: Callable[[dict], Awaitable[None]], status: int, code: str, message: str,
                     fix: str | None, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer from a middleware, before the app runs; the connection is closed afterwards."""
    body = error_body(status, code, message, fix)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode("utf-8") if token else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for k, v in scope.get("headers", []):
            headers[k.decode("latin-1").lower()] = v.decode("latin-1")
        refusal = self.check(scope["method"], headers)
        if refusal is not None:
            await send_error(send, *refusal)
            return
        await self.app(scope, receive, send)

    def check(self, method: str, headers: dict[str, str]) -> tuple[int, str, str, str | None] | None:
        if "origin" in headers:
            return (403, "origin_refused", f"requests from web pages (Origin: {headers['origin'][:100]}) are refused",
                    "Talk to the server from the NSTR add-on, the nstr CLI or nstr.remote.BackendClient")
        if self.token is None and not is_loopback(host_of(headers.get("host", ""))):
            return (403, "host_refused", f"Host '{headers.get('host', '')[:100]}' is not a loopback name; "
                    "this server has no token, so it only answers requests addressed to this machine",
                    "Connect to http://127.0.0.1:PORT, or start the server with --token")
        if method in STATE_CHANGING:
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype not in SAFE_CONTENT_TYPES and CLIENT_HEADER not in headers:
                return (403, "csrf_refused", f"a {method} with content type '{ctype or '(none)'}' and no "
                        "X-NSTR-Client header is refused (it could come from a web form)",
                        "Send application/x-nstr-wire or application/json, or the header X-NSTR-Client: 1")
        if self.token is not None:
            auth = headers.get("authorization", "")
            given = auth[7:].strip() if auth[:7].lower() == "bearer " else headers.get("x-nstr-token", "")
            if not given:
                return (401, "token_missing", "this server needs a token",
                        "Pass --token TOKEN (printed by 'nstr serve') or set it in the add-on preferences")
            if not hmac.compare_digest(given.encode("utf-8"), self.token):
                return (401, "token_wrong", "the token is wrong",
                        "Use the token that 'nstr serve' printed when it started")
        return None
