"""The HTTP layer: a Starlette app (served by uvicorn) over the job queue.

Every request first passes :class:`~nstr.server.guard.Guard` (Host, Origin, CSRF, token), then
:class:`~nstr.server.bodies.BodyGuard` (one body limit, a minimum rate, a whole-request deadline and a
fair share of upload slots, on every route that has a body). Uploads stream to the job's staging
folder on disk chunk by chunk, after a check that the disk has room for them, so neither a large
mesh nor a stalled client holds memory or a thread. Validation and queueing run in the thread pool;
the fitting happens on the engine (:mod:`nstr.server.engine`). Every refusal is answered by one
function (:func:`error_response`) with ``{"error": {"status", "code", "message", "fix"}}``.
"""

from __future__ import annotations

import errno
import gzip
import json
import sys
import time
import traceback
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from nstr import __version__
from nstr.errors import NSTRError
from nstr.remote import wire
from nstr.server import device_info, schema
from nstr.server.bodies import BodyGuard, BodyLimits, RequestStats, body_chunks
from nstr.server.guard import Guard, HTTPError
from nstr.server.schema import BINARY, JOB_REF, WIRE, describe
from nstr.server.store import INPUT, StorageError, storage_error
from nstr.server.worker import JobConflict, JobNotFound, JobQueue

API = "v1"
MAX_JSON_BODY = 1 << 20  # JSON bodies (submissions without arrays, prune limits) carry no arrays
ROOM_CHECK_EVERY = 8 << 20  # a body without a Content-Length: the disk's room is checked this often
IDEMPOTENCY_HEADER = "idempotency-key"


CLOSE_AFTER = frozenset({408, 413})  # the body was not read to its end: the connection cannot be reused


def error_response(status: int, code: str, message: str, fix: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "code": code, "message": message, "fix": fix}}, status_code=status,
                        headers={"connection": "close"} if status in CLOSE_AFTER else None)


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, allow_nan=False), status_code=status, media_type="application/json")


# ------------------------------------------------------------------------------------------ routes
@describe("device, free GPU memory, version, queue length, the jobs folder's free space, what the request "
          "guards refused; 503 when the worker is not alive or the job index cannot be written",
          {"200": {"description": "health", "content": {"application/json": {
              "schema": {"$ref": "#/components/schemas/Health"}}}}}, errors=(503,))
def health(request: Request) -> Response:
    state = request.app.state
    jobs: JobQueue = state.jobs
    alive = jobs.alive()
    storage = jobs.storage()
    degraded = []
    if storage["fault"]:
        degraded.append(f"job index: {storage['fault']}")
    if storage["free_bytes"] is not None and storage["free_bytes"] < storage["min_free_bytes"]:
        degraded.append(f"the jobs folder's disk has {storage['free_bytes'] / 2**20:.1f} MiB free, under the "
                        f"{storage['min_free_bytes'] / 2**20:.1f} MiB kept spare: uploads are refused (507)")
    payload = {"version": __version__, "api": API, **device_info.describe(jobs.device),
               "queue_length": jobs.queue_length(), "tasks": jobs.registry.available(),
               "max_body_bytes": state.limits.max_body, "auth": state.token is not None, "worker_alive": alive,
               "engine": jobs.engine.name, "data_roots": len(jobs.admission.data_roots.roots),
               "storage": storage, "degraded": degraded, "requests": state.stats.snapshot()}
    if not alive:
        return error_response(503, "worker_dead", "the job worker is not running: queued jobs cannot start",
                              "Restart the server (the add-on's Restart button or 'nstr serve'); jobs are kept")
    if storage["fault"]:
        return error_response(503, "storage_fault", f"no job can start: {storage['fault']}",
                              "Free disk space in the jobs folder; the queue goes on by itself once the index "
                              "takes writes again")
    return _json(payload)


@describe("this document", {"200": {"description": "OpenAPI"}})
def openapi_doc(request: Request) -> Response:
    return _json(request.app.state.openapi)


@describe("all jobs, oldest first: everything a panel shows, in one call",
          {"200": {"description": "{jobs: [JobStatus]}", "content": {"application/json": {"schema": {
              "type": "object", "properties": {"jobs": {"type": "array", "items": {
                  "$ref": "#/components/schemas/JobStatus"}}}}}}}})
def list_jobs(request: Request) -> Response:
    return _json({"jobs": request.app.state.jobs.list()})


