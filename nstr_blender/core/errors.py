"""One-line user errors for the add-on.

The add-on cannot import the backend's ``nstr.errors`` (an installed add-on ships
only the stdlib client), so this mirrors its contract: ``str(err)`` is
"problem. fix", short enough for a panel line or an operator report.
"""

from __future__ import annotations


class AddonError(Exception):
    """A problem the user can fix, with the fix."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem.rstrip(".")
        self.fix = fix
        super().__init__(self.problem + (f". {fix}" if fix else ""))


class SelectionError(AddonError):
    """Nothing usable selected (no mesh objects, or empty meshes)."""


class ResultError(AddonError):
    """The backend returned arrays that do not describe a mesh."""


class BackendProblem(AddonError):
    """The backend is missing, unreachable, or failed a job."""
