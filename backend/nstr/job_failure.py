"""How a job that did not finish is described: one classifier for every engine (issue 30).

The server's local engine, its Ray engine and both batch engines end a job that raised through
:func:`describe_failure`, so the same failure reads the same everywhere: cancelled, the user's
problem (an :class:`~nstr.errors.NSTRError`, with its fix), out of memory (GPU or host), a worker that
died, or a bug. Ray's exceptions are recognised by name, so nothing here imports Ray.
"""

from __future__ import annotations

from dataclasses import dataclass

from nstr.errors import Cancelled, NSTRError

RAY_CANCELLED = {"TaskCancelledError"}
RAY_WRAPPED = {"RayTaskError"}                  # a task's own exception, as ray.get raises it: see .cause
RAY_WORKER_LOST = {"WorkerCrashedError", "NodeDiedError", "OwnerDiedError", "ObjectLostError"}


@dataclass(frozen=True)
class Failure:
    """What a job's end says: ``state`` (cancelled | failed), ``kind`` (cancelled, input, out_of_memory,
    worker_lost, internal), the one-line ``problem`` and its ``fix``."""

    state: str
    kind: str
    problem: str
    fix: str

    def line(self) -> str:
        """Problem and fix as one line (the batch summary's message)."""
        return f"{self.problem}. {self.fix}" if self.fix else self.problem


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0][:300]


def describe_failure(err: BaseException) -> Failure:
    """The one description of ``err``, whatever engine ran the job."""
    name = type(err).__name__
    kinds = {c.__name__ for c in type(err).__mro__}  # Ray's errors subclass the cause: RayTaskError(X)
    if isinstance(err, Cancelled) or kinds & RAY_CANCELLED:
        return Failure("cancelled", "cancelled", "cancelled while running", "")
    if kinds & RAY_WRAPPED and getattr(err, "cause", None) is not None:
        return describe_failure(err.cause)  # type: ignore[attr-defined]
    if isinstance(err, NSTRError):
        return Failure("failed", "input", err.problem, err.fix or "")
    first = _first_line(err)
    if name == "OutOfMemoryError" or "cuda out of memory" in first.lower():
        return Failure("failed", "out_of_memory", f"the GPU ran out of memory ({first})",
                       "Use a smaller preset or parameter budget, release GPU memory, or close other GPU "
                       "programs, then resubmit")
    if isinstance(err, MemoryError) or "can't allocate memory" in first or "out of memory" in first.lower():
        return Failure("failed", "out_of_memory", f"the job ran out of memory ({first})",
                       "Use a smaller preset, batch size or resolution, then resubmit")
    if kinds & RAY_WORKER_LOST:
        return Failure("failed", "worker_lost", f"the worker died and the retries ran out ({name})",
                       "Check the cluster with 'ray status', then resubmit")
    return Failure("failed", "internal", f"{name}: {first}" if first else name,
                   "This is a bug in the backend (the job's log has the traceback); other jobs are unaffected")
