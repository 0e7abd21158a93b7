"""The HTTP client of the fitting server, standard library only (runs inside Blender's Python).

Every failure is one of three exceptions whose ``str()`` is a single line a panel can show:
:class:`BackendUnreachable` (nothing answers), :class:`AuthError` (wrong or missing token) and
:class:`BackendError` (the server refused or failed the request; ``.status``, ``.message``, ``.fix``).

``http.client`` is used directly rather than ``urllib``: no proxy environment variables can
reroute a loopback request, and each call opens its own connection, so one client may be
shared between threads (the add-on polls while the user submits).
"""

from __future__ import annotations

import gzip
import http.client
import json
import secrets
import socket
import time
from typing import Any, Callable, Mapping
from urllib.parse import quote, urlsplit

from . import wire
from .wire import Array

API = "v1"


class RemoteError(Exception):
    """Base of the client's errors: a one-line problem and a fix."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem.rstrip(".")
        self.fix = fix
        super().__init__(self.problem + (f". {fix}" if fix else ""))


class BackendUnreachable(RemoteError):
    """No answer: connection refused, DNS failure, timeout."""


class BackendError(RemoteError):
    """The server answered with an error (4xx/5xx)."""

    def __init__(self, status: int, message: str, fix: str | None = None, code: str | None = None) -> None:
        self.status = status
        self.message = message
        self.code = code
        super().__init__(message, fix)


class AuthError(BackendError):
    """The token is missing or wrong (401/403)."""


class BackendClient:
    """Talks to ``nstr serve`` at ``url``. Thread-safe: one connection per request."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 10.0) -> None:
        try:
            parts = urlsplit(url.strip() if isinstance(url, str) else "")
            parts.hostname  # noqa: B018 - raises on a malformed IPv6 literal such as 'http://[::1'
        except ValueError as err:
            raise RemoteError(f"'{url}' is not a server URL ({err})",
                              "Use http://HOST:PORT, e.g. http://127.0.0.1:8765 or http://[::1]:8765") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteError(f"'{url}' is not a server URL", "Use http://HOST:PORT, e.g. http://127.0.0.1:8765")
        try:
            port = parts.port
        except ValueError:
            raise RemoteError(f"'{url}' has an invalid port", "Use http://HOST:PORT with a port from 1 to 65535") from None
        self.url = f"{parts.scheme}://{parts.netloc}".rstrip("/")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = port
        self._prefix = parts.path.rstrip("/")
        self.token = token or None
        self.timeout = float(timeout)

    # ------------------------------------------------------------------ API
    def health(self) -> dict[str, Any]:
        return self._json("GET", "/health")

    def openapi(self) -> dict[str, Any]:
        return self._json("GET", "/openapi.json")

    def submit(self, task: str, config: Mapping[str, Any], arrays: Mapping[str, Any],
               idempotency_key: str | None = None, retries: int = 2) -> str:
        """Queue a job; returns its id. ``arrays`` holds numpy arrays or :class:`Array` values.

        The request carries an idempotency key (a fresh random one unless given): when the answer is
        lost (a timeout, a dropped connection) the upload is retried with the same key, and the server
        returns the job the first attempt made instead of queueing a second one."""
        body = wire.encode_parts({"task": task, "config": dict(config)}, arrays)
        key = idempotency_key or secrets.token_urlsafe(18)
        for attempt in range(retries + 1):
            try:
                return str(self._json("POST", "/jobs", body=body, content_type=wire.CONTENT_TYPE,
                                      headers={"Idempotency-Key": key})["id"])
            except BackendUnreachable:
                if attempt == retries:
                    raise
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    def status(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/jobs/{_seg(job_id)}")

    def jobs(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/jobs")["jobs"])

    def result(self, job_id: str) -> tuple[dict[str, Any], dict[str, Array]]:
        """(meta from ``meta_json``, arrays) of a finished job."""
        status, headers, data = self._request("GET", f"/jobs/{_seg(job_id)}/result", timeout=max(self.timeout, 60.0))
        meta, arrays = wire.decode(data)
        if "meta_json" in arrays:
            try:
                meta = json.loads(bytes(arrays["meta_json"].data).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                pass  # keep the header's meta; the arrays are still good
        return meta, arrays

    def log(self, job_id: str) -> str:
        return self._request("GET", f"/jobs/{_seg(job_id)}/log")[2].decode("utf-8", "replace")

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/jobs/{_seg(job_id)}/cancel")

    def resubmit(self, job_id: str) -> str:
        """Queue a finished (failed, cancelled or done) job again with its stored inputs; returns the new id."""
        return str(self._json("POST", f"/jobs/{_seg(job_id)}/resubmit")["id"])

    def delete(self, job_id: str) -> None:
        """Remove a finished job and its files from the server."""
        self._json("DELETE", f"/jobs/{_seg(job_id)}")

    def release_gpu(self) -> dict[str, Any]:
        return self._json("POST", "/release-gpu")

    def prune(self, max_age_days: float | None = None, max_total_gb: float | None = None) -> dict[str, Any]:
        """Remove finished jobs by the server's retention policy, or by these limits; returns what went."""
        limits = {k: v for k, v in (("max_age_days", max_age_days), ("max_total_gb", max_total_gb)) if v is not None}
        return self._json("POST", "/prune", body=json.dumps(limits).encode(), content_type="application/json")

    def capture(self, dataset_dir: str) -> dict[str, Any]:
        """A capture folder's cameras and suggested box, read by the server (``POST /capture``): the folder
        is the server's path and must lie inside one of its data roots."""
        return self._json("POST", "/capture", body=json.dumps({"dataset_dir": dataset_dir}).encode(),
                          content_type="application/json")

    def wait(self, job_id: str, *, poll: float = 0.5, timeout: float | None = None,
             on_status: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Poll until the job is done, failed or cancelled; returns its last status."""
        start = time.monotonic()
        while True:
            st = self.status(job_id)
            if on_status is not None:
                on_status(st)
            if st["state"] in ("done", "failed", "cancelled"):
                return st
            if timeout is not None and time.monotonic() - start > timeout:
                raise RemoteError(f"job {job_id} did not finish within {timeout:g} s",
                                  "It is still queued or running on the server; poll it again later")
            time.sleep(poll)

    # ------------------------------------------------------------ transport
    def _json(self, method: str, path: str, **kw: Any) -> Any:
        _status, _headers, data = self._request(method, path, **kw)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BackendError(502, f"the server at {self.url} sent a response that is not JSON",
                               "Check that the URL points to an NSTR backend ('nstr serve')") from None

    def _request(self, method: str, path: str, body: list[bytes | memoryview] | bytes | None = None,
                 content_type: str | None = None, timeout: float | None = None,
                 headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn_cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        conn = conn_cls(self._host, self._port, timeout=timeout or self.timeout)
        parts = [body] if isinstance(body, (bytes, bytearray)) else list(body or [])
        # X-NSTR-Client marks a request no web page could have sent (the server refuses state changes
        # without it or a non-form content type); results come gzip-compressed as they are stored
        headers = {"Accept": "application/json", "Accept-Encoding": "gzip", "X-NSTR-Client": f"nstr-remote/{API}",
                   "Content-Length": str(sum(memoryview(p).nbytes for p in parts)), **(headers or {})}
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        full = f"{self._prefix}/{API}{path}"
        try:
            try:
                conn.putrequest(method, full, skip_accept_encoding=True)
                for key, value in headers.items():
                    conn.putheader(key, value)
                conn.endheaders()
                for part in parts:
                    conn.send(part)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server refused the body early (e.g. too large); its answer is still readable
            resp = conn.getresponse()
            data = resp.read()
            status = resp.status
            resp_headers = {k.lower(): v for k, v in resp.getheaders()}
            if resp_headers.get("content-encoding", "").lower() == "gzip":
                data = gzip.decompress(data)
        except socket.timeout:
            raise BackendUnreachable(f"the NSTR backend at {self.url} did not answer within {conn.timeout:g} s",
                                     "It may be busy or stopped; check that it is running") from None
        except (ConnectionError, OSError, http.client.HTTPException, EOFError, gzip.BadGzipFile) as err:
            reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
            raise BackendUnreachable(f"cannot reach the NSTR backend at {self.url} ({reason})",
                                     "Start it ('nstr serve' or the add-on's Start button) and check the URL") from None
        finally:
            conn.close()
        if status >= 400:
            raise _error_from(status, data, self.url)
        return status, resp_headers, data


def _seg(job_id: str) -> str:
    return quote(str(job_id), safe="")


def _error_from(status: int, data: bytes, url: str) -> BackendError:
    message, fix, code = None, None, None
    try:
        err = json.loads(data.decode("utf-8")).get("error", {})
        message, fix, code = err.get("message"), err.get("fix"), err.get("code")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        pass
    if not message:
        message = f"the server at {url} answered HTTP {status}"
    cls = AuthError if status in (401, 403) else BackendError
    return cls(status, message, fix, code)


__all__ = ["BackendClient", "BackendError", "BackendUnreachable", "AuthError", "RemoteError", "Array"]