@describe("submit a job: a wire message whose meta is SubmitMeta and whose arrays are the task's inputs "
          "(sdf: vertices (V,3) float, faces (F,3) int); a repeated Idempotency-Key returns the first job (200)",
          {"201": JOB_REF, "200": JOB_REF}, errors=(400, 408, 411, 413, 415, 429, 507),
          body={"required": True, "content": {WIRE: BINARY, "application/json": {
              "schema": {"$ref": "#/components/schemas/SubmitMeta"}}}},
          headers=[("Idempotency-Key", "a client-chosen unique string; retrying with it never duplicates the job")])
async def submit(request: Request) -> Response:
    state = request.app.state
    jobs: JobQueue = state.jobs
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in (wire.CONTENT_TYPE, "application/json"):
        raise HTTPError(415, "unsupported_media_type", f"Content-Type {ctype or '(none)'} is not accepted",
                        f"Send {wire.CONTENT_TYPE} (nstr.remote.wire) or application/json")
    length_text = request.headers.get("content-length")
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    if length_text is None and not chunked:
        raise HTTPError(411, "length_required", "the request has no Content-Length", "Send a Content-Length header")
    declared = None
    if length_text is not None:
        try:
            declared = int(length_text)
            if declared < 0:
                raise ValueError
        except ValueError:
            raise HTTPError(400, "bad_length", f"Content-Length {length_text!r} is not a byte count") from None
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not (0 < len(key) <= 200 and key.isprintable()):
        raise HTTPError(400, "bad_idempotency_key", "the Idempotency-Key must be 1-200 printable characters")
    limit = state.limits.max_body if ctype == wire.CONTENT_TYPE else MAX_JSON_BODY
    staged = _staging(jobs, None if declared is None else min(declared, limit))  # two cheap syscalls
    try:
        size = await _receive_to_file(request, staged / INPUT, limit, jobs)
        if ctype == "application/json":
            await run_in_threadpool(_json_to_wire, staged / INPUT)
        job, created = await run_in_threadpool(_submit_staged, jobs, staged, key, size)
    except BaseException:
        await run_in_threadpool(jobs.store.discard, staged)
        raise
    return _json(jobs.status(job.id), 201 if created else 200)


def _staging(jobs: JobQueue, declared: int | None) -> Any:
    """A staging folder for an upload the disk has room for (507 otherwise)."""
    if declared is not None:
        jobs.store.check_room(declared, "this upload")
    return jobs.store.staging()


async def _receive_to_file(request: Request, path: Any, limit: int, jobs: JobQueue) -> int:
    """Stream the body to ``path``; at most one chunk is in memory at a time. A full disk is a 507."""
    size, checked = 0, 0
    try:
        with open(path, "wb") as fh:
            async for chunk in body_chunks(request, limit):
                size += len(chunk)
                if size - checked >= ROOM_CHECK_EVERY:  # no Content-Length was checked for this much
                    checked = size
                    jobs.store.check_room(0, "this upload")
                fh.write(chunk)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise storage_error(jobs.store.root, "saving the upload", err) from None
        raise
    return size


def _json_to_wire(path: Any) -> None:
    """A JSON submission (no arrays) stored in the same form as a wire upload."""
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        detail = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise HTTPError(400, "bad_body", f"the body is not valid JSON ({detail})") from None
    if not isinstance(meta, dict):
        raise HTTPError(400, "bad_body", "the body must be a JSON object with 'task' and 'config'")
    wire.write_file(path, meta, {})


def _submit_staged(jobs: JobQueue, staged: Any, key: str | None, size: int) -> Any:
    meta = wire.read_meta(staged / INPUT)
    unknown = sorted(set(meta) - {"task", "config"})
    if unknown:
        raise HTTPError(400, "bad_body", f"unknown request field(s): {', '.join(unknown)}",
                        "A submission has only 'task' and 'config'; data goes in the arrays")
    if "task" not in meta:
        raise HTTPError(400, "bad_body", "the request names no task",
                        "Set 'task' to one of: " + ", ".join(jobs.registry.available()))
    return jobs.submit(meta["task"], meta.get("config", {}), staged, key=key)


@describe("a job's status", {"200": JOB_REF}, errors=(404,))
def job_status(request: Request) -> Response:
    return _json(request.app.state.jobs.status(request.path_params["job_id"]))


