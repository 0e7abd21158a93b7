"""``nstr serve --engine ray``: a real server process whose jobs run as Ray tasks (the server starts
its own 2-CPU Ray instance): two jobs at once, a result that is the submitted sphere, and a cancel
that reaches the running Ray task."""

from __future__ import annotations

import numpy as np
import pytest

from test_server import LONG, TINY, ServerProcess, icosphere, wait_state

pytest.importorskip("ray", reason="the 'ray' extra is installed by scripts/setup.sh")


def test_server_on_ray_runs_a_job_and_cancels_a_running_one(tmp_path) -> None:  # noqa: ANN001
    with ServerProcess(tmp_path / "jobs", "--engine", "ray", "--cpus-per-job", "1") as server:
        client = server.client()
        health = client.health()
        assert health.get("engine") == "ray", health
        long_job = client.submit("sdf", LONG, icosphere())
        radius = 0.6
        small = client.submit("sdf", {**TINY, "steps": 150}, icosphere(subdivisions=3, radius=radius))
        # two slots (2 CPUs, 1 per job): the long job does not hold the short one back
        wait_state(client, long_job, ("running",), phase="fitting", timeout=180)
        st = wait_state(client, small, ("done", "failed", "cancelled"), timeout=180)
        assert st["state"] == "done", st
        assert client.status(long_job)["state"] == "running"
        _meta, arrays = client.result(small)
        v = arrays["vertices"].to_numpy()
        r = np.linalg.norm(v, axis=1)
        assert abs(r.mean() - radius) < 0.1 * radius  # the sphere that was sent, in its own coordinates
        assert "ran on Ray node" in client.log(small)

        client.cancel(long_job)
        st = wait_state(client, long_job, ("cancelled", "done", "failed"), timeout=60)
        assert st["state"] == "cancelled", st
        assert st["step"] < st["total"]
        assert "cancel sent to the Ray task" in client.log(long_job)
        after = client.submit("sdf", TINY, icosphere())  # the engine keeps going after a cancel
        assert wait_state(client, after, ("done", "failed", "cancelled"), timeout=180)["state"] == "done"
