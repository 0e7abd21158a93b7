"""nstr batch on a real local Ray instance (2 CPUs, shared by the module): results that match their
own inputs, the summary, the skip on a rerun, a failing input that fails alone, a worker process
killed for real mid-fit that is retried, and the one-line errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from nstr.batch import summary
from nstr.batch.plan import job_config
from nstr.batch.runner import BatchOptions, run_batch

ray = pytest.importorskip("ray", reason="the 'ray' extra is installed by scripts/setup.sh")

TINY = {"steps": 150, "task.resolution": 24, "task.samples": 5000, "task.metric_points": 5000,
        "train.batch_size": 1024, "field.n_freqs": 8, "field.grid_levels": 4, "field.grid_table_size": 1024,
        "field.grid_max_res": 96, "device": "cpu"}  # a tiny grid: 4 levels in a 1024-row table stop at 96 cells
SPHERES = {"a": (1.0, (0.0, 0.0, 0.0)), "b": (2.0, (5.0, 0.0, 0.0)), "c": (0.5, (0.0, 3.0, -1.0))}


@pytest.fixture(scope="module")
def ray_instance():
    """One Ray for the module: start-up costs seconds on two cores."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSTR_CACHE", str(tmp_path_factory.getbasetemp() / "nstr-cache"))


def _spheres(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (r, c) in SPHERES.items():
        trimesh.creation.icosphere(3, radius=r).apply_translation(c).export(folder / f"{name}.off")
    return folder


def _opts(out: Path, **kw) -> BatchOptions:  # noqa: ANN003
    return BatchOptions(outdir=out, engine="ray", cpus_per_job=1, **kw)


@pytest.mark.slow
def test_three_meshes_give_their_own_results_a_summary_and_are_skipped_on_rerun(ray_instance, tmp_path: Path) -> None:
    src = _spheres(tmp_path / "in")
    out = tmp_path / "out"
    cfg = job_config("quick", TINY)
    result = run_batch([src], cfg, _opts(out))
    assert result.counts == {"done": 3}
    for name, (r, c) in SPHERES.items():  # each output is ITS input's sphere: centre and radius
        mesh = trimesh.load(out / f"{name}.ply", process=False)
        dist = np.linalg.norm(mesh.vertices - np.array(c), axis=1)
        print(name, "radius mean %.3f (true %.2f)" % (dist.mean(), r))
        assert abs(dist.mean() - r) < 0.05 * r and np.percentile(np.abs(dist - r), 95) < 0.15 * r
        assert (out / f"{name}.json").is_file()
    rows = summary.read_csv(out / "summary.csv")
    assert [Path(r["input"]).stem for r in rows] == ["a", "b", "c"]
    assert all(r["state"] == "done" and r["device"] == "cpu" and r["node"].endswith("/" + ray.get_runtime_context().get_node_id()[:8])
               and float(r["iou"]) > 0.5 for r in rows)
    assert "| a.ply |" in (out / "summary.md").read_text()
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix in (".ply", ".json")}

    again = run_batch([src / "*.off"], cfg, _opts(out))  # a glob this time: the same inputs
    assert again.counts == {"skipped": 3}
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix in (".ply", ".json")} == mtimes

    (src / "b.off").write_bytes((src / "b.off").read_bytes() + b"\n")  # new bytes: b only is redone
    third = run_batch([src], cfg, _opts(out))
    assert [r["state"] for r in third.rows] == ["skipped", "done", "skipped"]
    forced = run_batch([src / "a.off"], {**cfg, "task.resolution": 24}, _opts(out, force=True))
    assert forced.counts == {"done": 1}


