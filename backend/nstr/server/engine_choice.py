"""The engines ``nstr serve --engine NAME`` can run, by name.

Kept apart from :mod:`nstr.server.engine` (the seam every engine implements) so that the seam never
imports an engine: the Ray engine builds on the seam, and Ray is imported only when it is chosen.
"""

from __future__ import annotations

from typing import Any, Callable

from nstr.server.engine import Engine, LocalEngine


def _ray_engine(**options: Any) -> Engine:
    from nstr.server.ray_engine import RayEngine  # Ray is optional: imported only when chosen

    return RayEngine(**options)


ENGINES: dict[str, Callable[..., Engine]] = {"local": LocalEngine, "ray": _ray_engine}
