"""User-facing errors: one line that names the problem and the fix.

Anything raised as :class:`NSTRError` reaches the user as a single line (CLI),
a 4xx message (server) or a panel message (Blender), never as a traceback.
"""

from __future__ import annotations


class NSTRError(Exception):
    """A problem the user can fix. ``str(err)`` is the one-line message."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem.rstrip(".")
        self.fix = fix
        super().__init__(self.problem + (f". {fix}" if fix else ""))


class InputError(NSTRError):
    """Bad input data: a missing file, an unsupported format, a broken mesh."""


class ConfigError(NSTRError):
    """An unknown or invalid configuration key or value."""


class DeviceError(NSTRError):
    """The requested compute device is not available."""


class Cancelled(Exception):
    """Raised inside a job when the user cancelled it. Not an error."""