@describe("remove a finished job and its files", {"200": {"description": "{id, deleted: true}"}}, errors=(404, 409))
def delete_job(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    request.app.state.jobs.delete(job_id)
    return _json({"id": job_id, "deleted": True})


@describe("a done job's result: a wire message with the mesh arrays and attributes (architecture.md), "
          "gzip-encoded when the client accepts it",
          {"200": {"description": "result", "content": {WIRE: BINARY}}}, errors=(404, 409))
def job_result(request: Request) -> Response:
    path = request.app.state.jobs.result_path(request.path_params["job_id"])
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        return FileResponse(path, media_type=wire.CONTENT_TYPE, headers={"Content-Encoding": "gzip"})

    def inflate() -> Any:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                yield chunk
    return StreamingResponse(inflate(), media_type=wire.CONTENT_TYPE)


@describe("the job's log (text)", {"200": {"description": "log", "content": {"text/plain": {}}}}, errors=(404,))
def job_log(request: Request) -> Response:
    return PlainTextResponse(request.app.state.jobs.log(request.path_params["job_id"]))


@describe("cancel a queued or running job", {"200": JOB_REF}, errors=(404,))
def cancel_job(request: Request) -> Response:
    return _json(request.app.state.jobs.cancel(request.path_params["job_id"]))


@describe("queue a finished job again with its stored inputs", {"201": JOB_REF}, errors=(400, 404, 409))
def resubmit_job(request: Request) -> Response:
    jobs: JobQueue = request.app.state.jobs
    job = jobs.resubmit(request.path_params["job_id"])
    return _json(jobs.status(job.id), 201)


@describe("drop cached models and empty the CUDA cache", {"200": {"description": "what was released"}})
def release_gpu(request: Request) -> Response:
    return _json(request.app.state.jobs.release_gpu())


@describe("remove finished jobs by age and total size (the retention policy, or the limits in the JSON body)",
          {"200": {"description": "{removed: [ids], kept_bytes, max_age_days, max_total_gb}"}}, errors=(400, 408, 413),
          body={"required": False, "content": {"application/json": {"schema": {"type": "object", "properties": {
              "max_age_days": {"type": "number", "minimum": 0}, "max_total_gb": {"type": "number", "minimum": 0}}}}}})
async def prune(request: Request) -> Response:
    body = b"".join([chunk async for chunk in body_chunks(request, MAX_JSON_BODY)])
    limits: dict[str, Any] = {}
    if body.strip():
        try:
            limits = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise HTTPError(400, "bad_body", "the body is not a JSON object") from None
        if not isinstance(limits, dict) or set(limits) - {"max_age_days", "max_total_gb"}:
            raise HTTPError(400, "bad_body", "the body may only hold max_age_days and max_total_gb")
        for k, v in limits.items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1e9):
                raise HTTPError(400, "bad_body", f"{k} must be a number from 0 to 1e9, not {v!r}")
    state = request.app.state
    out = await run_in_threadpool(state.retention.apply, state.jobs, limits.get("max_age_days"),
                                  limits.get("max_total_gb"))
    return _json(out)


@describe("a capture's cameras, read by the server (no photo decoded): for dataset_dir (inside a data root), "
          "each view's camera-to-world matrix in the capture's frame (NeRF/Blender axes), pinhole intrinsics, photo "
          "and test flag, and the box a fit without task.box uses (nstr.nerf.capture_cameras); a bad capture gets "
          "the readers' one-line 400",
          {"200": {"description": "{dataset_dir, kind, model, cameras: [{name, file, matrix, fx, fy, cx, cy, width, "
                                  "height, test}], box: [[x0, y0, z0], [x1, y1, z1]], box_from}"}},
          errors=(400, 408, 413),
          body={"required": True, "content": {"application/json": {"schema": {
              "type": "object", "required": ["dataset_dir"], "additionalProperties": False,
              "properties": {"dataset_dir": {"type": "string"}}}}}})
async def capture(request: Request) -> Response:
    body = b"".join([chunk async for chunk in body_chunks(request, MAX_JSON_BODY)])
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise HTTPError(400, "bad_body", "the body is not a JSON object", 'Send {"dataset_dir": "FOLDER"}') from None
    if not isinstance(doc, dict) or set(doc) != {"dataset_dir"}:
        raise HTTPError(400, "bad_body", "the body must hold 'dataset_dir' and nothing else",
                        'Send {"dataset_dir": "FOLDER"}')
    jobs: JobQueue = request.app.state.jobs
    return _json(await run_in_threadpool(_capture_cameras, jobs, doc["dataset_dir"]))