@pytest.mark.slow
def test_a_failing_input_fails_alone_with_its_message(ray_instance, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    trimesh.creation.icosphere(2).export(src / "good.off")
    (src / "broken.off").write_text("OFF\n3 1 0\nnot a number\n")
    out = tmp_path / "out"
    result = run_batch([src], job_config("quick", {**TINY, "steps": 40}), _opts(out))
    states = {Path(r["input"]).stem: r for r in result.rows}
    assert states["good"]["state"] == "done" and (out / "good.ply").is_file()
    assert states["broken"]["state"] == "failed" and "could not read 'broken.off'" in states["broken"]["message"]
    assert not (out / "broken.ply").exists() and not (out / "broken.json").exists()
    assert "could not read 'broken.off'" in (out / "summary.csv").read_text()


@pytest.mark.slow
def test_a_worker_killed_mid_fit_is_retried_and_the_batch_completes(ray_instance, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    trimesh.creation.icosphere(2).export(src / "victim.off")
    trimesh.creation.icosphere(2, radius=2.0).export(src / "bystander.off")
    killed: list[int] = []

    def kill_in_fitting(snap: dict) -> None:
        ev = snap.get("victim", {})
        if not killed and ev.get("phase") == "fitting" and ev.get("attempts") == 1:
            killed.append(int(ev["pid"]))
            os.kill(int(ev["pid"]), signal.SIGKILL)  # real process death, mid-fit

    out = tmp_path / "out"
    result = run_batch([src], job_config("quick", {**TINY, "steps": 600}), _opts(out, max_retries=2),
                       observer=kill_in_fitting)
    assert len(killed) == 1
    rows = {Path(r["input"]).stem: r for r in result.rows}
    assert rows["victim"]["state"] == "done" and rows["victim"]["attempts"] == 2
    assert rows["bystander"]["state"] == "done"
    import json

    rep = json.loads((out / "victim.json").read_text())
    assert rep["batch"]["attempts"] == 2 and rep["steps"] == 600


def _cli(*args: str, env_extra: dict | None = None, pre: str = "") -> subprocess.CompletedProcess:
    code = pre + "import sys; from nstr.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.slow
def test_no_cluster_at_the_address_and_no_ray_are_one_line_errors(tmp_path: Path) -> None:
    src = tmp_path / "one.off"
    trimesh.creation.icosphere(1).export(src)
    import socket

    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = _cli("batch", str(src), "-o", str(tmp_path / "o"), "--engine", "ray", "--address", f"127.0.0.1:{port}")
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and f"no Ray cluster at 127.0.0.1:{port}" in p.stderr and "ray start --head" in p.stderr
    p = _cli("batch", str(src), "-o", str(tmp_path / "o"), "--engine", "ray", pre="import sys; sys.modules['ray'] = None; ")
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "needs Ray, which is not installed" in p.stderr and "pip install 'nstr[ray]'" in p.stderr


@pytest.mark.slow
def test_ctrl_c_cancels_what_is_unfinished_and_keeps_what_finished(tmp_path: Path) -> None:
    """A real SIGINT to a real ``nstr batch`` (local engine) once the first result is on disk."""
    import time

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b", "c"):
        trimesh.creation.icosphere(2).export(src / f"{name}.off")
    out = tmp_path / "out"
    # 600 steps: each fit takes ~5 s here, so b is still fitting when the signal lands (with 40 steps, ~1 s
    # fits, a loaded machine once let b and c finish before the signal)
    args = ["batch", str(src), "-o", str(out), "--preset", "quick", "--steps", "600", "--resolution", "24",
            "--cpus-per-job", "1", *[f"--set={k}={v}" for k, v in TINY.items() if k.startswith(("task.", "train.", "field."))
                                     and k != "task.resolution"]]
    # Ctrl-C in a terminal always reaches the process; a suite started in the background by a script
    # (``cmd &``) passes SIGINT down as ignored, which Python then honours, so the job restores it
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from nstr.cli import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    while not (out / "a.json").is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert (out / "a.json").is_file(), proc.communicate()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    rows = {Path(r["input"]).stem: r["state"] for r in summary.read_csv(out / "summary.csv")}
    assert rows["a"] == "done" and (out / "a.ply").is_file()
    assert rows["c"] == "cancelled" and not (out / "c.json").exists()
    assert rows["b"] == "cancelled"  # b had only just started: a fit takes ~5 s, the signal ~50 ms
    assert "nstr: interrupted" in stderr and "| cancelled |" in stdout
