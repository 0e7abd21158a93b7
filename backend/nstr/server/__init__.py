"""The fitting server: an HTTP API (``/v1/...``) over a one-worker job queue persisted on disk.

Modules: :mod:`.app` (HTTP: routes, auth, limits), :mod:`.worker` (queue, cancel, progress),
:mod:`.store` (job folders), :mod:`.registry` (task modules), :mod:`.device_info` (health,
GPU release), :mod:`.schema` (OpenAPI), :mod:`.main` (start-up). Start it with ``nstr serve``.
"""
