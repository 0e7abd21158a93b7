"""The server's ETA (nstr.server.eta) on event streams whose right answer is known: the fit's
remaining steps at the measured step rate, plus the after-fit stages learnt, in fit steps, from the
task's earlier jobs. Times are given, not measured, so the answers are exact."""

from __future__ import annotations

import pytest

from nstr.server.eta import JobEta, StageCosts, progress_of


def fit_job(costs: StageCosts, step_s: float, after_fit_s: float, steps: int = 100,
            surface_cells: float | None = None) -> list[float | None]:
    """A job: sampling at t=0, fitting `steps` at `step_s` each (an event every 10 steps, with the fit's own
    ETA), extracting/attributes, done `after_fit_s` after the last step. Returns the ETA after each event."""
    eta = JobEta("sdf", 0.0, costs)
    out = [eta.update(0.0, "sampling", 1, 1, None, {"surface_cells": surface_cells} if surface_cells else None)]
    t0 = 1.0
    for step in range(0, steps + 1, 10):
        now = t0 + step * step_s
        out.append(eta.update(now, "fitting", step, steps, (steps - step) * step_s))
    fit_end = t0 + steps * step_s
    out.append(eta.update(fit_end + after_fit_s / 2, "extracting", 1, 1, None))
    eta.finish(fit_end + after_fit_s)
    return out


def test_the_first_job_knows_only_the_fit_then_the_next_adds_the_learnt_after_fit_cost():
    costs = StageCosts()
    first = fit_job(costs, step_s=0.1, after_fit_s=4.0)          # after the fit: 4 s = 40 steps of 0.1 s
    assert first[6] == pytest.approx(5.0)                          # step 50: 50 steps x 0.1 s, nothing more known
    assert costs.after_fit_steps("sdf") == pytest.approx(40.0)
    second = fit_job(costs, step_s=0.2, after_fit_s=8.0)         # a machine twice as slow: measured, not assumed
    assert second[6] == pytest.approx(50 * 0.2 + 40 * 0.2)       # 18 s: the fit's 10 s + the stages' 8 s
    assert second[-1] == pytest.approx(4.0)                        # half-way through the after-fit stages
    assert costs.after_fit_steps("nerf") is None                   # learnt per task


def test_progress_follows_the_phase_spans_and_never_goes_back():
    assert progress_of("fitting", 50, 100, 0.0) == pytest.approx(0.45)
    assert progress_of("sampling", 0, 1, 0.45) == pytest.approx(0.45)
    assert progress_of("attributes", 1, 1, 0.9) == pytest.approx(1.0)


def test_the_after_fit_cost_scales_with_the_surface_as_the_sizes_seen_say():
    costs = StageCosts()
    fit_job(costs, step_s=0.1, after_fit_s=4.0, surface_cells=1000)            # 40 steps for 1000 cells
    # one size known: 8x the cells costs 8 ** (2/3) = 4x the steps (the prior), 160 steps
    bigger = fit_job(costs, step_s=0.1, after_fit_s=10.0, surface_cells=8000)  # ... it took 100
    assert bigger[6] == pytest.approx(50 * 0.1 + 160 * 0.1)                    # 21 s at step 50
    # two sizes known: 8x the cells cost 2.5x the steps, so 8x more again costs 2.5x more: 250 steps
    largest = fit_job(costs, step_s=0.1, after_fit_s=25.0, surface_cells=64000)
    assert largest[6] == pytest.approx(50 * 0.1 + 250 * 0.1)
    same = fit_job(costs, step_s=0.2, after_fit_s=50.0, surface_cells=64000)  # a size seen before: its cost
    assert same[6] == pytest.approx(50 * 0.2 + 250 * 0.2)


def test_a_first_sdf_job_borrows_the_cpu_figure_scaled_to_its_size():
    from nstr.server.eta import FIRST_JOB

    cells, steps = FIRST_JOB["sdf"]
    first = fit_job(StageCosts(), step_s=0.1, after_fit_s=30.0, surface_cells=8 * cells)   # 8x: 4x the steps
    assert first[6] == pytest.approx(50 * 0.1 + 4 * steps * 0.1)
