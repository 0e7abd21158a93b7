"""The published API description (OpenAPI 3.1), served at ``GET /v1/openapi.json``.

Written by hand next to the routes in :mod:`nstr.server.app`; ``tests/test_server.py``
checks that every route the server answers is described here and vice versa.
"""

from __future__ import annotations

from typing import Any

from nstr import __version__

WIRE = "application/x-nstr-wire"

_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_JOB = {"description": "the job's status",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobStatus"}}}}
_ID = [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9]{6}-[0-9a-f]{8}$"}}]


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _ERROR for c in (401, *codes)}


def openapi(tasks: list[str]) -> dict[str, Any]:
    number = {"type": ["number", "null"]}
    return {
        "openapi": "3.1.0",
        "info": {"title": "NSTR fitting server", "version": __version__,
                 "description": "Fits NSTR fields (SDFs of meshes, NeRF scenes) in a job queue. Arrays travel in the "
                                f"'{WIRE}' format (nstr.remote.wire): 8-byte magic NSTRWIR1, uint32 LE header "
                                "length, JSON header {meta, arrays:[{name,dtype,shape,offset,nbytes}]}, 8-aligned raw "
                                "little-endian array data. Every request needs 'Authorization: Bearer TOKEN' when the "
                                "server has a token."},
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
                    "auth": {"type": "boolean"}}},
                "JobStatus": {"type": "object", "properties": {
                    "id": {"type": "string"}, "task": {"type": "string", "enum": tasks},
                    "state": {"type": "string", "enum": ["queued", "running", "done", "failed", "cancelled"]},
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
        "paths": {
            "/v1/health": {"get": {"summary": "device, free GPU memory, version, queue length",
                                   "responses": {"200": {"description": "health", "content": {"application/json": {
                                       "schema": {"$ref": "#/components/schemas/Health"}}}}, **_errors()}}},
            "/v1/openapi.json": {"get": {"summary": "this document", "responses": {"200": {"description": "OpenAPI"},
                                                                                  **_errors()}}},
            "/v1/jobs": {
                "get": {"summary": "all jobs, oldest first", "responses": {"200": {
                    "description": "{jobs: [JobStatus]}", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"jobs": {"type": "array", "items": {
                            "$ref": "#/components/schemas/JobStatus"}}}}}}}, **_errors()}},
                "post": {"summary": "submit a job: wire message whose meta is SubmitMeta and whose arrays are the "
                                    "task's inputs (sdf: vertices (V,3) float, faces (F,3) int)",
                         "requestBody": {"required": True, "content": {
                             WIRE: {"schema": {"type": "string", "format": "binary"}},
                             "application/json": {"schema": {"$ref": "#/components/schemas/SubmitMeta"}}}},
                         "responses": {"201": _JOB, **_errors(400, 411, 413, 415)}}},
            "/v1/jobs/{job_id}": {"get": {"summary": "a job's status", "parameters": _ID,
                                          "responses": {"200": _JOB, **_errors(404)}},
                                  "delete": {"summary": "remove a finished job and its files", "parameters": _ID,
                                             "responses": {"200": {"description": "{id, deleted: true}"},
                                                           **_errors(404, 409)}}},
            "/v1/jobs/{job_id}/result": {"get": {
                "summary": "a done job's result: wire message with the mesh arrays and attributes (architecture.md)",
                "parameters": _ID, "responses": {"200": {"description": "result", "content": {
                    WIRE: {"schema": {"type": "string", "format": "binary"}}}}, **_errors(404, 409)}}},
            "/v1/jobs/{job_id}/log": {"get": {"summary": "the job's log (text)", "parameters": _ID,
                                              "responses": {"200": {"description": "log", "content": {
                                                  "text/plain": {}}}, **_errors(404)}}},
            "/v1/jobs/{job_id}/cancel": {"post": {"summary": "cancel a queued or running job", "parameters": _ID,
                                                  "responses": {"200": _JOB, **_errors(404)}}},
            "/v1/jobs/{job_id}/resubmit": {"post": {"summary": "queue a finished job again with its stored inputs",
                                                    "parameters": _ID,
                                                    "responses": {"201": _JOB, **_errors(400, 404, 409)}}},
            "/v1/release-gpu": {"post": {"summary": "drop cached models and empty the CUDA cache",
                                         "responses": {"200": {"description": "what was released"}, **_errors()}}},
        },
    }
