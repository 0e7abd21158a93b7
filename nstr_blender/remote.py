"""The one import path of the stdlib backend client for the whole add-on.

An installed add-on carries a copy of ``backend/nstr/remote`` as
``nstr_blender/_vendor/nstr_remote`` (made by scripts/build_extension.py). Run
straight from the repository, that folder may be absent (it is git-ignored); then
the repository's own ``backend/`` is put on ``sys.path`` and ``nstr.remote`` is
used. Everything else imports ``client``, ``wire`` and ``launcher`` from here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType


def _load() -> tuple[ModuleType, ModuleType, ModuleType, str]:
    try:
        from ._vendor.nstr_remote import client, launcher, wire  # type: ignore[import-not-found]
        return client, wire, launcher, "vendored"
    except ImportError as vendored_error:
        backend = Path(__file__).resolve().parents[1] / "backend"
        if not (backend / "nstr" / "remote").is_dir():
            raise ImportError(
                "the NSTR backend client is missing from this add-on. Reinstall the add-on from a zip "
                "made by scripts/build_extension.py") from vendored_error
        if str(backend) not in sys.path:
            sys.path.insert(0, str(backend))
        from nstr.remote import client, launcher, wire  # type: ignore[no-redef]
        return client, wire, launcher, "repository"


client, wire, launcher, SOURCE = _load()

BackendClient = client.BackendClient
BackendError = client.BackendError
BackendUnreachable = client.BackendUnreachable
AuthError = client.AuthError
LocalBackend = launcher.LocalBackend
LaunchError = launcher.LaunchError
Array = wire.Array
