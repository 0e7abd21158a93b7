"""The helper process behind the scores (nstr.geometry.helper_process): its first job runs in another
process, and a helper that dies loses no job (each is run again here) and is replaced on the next call."""

from __future__ import annotations

import os

from nstr.geometry.helper_process import SharedJobs, helper_pool


def square_where(x: int, parent: int, die_in_helper: bool) -> tuple[int, int]:
    """x^2 and the pid that computed it; in a helper (pid != parent) with ``die_in_helper``, it dies instead."""
    if die_in_helper and os.getpid() != parent:
        os._exit(3)
    return x * x, os.getpid()


def test_the_first_job_runs_in_the_helper_and_every_value_comes_back_in_order() -> None:
    jobs = [(x, os.getpid(), False) for x in range(5)]
    values, seconds = SharedJobs(square_where, jobs, helper_pool()).results()
    assert [v for v, _ in values] == [0, 1, 4, 9, 16]
    assert values[0][1] != os.getpid()  # sent to the helper when the jobs were made
    assert len(seconds) == 5 and all(s >= 0 for s in seconds)


def test_a_dying_helper_loses_no_job_and_the_next_call_gets_a_new_one() -> None:
    pool = helper_pool()
    jobs = [(x, os.getpid(), True) for x in range(3)]
    values, _ = SharedJobs(square_where, jobs, pool).results()
    assert [v for v, _ in values] == [0, 1, 4] and all(pid == os.getpid() for _, pid in values)
    fresh = helper_pool()
    assert fresh is not pool
    values, _ = SharedJobs(square_where, [(7, os.getpid(), False)], fresh).results()
    assert values[0][0] == 49 and values[0][1] != os.getpid()


def test_without_a_helper_every_job_runs_here() -> None:
    values, _ = SharedJobs(square_where, [(x, os.getpid(), True) for x in range(3)], None).results()
    assert values == [(0, os.getpid()), (1, os.getpid()), (4, os.getpid())]
