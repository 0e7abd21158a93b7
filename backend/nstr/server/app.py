"""The HTTP layer: routing, token check, body limits, and turning errors into 4xx answers.

Built on the standard library's ``ThreadingHTTPServer``: the backend needs no web framework,
the body-size limit and the constant-time token check are explicit code here rather than
framework settings, and every bad request is answered by one function (:meth:`Handler._fail`)
with ``{"error": {"status", "code", "message", "fix"}}``. Request threads only validate and
enqueue; the fitting happens in the single worker of :mod:`nstr.server.worker`.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import shutil
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from nstr import __version__
from nstr.errors import NSTRError
from nstr.remote import wire
from nstr.server import device_info, schema
from nstr.server.worker import JobConflict, JobNotFound, JobQueue

API = "v1"
DRAIN_LIMIT = 2 << 30  # an oversized body up to this size is read and discarded so the client sees the 413


class HTTPError(Exception):
    def __init__(self, status: int, code: str, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fix = status, code, message, fix


class FittingServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many clients submitting at once must not see refused connections

    def __init__(self, address: tuple[str, int], jobs: JobQueue, token: str | None, max_body: int) -> None:
        super().__init__(address, Handler)
        self.jobs = jobs
        self.token = token.encode("utf-8") if token else None
        self.max_body = max_body
        self.openapi = schema.openapi(jobs.registry.available())

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}"


Route = tuple[str, "re.Pattern[str]", str]
ROUTES: list[Route] = [
    ("GET", re.compile(r"^/v1/health$"), "health"),
    ("GET", re.compile(r"^/v1/openapi\.json$"), "openapi"),
    ("GET", re.compile(r"^/v1/jobs$"), "list_jobs"),
    ("POST", re.compile(r"^/v1/jobs$"), "submit"),
    ("GET", re.compile(r"^/v1/jobs/([^/]+)$"), "status"),
    ("DELETE", re.compile(r"^/v1/jobs/([^/]+)$"), "delete"),
    ("GET", re.compile(r"^/v1/jobs/([^/]+)/result$"), "result"),
    ("GET", re.compile(r"^/v1/jobs/([^/]+)/log$"), "log"),
    ("POST", re.compile(r"^/v1/jobs/([^/]+)/cancel$"), "cancel"),
    ("POST", re.compile(r"^/v1/jobs/([^/]+)/resubmit$"), "resubmit"),
    ("POST", re.compile(r"^/v1/release-gpu$"), "release_gpu"),
]


class Handler(BaseHTTPRequestHandler):
    server: FittingServer
    server_version = f"nstr/{__version__}"
    protocol_version = "HTTP/1.1"
    timeout = 120  # seconds of silence before a half-sent request is dropped

    # ------------------------------------------------------------- dispatch
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        self._body_read = False
        self.close_connection = True  # one request per connection: simple and robust under load
        try:
            self._check_token()
            path = self.path.split("?", 1)[0]
            allowed = []
            for route_method, pattern, name in ROUTES:
                m = pattern.match(path)
                if m:
                    if route_method == method:
                        getattr(self, "_" + name)(*m.groups())
                        return
                    allowed.append(route_method)
            if allowed:
                raise HTTPError(405, "method_not_allowed", f"{method} is not allowed on {path}",
                                "Use " + " or ".join(allowed))
            raise HTTPError(404, "not_found", f"there is no endpoint {path}",
                            f"See GET /{API}/openapi.json for the API")
        except HTTPError as err:
            self._fail(err.status, err.code, err.message, err.fix)
        except JobNotFound as err:
            self._fail(404, "job_not_found", f"there is no job {err.args[0]!r} on this server",
                       f"List the jobs with GET /{API}/jobs (or 'nstr jobs')")
        except JobConflict as err:
            self._fail(409, "conflict", str(err), err.fix)
        except wire.WireError as err:
            self._fail(400, "bad_body", err.problem, err.fix)
        except NSTRError as err:
            self._fail(400, "bad_input", err.problem, err.fix)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
        except Exception as err:  # never let one request take the server down
            self.log_error("internal error on %s %s: %r", method, self.path, err)
            self._fail(500, "internal", f"internal server error ({type(err).__name__}: {err})".splitlines()[0],
                       "See the server's log; other requests are unaffected")

    # --------------------------------------------------------------- checks
    def _check_token(self) -> None:
        expected = self.server.token
        if expected is None:
            return
        header = self.headers.get("Authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else self.headers.get("X-NSTR-Token", "")
        if not given:
            raise HTTPError(401, "token_missing", "this server needs a token",
                            "Pass --token TOKEN (printed by 'nstr serve') or set it in the add-on preferences")
        if not hmac.compare_digest(given.encode("utf-8"), expected):
            raise HTTPError(401, "token_wrong", "the token is wrong",
                            "Use the token that 'nstr serve' printed when it started")

    def _read_body(self) -> bytes:
        length_text = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise HTTPError(411, "length_required", "chunked request bodies are not accepted",
                            "Send a Content-Length header")
        if length_text is None:
            raise HTTPError(411, "length_required", "the request has no Content-Length", "Send a Content-Length header")
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError
        except ValueError:
            raise HTTPError(400, "bad_length", f"Content-Length {length_text!r} is not a byte count") from None
        if length > self.server.max_body:
            raise HTTPError(413, "body_too_large",
                            f"the request body is {length / 2**20:.1f} MiB; this server accepts at most "
                            f"{self.server.max_body / 2**20:.1f} MiB",
                            "Decimate the mesh, or restart the server with a larger --max-body-mb")
        data = self.rfile.read(length)
        self._body_read = True
        if len(data) != length:
            raise HTTPError(400, "short_body", f"the body ended after {len(data)} of {length} bytes",
                            "Send the whole request")
        return data

    # ------------------------------------------------------------ responses
    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload, allow_nan=False).encode("utf-8"), "application/json")

    def _fail(self, status: int, code: str, message: str, fix: str | None = None) -> None:
        body = {"error": {"status": status, "code": code, "message": message, "fix": fix}}
        try:
            self._json(status, body)
            self.wfile.flush()
            self._discard_unread_body()
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            pass

    def _discard_unread_body(self) -> None:
        """After an early error answer, read what the client is still sending (up to a limit), so closing
        the socket does not reset the connection before the client has read the answer."""
        if self._body_read:
            return
        try:
            remaining = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        if remaining <= 0:
            return
        self.connection.shutdown(socket.SHUT_WR)
        self.connection.settimeout(10)
        remaining = min(remaining, DRAIN_LIMIT)
        while remaining > 0:
            chunk = self.rfile.read1(min(remaining, 1 << 20)) if hasattr(self.rfile, "read1") else \
                self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # status polls would drown the log; everything else (and every error) is logged
        if self.command == "GET" and str(code).startswith("2"):
            return
        super().log_request(code, size)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{time.strftime('%H:%M:%S')} {self.address_string()} {format % args}\n")

    # ------------------------------------------------------------- handlers
    def _health(self) -> None:
        jobs = self.server.jobs
        self._json(200, {"version": __version__, "api": API, **device_info.describe(jobs.device),
                         "queue_length": jobs.queue_length(), "tasks": jobs.registry.available(),
                         "max_body_bytes": self.server.max_body, "auth": self.server.token is not None})

    def _openapi(self) -> None:
        self._json(200, self.server.openapi)

    def _list_jobs(self) -> None:
        self._json(200, {"jobs": self.server.jobs.list()})

    def _submit(self) -> None:
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype not in (wire.CONTENT_TYPE, "application/json"):
            self._read_body()  # still enforce the size limit first
            raise HTTPError(415, "unsupported_media_type", f"Content-Type {ctype or '(none)'} is not accepted",
                            f"Send {wire.CONTENT_TYPE} (nstr.remote.wire) or application/json")
        body = self._read_body()
        if ctype == "application/json":
            try:
                meta, arrays = json.loads(body.decode("utf-8")), {}
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise HTTPError(400, "bad_body", f"the body is not valid JSON ({err})") from None
            if not isinstance(meta, dict):
                raise HTTPError(400, "bad_body", "the body must be a JSON object with 'task' and 'config'")
        else:
            meta, arrays = wire.decode(body)
        unknown = sorted(set(meta) - {"task", "config"})
        if unknown:
            raise HTTPError(400, "bad_body", f"unknown request field(s): {', '.join(unknown)}",
                            "A submission has only 'task' and 'config'; data goes in the arrays")
        if "task" not in meta:
            raise HTTPError(400, "bad_body", "the request names no task",
                            "Set 'task' to one of: " + ", ".join(self.server.jobs.registry.available()))
        job = self.server.jobs.submit(meta["task"], meta.get("config", {}), arrays)
        self._json(201, self.server.jobs.status(job.id))

    def _status(self, job_id: str) -> None:
        self._json(200, self.server.jobs.status(job_id))

    def _delete(self, job_id: str) -> None:
        self.server.jobs.delete(job_id)
        self._json(200, {"id": job_id, "deleted": True})

    def _result(self, job_id: str) -> None:
        path = self.server.jobs.result_path(job_id)
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", wire.CONTENT_TYPE)
            self.send_header("Content-Length", str(size))
            self.send_header("Connection", "close")
            self.end_headers()
            shutil.copyfileobj(fh, self.wfile, 1 << 20)

    def _log(self, job_id: str) -> None:
        self._send(200, self.server.jobs.log(job_id).encode("utf-8"), "text/plain; charset=utf-8")

    def _cancel(self, job_id: str) -> None:
        self._json(200, self.server.jobs.cancel(job_id))

    def _resubmit(self, job_id: str) -> None:
        job = self.server.jobs.resubmit(job_id)
        self._json(201, self.server.jobs.status(job.id))

    def _release_gpu(self) -> None:
        self._json(200, self.server.jobs.release_gpu())

