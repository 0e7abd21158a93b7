"""Named one-shot calls on daemon threads, so Blender's main thread never waits on the network.

The main thread starts a call under a key (at most one per key at a time) and later takes its
outcome. The worker threads run plain Python only (the stdlib client, numpy parsing); they never
touch bpy and never mutate shared state: whatever they produce is handed back through ``take``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Outcome:
    """What a finished call returned or raised."""

    value: Any = None
    error: BaseException | None = None


@dataclass
class _Call:
    thread: threading.Thread
    outcome: Outcome = field(default_factory=Outcome)
    done: threading.Event = field(default_factory=threading.Event)


class Background:
    """At most one running call per key; outcomes wait until the main thread takes them."""

    def __init__(self) -> None:
        self._calls: dict[str, _Call] = {}
        self._threads: list[threading.Thread] = []    # every started thread, until it has ended

    def quiet(self) -> bool:
        """No worker thread of ours is alive, taken or not. Blender releases the GIL while an
        operator called from Python runs, and Blender 3.4 crashed (SIGSEGV in ``ed.undo_push``, 1 of
        3 UI runs; within 150 pushes beside two numpy threads) when one of these threads ran Python
        meanwhile: the main thread calls ``bpy.ops`` only when this is True."""
        self._threads = [t for t in self._threads if t.is_alive()]
        return not self._threads

    def busy(self, key: str) -> bool:
        return key in self._calls

    def any_busy(self, prefix: str = "") -> bool:
        return any(k.startswith(prefix) for k in self._calls)

    def start(self, key: str, fn: Callable[[], Any]) -> bool:
        """Run ``fn`` on a daemon thread under ``key``; False (and nothing started) if one runs."""
        if key in self._calls:
            return False

        def run() -> None:
            try:
                call.outcome.value = fn()
            except BaseException as err:  # noqa: BLE001 - handed to the main thread, never lost
                call.outcome.error = err
            finally:
                call.done.set()

        call = _Call(threading.Thread(target=run, name=f"nstr-{key}", daemon=True))
        self._calls[key] = call
        self._threads.append(call.thread)
        call.thread.start()
        return True

    def take(self, key: str) -> Outcome | None:
        """The outcome of the finished call under ``key`` (and forget it), or None while it runs."""
        call = self._calls.get(key)
        if call is None or not call.done.is_set():
            return None
        del self._calls[key]
        return call.outcome

    def finished(self, prefix: str = "") -> list[str]:
        return [k for k, c in self._calls.items() if k.startswith(prefix) and c.done.is_set()]

    def wait(self, key: str, timeout: float | None = None) -> Outcome | None:
        """Block until the call under ``key`` ends (for scripts and tests, never for the timer)."""
        call = self._calls.get(key)
        if call is None:
            return None
        call.done.wait(timeout)
        return self.take(key)
