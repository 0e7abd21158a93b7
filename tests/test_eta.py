"""The server's ETA (nstr.server.eta) on event streams whose right answer is known: the fit's
remaining steps at the measured step rate, plus the after-fit stages learnt, in fit steps, from the
task's earlier jobs. Times are given, not measured, so the answers are exact."""

from __future__ import annotations

import pytest

from nstr.server.eta import JobEta, StageCosts, progress_of


def fit_job(costs: StageCosts, step_s: float, after_fit_s: float, steps: int = 100,
            grid_points: int | None = None) -> list[float | None]:
    """A job: sampling at t=0, fitting `steps` at `step_s` each (an event every 10 steps, with the fit's own
    ETA), extracting/attributes, done `after_fit_s` after the last step. Returns the ETA after each event."""
    eta = JobEta("sdf", 0.0, costs)
    out = [eta.update(0.0, "sampling", 1, 1, None, {"grid_points": grid_points} if grid_points else None)]
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


def test_the_after_fit_cost_comes_from_the_nearest_size_scaled_by_its_area():
    costs = StageCosts()
    fit_job(costs, step_s=0.1, after_fit_s=4.0, grid_points=32**3)          # 40 steps for a 32^3 grid
    fit_job(costs, step_s=0.1, after_fit_s=90.0, grid_points=256**3)        # 900 steps for 256^3
    finer = fit_job(costs, step_s=0.1, after_fit_s=16.0, grid_points=64**3)  # nearest: 32^3, area x4
    assert finer[6] == pytest.approx(50 * 0.1 + 4 * 40 * 0.1)                # 21 s
    same = fit_job(costs, step_s=0.2, after_fit_s=180.0, grid_points=256**3)  # a size seen before: its cost
    assert same[6] == pytest.approx(50 * 0.2 + 900 * 0.2)