def _capture_cameras(jobs: JobQueue, dataset_dir: Any) -> dict[str, Any]:
    from nstr.nerf.capture_cameras import capture_cameras

    return capture_cameras(jobs.admission.data_roots.confine(dataset_dir))


ROUTES = [
    Route(f"/{API}/health", health, methods=["GET"]),
    Route(f"/{API}/openapi.json", openapi_doc, methods=["GET"]),
    Route(f"/{API}/jobs", list_jobs, methods=["GET"]),
    Route(f"/{API}/jobs", submit, methods=["POST"]),
    Route(f"/{API}/jobs/{{job_id}}", job_status, methods=["GET"]),
    Route(f"/{API}/jobs/{{job_id}}", delete_job, methods=["DELETE"]),
    Route(f"/{API}/jobs/{{job_id}}/result", job_result, methods=["GET"]),
    Route(f"/{API}/jobs/{{job_id}}/log", job_log, methods=["GET"]),
    Route(f"/{API}/jobs/{{job_id}}/cancel", cancel_job, methods=["POST"]),
    Route(f"/{API}/jobs/{{job_id}}/resubmit", resubmit_job, methods=["POST"]),
    Route(f"/{API}/release-gpu", release_gpu, methods=["POST"]),
    Route(f"/{API}/prune", prune, methods=["POST"]),
    Route(f"/{API}/capture", capture, methods=["POST"]),
]


# ------------------------------------------------------------------------------------------ errors
async def _on_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPError):
        return error_response(exc.status, exc.code, exc.message, exc.fix)
    if isinstance(exc, JobNotFound):
        return error_response(404, "job_not_found", f"there is no job {exc.args[0]!r} on this server",
                              f"List the jobs with GET /{API}/jobs (or 'nstr jobs')")
    if isinstance(exc, JobConflict):
        return error_response(409, "conflict", exc.problem, exc.fix)
    if isinstance(exc, StorageError):
        return error_response(507, "insufficient_storage", exc.problem, exc.fix)
    if isinstance(exc, wire.WireError):
        return error_response(400, "bad_body", exc.problem, exc.fix)
    if isinstance(exc, NSTRError):
        return error_response(400, "bad_input", exc.problem, exc.fix)
    if isinstance(exc, StarletteHTTPException):
        if exc.status_code == 405:
            return error_response(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}",
                                  f"See GET /{API}/openapi.json for the methods of each endpoint")
        if exc.status_code == 404:
            return error_response(404, "not_found", f"there is no endpoint {request.url.path}",
                                  f"See GET /{API}/openapi.json for the API")
        return error_response(exc.status_code, "http_error", str(exc.detail))
    if isinstance(exc, RecursionError):
        return error_response(400, "bad_body", "the request is nested too deeply", "Send a flat JSON object")
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} internal error on {request.method} {request.url.path}:\n")
    traceback.print_exception(type(exc), exc, exc.__traceback__)
    return error_response(500, "internal", f"internal server error ({type(exc).__name__}: {exc})".splitlines()[0][:300],
                          "See the server's log; other requests are unaffected")


def build_app(jobs: JobQueue, token: str | None, limits: BodyLimits, retention: Any,
              stats: RequestStats | None = None) -> Any:
    """The ASGI app: the guard, then the body guard, in front of the Starlette routes."""
    # Starlette looks handlers up by class: each kind we answer gets one (Exception: the 500 fallback)
    handlers: dict[Any, Any] = {cls: _on_error for cls in (HTTPError, JobNotFound, JobConflict, StorageError,
                                                            wire.WireError, NSTRError, RecursionError,
                                                            StarletteHTTPException, Exception)}
    app = Starlette(routes=ROUTES, exception_handlers=handlers)
    stats = stats or RequestStats()
    app.state.jobs = jobs
    app.state.token = token
    app.state.limits = limits
    app.state.stats = stats
    app.state.retention = retention
    app.state.openapi = schema.openapi(ROUTES, jobs.registry.available())
    return Guard(BodyGuard(app, limits, stats), token)


__all__ = ["build_app", "ROUTES", "HTTPError", "API"]
