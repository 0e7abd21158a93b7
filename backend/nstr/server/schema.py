"""The published API description (OpenAPI 3.1), generated from the routes at ``GET /v1/openapi.json``.

Each endpoint in :mod:`nstr.server.app` carries its own description (:func:`describe`); this module
walks the Starlette route table, so the document cannot list a route the server lacks or miss one
it serves.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from nstr import __version__
from nstr.server.store import STATES

WIRE = "application/x-nstr-wire"
ERROR_REF = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
JOB_REF = {"description": "the job's status",
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobStatus"}}}}
BINARY = {"schema": {"type": "string", "format": "binary"}}


def describe(summary: str, responses: dict[str, Any], errors: Iterable[int] = (), body: dict | None = None,
             headers: Iterable[tuple[str, str]] = ()) -> Callable[[Callable], Callable]:
    """Attach an endpoint's OpenAPI operation to the function itself."""
    def wrap(fn: Callable) -> Callable:
        op: dict[str, Any] = {"summary": summary, "operationId": fn.__name__,
                              "responses": {**responses, **{str(c): ERROR_REF for c in (401, 403, *errors)}}}
        params = [{"name": n, "in": "header", "required": False, "schema": {"type": "string"}, "description": d}
                  for n, d in headers]
        if params:
            op["parameters"] = params
        if body is not None:
            op["requestBody"] = body
        fn.__openapi__ = op  # type: ignore[attr-defined]
        return fn
    return wrap


def openapi(routes: Iterable[Any], tasks: list[str]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        op = getattr(route.endpoint, "__openapi__", None)
        if op is None:
            continue
        for method in sorted(route.methods - {"HEAD"}):
            entry = dict(op)
            if "{job_id}" in route.path:
                entry["parameters"] = [{"name": "job_id", "in": "path", "required": True, "schema": {
                    "type": "string", "pattern": "^[0-9]{6}-[0-9a-f]{8}$"}}, *op.get("parameters", [])]
            paths.setdefault(route.path, {})[method.lower()] = entry
    number = {"type": ["number", "null"]}
    return {
        "openapi": "3.1.0",
        "info": {"title": "NSTR fitting server", "version": __version__,
                 "description": "Fits NSTR fields (SDFs of meshes, NeRF scenes) in a job queue. Arrays travel in the "
                                f"'{WIRE}' format (nstr.remote.wire). Requests with an Origin header are refused; "
                                "POST/DELETE need a wire or JSON body or the header X-NSTR-Client; without a token "
                                "only loopback Host names are answered."},
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["status", "code", "message"],
                    "properties": {"status": {"type": "integer"}, "code": {"type": "string"},
                                   "message": {"type": "string"}, "fix": {"type": ["string", "null"]}}}}},
                "Health": {"type": "object", "properties": {
                    "version": {"type": "string"}, "api": {"type": "string"}, "device": {"type": "string"},
                    "device_name": {"type": "string"}, "gpu_memory_free": {"type": ["integer", "null"]},
                    "gpu_memory_total": {"type": ["integer", "null"]}, "queue_length": {"type": "integer"},
                    "tasks": {"type": "array", "items": {"type": "string"}}, "max_body_bytes": {"type": "integer"},
                    "auth": {"type": "boolean"}, "worker_alive": {"type": "boolean"}, "engine": {"type": "string"},
                    "data_roots": {"type": "integer"},
                    "storage": {"type": "object", "description": "the jobs folder: free_bytes, min_free_bytes, fault "
                                "(why no job can start, or null), pending_writes, write_failures"},
                    "degraded": {"type": "array", "items": {"type": "string"},
                                 "description": "one line per degraded part (low disk, index faults); empty when well"},
                    "requests": {"type": "object", "description": "what the request guards refused or cut off: "
                                 "cut_slow, cut_deadline, too_large, refused_busy, refused_client_share, "
                                 "refused_connections"}}},
                "JobStatus": {"type": "object", "properties": {
                    "id": {"type": "string"}, "task": {"type": "string", "enum": tasks},
                    "state": {"type": "string", "enum": list(STATES)},
                    "phase": {"type": ["string", "null"]}, "step": {"type": "integer"}, "total": {"type": "integer"},
                    "progress": {"type": "number"}, "loss": number, "eta_s": number,
                    "queue_position": {"type": ["integer", "null"],
                                       "description": "0 running, 1 next, ...; null when finished"},
                    "message": {"type": "string"}, "error": {"type": ["string", "null"]},
                    "fix": {"type": ["string", "null"]}, "created": {"type": "number"}, "started": number,
                    "finished": number, "metrics": {"type": "object"}, "config": {"type": "object"},
                    "resubmitted_from": {"type": ["string", "null"]}, "cancel_requested": {"type": "boolean"}}},
                "SubmitMeta": {"type": "object", "required": ["task"], "additionalProperties": False,
                               "description": "the 'meta' of the wire message (or the whole JSON body)",
                               "properties": {"task": {"type": "string", "enum": tasks},
                                              "config": {"type": "object",
                                                         "description": "{preset: quick|default|high, ...overrides}"}}},
            },
        },
        "security": [{"token": []}],
        "paths": paths,
    }
