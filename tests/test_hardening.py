"""The outside probe's findings (issue 11), each replayed against a real ``nstr serve`` process on
loopback or the real CLI, with forged headers and crafted files where that applies."""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nstr.remote import wire
from nstr.remote.client import BackendClient, BackendError, RemoteError

sys.path.insert(0, str(Path(__file__).parent))
from test_server import PYTHON, REPO, TINY, ServerProcess, icosphere, wait_state  # noqa: E402

ENV = {k: v for k, v in os.environ.items() if k != "NSTR_TOKEN"} | {"OMP_NUM_THREADS": "1"}
FINAL = ("done", "failed", "cancelled")


def nstr(*args: str, timeout: float = 180, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "nstr", *args], capture_output=True, text=True, timeout=timeout,
                          env=env or ENV, cwd=REPO)


def raw(url: str, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
        read: bool = True) -> tuple[int, dict]:
    host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    hdrs = {"Host": f"{host}:{port}", "Content-Length": str(len(body)), **(headers or {})}
    for k, v in hdrs.items():
        conn.putheader(k, v)
    conn.endheaders()
    if body:
        conn.send(body)
    if not read:
        conn.close()  # a client that gave up before the answer
        return 0, {}
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    try:
        return resp.status, json.loads(data)
    except json.JSONDecodeError:
        return resp.status, {"raw": data[:200]}


def one_line_error(proc: subprocess.CompletedProcess, needle: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert needle.lower() in lines[0].lower(), lines[0]


def write_tiny_image_and_clip(image: Path, clip: Path) -> None:
    """A 16x16 grey PNG and a 0.1 s 440 Hz WAV, written by the backend's own writers."""
    from nstr.signals.audio_io import save_wav
    from nstr.signals.image_io import save_image

    yy, xx = np.mgrid[0:16, 0:16] / 16.0
    save_image(image, (0.5 + 0.4 * np.sin(6 * xx + 3 * yy)).astype(np.float32))
    t = np.arange(1600) / 16000.0
    save_wav(clip, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("roots")
    root = base / "datasets"
    (root / "scene").mkdir(parents=True)
    (base / "outside" / "scene").mkdir(parents=True)
    for folder in (root / "scene", base / "outside" / "scene"):
        (folder / "transforms.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": [
            {"file_path": "../../outside/secret", "transform_matrix": np.eye(4).tolist()}] * 9}))
    from PIL import Image

    Image.new("RGBA", (8, 8)).save(base / "outside" / "secret.png")
    (root / "escape").symlink_to(base / "outside" / "scene")
    # a dataset that passes every submit check: views from ten places (eight to train), images inside the folder
    (root / "good").mkdir()
    Image.new("RGBA", (8, 8), (200, 40, 40, 255)).save(root / "good" / "view.png")
    (root / "good" / "transforms.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": [
        {"file_path": "view", "transform_matrix": _translation(x, 0.0, 3.0)} for x in np.linspace(-1, 1, 10)]}))
    # datasets inside the root whose transforms.json links out of it: to a valid dataset's file, to a
    # file that is not JSON, and to nothing
    (base / "outside" / "garbage.json").write_text("{not json")
    for name, target in (("link_valid", base / "outside" / "scene" / "transforms.json"),
                         ("link_garbage", base / "outside" / "garbage.json"),
                         ("link_missing", base / "outside" / "missing.json")):
        (root / name).mkdir()
        Image.new("RGBA", (8, 8)).save(root / name / "view.png")
        (root / name / "transforms.json").symlink_to(target)
    return {"base": base, "root": root, "outside": base / "outside"}


def _translation(x: float, y: float, z: float) -> list[list[float]]:
    m = np.eye(4)
    m[:3, 3] = (x, y, z)
    return m.tolist()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, roots: dict[str, Path]) -> Any:
    srv = ServerProcess(tmp_path_factory.mktemp("hard") / "jobs", "--data-root", str(roots["root"])).start()
    yield srv
    srv.stop()


# ------------------------------------------------------------------ 1. DNS rebinding, Origin, CSRF
@pytest.mark.slow
def test_forged_host_origin_and_form_posts_are_refused_on_every_route(server: ServerProcess) -> None:
    c = server.client()
    job = c.submit("sdf", TINY, icosphere())
    wait_state(c, job, FINAL)
    routes = [("GET", "/v1/health"), ("GET", "/v1/jobs"), ("GET", f"/v1/jobs/{job}/result"),
              ("GET", f"/v1/jobs/{job}/log"), ("DELETE", f"/v1/jobs/{job}"), ("POST", f"/v1/jobs/{job}/cancel"),
              ("POST", f"/v1/jobs/{job}/resubmit"), ("POST", "/v1/release-gpu"), ("POST", "/v1/prune")]
    for method, path in routes:
        # DNS rebinding: the page's own name in Host, the request reaching 127.0.0.1
        status, body = raw(server.url, method, path, headers={"Host": "attacker.example:80", "X-NSTR-Client": "1"})
        assert status == 403 and body["error"]["code"] == "host_refused", (method, path, status, body)
        # any page's Origin, even with a loopback Host
        status, body = raw(server.url, method, path, headers={"Origin": "http://127.0.0.1:1234"})
        assert status == 403 and body["error"]["code"] == "origin_refused", (method, path, status, body)
    for method, path in routes:
        if method in ("POST", "DELETE"):  # a cross-site form: text/plain, no custom header
            status, body = raw(server.url, method, path, b"x=1", headers={"Content-Type": "text/plain"})
            assert status == 403 and body["error"]["code"] == "csrf_refused", (method, path, status, body)
    # none of that touched the job; the real client (loopback Host, X-NSTR-Client) still works
    assert c.status(job)["state"] == "done" and c.result(job)[1]["vertices"].shape[1] == 3
    assert raw(server.url, "GET", "/v1/health", headers={"Host": "localhost"})[0] == 200


# ------------------------------------------------------------------------------ 2. data roots
def test_dataset_dir_only_inside_data_roots_and_no_existence_oracle(server: ServerProcess,
                                                                    roots: dict[str, Path]) -> None:
    c = server.client()
    messages = []
    for path in ["/etc", "/no/such/folder", str(roots["outside"] / "scene"), "~", "~/scene",
                 str(roots["root"] / ".." / "outside" / "scene"), str(roots["root"] / "escape")]:
        with pytest.raises(BackendError) as err:
            c.submit("nerf", {"preset": "quick", "dataset_dir": path}, {})
        assert err.value.status == 400 and "not inside a data root" in err.value.message, (path, str(err.value))
        messages.append(err.value.message.replace(f"'{path}'", "PATH"))
    assert len(set(messages)) == 1  # the same words whether the path exists or not
    # inside the root, a frame that climbs out of the dataset is refused at submit, naming the frame
    with pytest.raises(BackendError) as err:
        c.submit("nerf", {"preset": "quick", "dataset_dir": str(roots["root"] / "scene")}, {})
    assert err.value.status == 400 and "frames[1]: image '../../outside/secret' lies outside the dataset folder" \
        in err.value.message, str(err.value)
    # a dataset that passes is stored with its path fully resolved
    job = c.submit("nerf", {"preset": "quick", "dataset_dir": str(roots["root"] / "scene" / ".." / "good")}, {})
    assert c.cancel(job)["config"]["dataset_dir"] == str((roots["root"] / "good").resolve())


def test_a_transforms_file_linked_out_of_the_dataset_is_refused_alike_whatever_its_target(
        server: ServerProcess, roots: dict[str, Path]) -> None:
    """transforms.json itself is a file read from the dataset: a symlink out of the folder is refused at
    submit, with the same words whether its target is a valid dataset file, not JSON, or missing."""
    c = server.client()
    jobs_before = len(c.jobs())
    messages = []
    for name in ("link_valid", "link_garbage", "link_missing"):
        with pytest.raises(BackendError) as err:
            c.submit("nerf", {"preset": "quick", "dataset_dir": str(roots["root"] / name)}, {})
        assert err.value.status == 400 and "lies outside the dataset folder" in err.value.message, (name, str(err.value))
        messages.append(str(err.value).replace(name, "NAME"))
    assert len(set(messages)) == 1, messages
    assert len(c.jobs()) == jobs_before
    # the CLI reads datasets through the same loader: the same refusal
    one_line_error(nstr("fit", "nerf", str(roots["root"] / "link_valid"), "--preset", "quick", "-o",
                        str(roots["base"] / "out.ply")), "transforms.json in")


@pytest.mark.slow
def test_without_data_roots_dataset_dir_is_refused(tmp_path: Path, roots: dict[str, Path]) -> None:
    with ServerProcess(tmp_path / "jobs") as srv:
        with pytest.raises(BackendError) as err:
            srv.client().submit("nerf", {"preset": "quick", "dataset_dir": str(roots["root"] / "scene")}, {})
        assert err.value.status == 400 and "--data-root" in str(err.value)


# -------------------------------------------------------------- 3. the worker never dies
@pytest.mark.slow
def test_worker_survives_an_injected_save_failure_and_health_reports_a_dead_worker(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "jobs", env={"NSTR_FAULT": "save,worker_exit"}).start()  # the server's faults only
    try:
        c = srv.client()
        first = c.submit("sdf", TINY, icosphere())
        st = wait_state(c, first, FINAL)
        assert st["state"] == "failed" and "could not be saved" in st["error"] and "Too many open files" in st["error"]
        assert "Traceback" in c.log(first) and not (srv.jobs_dir / first / "result.nstr.gz").exists()
        # the worker thread then exits (NSTR_FAULT=worker_exit): health says so, the next job waits
        with pytest.raises(BackendError) as err:
            for _ in range(200):
                c.health()
                time.sleep(0.05)
        assert err.value.status == 503 and "worker" in err.value.message
        waiting = c.submit("sdf", TINY, icosphere())
        assert c.status(waiting)["state"] == "queued"
    finally:
        srv.stop()
    # a restart brings a worker back and the queue goes on
    with ServerProcess(tmp_path / "jobs") as srv2:
        assert wait_state(srv2.client(), waiting, FINAL)["state"] == "done"


# ---------------------------------------------------------------- 4. the index and the folder lock
@pytest.mark.slow
def test_a_second_server_on_the_same_jobs_folder_is_refused(server: ServerProcess) -> None:
    proc = nstr("serve", "--port", "0", "--device", "cpu", "--jobs-dir", str(server.jobs_dir), timeout=120)
    one_line_error(proc, "in use by another nstr server")
    assert f"pid {server.proc.pid}" in proc.stderr
    assert server.client().health()["worker_alive"] is True


@pytest.mark.slow
def test_kill_9_leaves_a_consistent_index_and_restart_recovers(tmp_path: Path) -> None:
    jobs_dir = tmp_path / "jobs"
    srv = ServerProcess(jobs_dir).start()
    c = srv.client()
    running = c.submit("sdf", {**TINY, "steps": 20000}, icosphere())
    queued = c.submit("sdf", TINY, icosphere())
    wait_state(c, running, ("running",), phase="fitting")
    srv.stop(signal.SIGKILL)
    db = sqlite3.connect(jobs_dir / "jobs.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    states = dict(db.execute("SELECT id, state FROM jobs").fetchall())
    db.close()
    assert states == {running: "running", queued: "queued"}
    with ServerProcess(jobs_dir) as srv2:
        c = srv2.client()
        st = c.status(running)
        assert st["state"] == "failed" and "interrupted" in st["error"]
        assert wait_state(c, queued, FINAL)["state"] == "done"
        fresh = c.submit("sdf", TINY, icosphere())
        assert int(fresh.split("-")[0]) > int(queued.split("-")[0])  # ids never repeat after a restart


# ---------------------------------------------------------------------------- 5. bounds at submit
def test_numeric_options_are_bounded_at_submit(server: ServerProcess) -> None:
    c = server.client()
    cases = [({"steps": 1e30}, "train.steps must be at most 1000000, not 1e+30 (range 1 to 1000000)"),
             ({"steps": 2.5}, "train.steps must be an integer"),
             ({"field.width": 0}, "field.width must be at least 1, not 0 (range 1 to 4096)"),
             ({"task.sparse_from": 10**9}, "task.sparse_from must be at most 8192"),
             ({"task.eval_chunk": 0}, "task.eval_chunk must be at least 1"),
             ({"device": "cuda"}, "CUDA was requested"),
             ({"task.resolution": 2048, "task.sparse_from": 8192}, "GiB free")]
    for override, needle in cases:
        with pytest.raises(BackendError) as err:
            c.submit("sdf", {**TINY, **override}, icosphere())
        assert err.value.status == 400 and needle in str(err.value), (override, str(err.value))
    with pytest.raises(BackendError) as err:
        c.submit("sdf", TINY, {**icosphere(), "payload": np.zeros(1000, np.uint8)})
    assert err.value.status == 400 and "does not take the array(s) payload" in str(err.value)
    with pytest.raises(BackendError) as err:  # JSON nested 100k deep
        c._json("POST", "/jobs", body=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")
    assert err.value.status == 400 and "nested too deeply" in str(err.value)


@pytest.mark.slow
def test_nerf_job_takes_the_addon_arrays(server: ServerProcess) -> None:
    """The arrays the add-on sends for a NeRF job (views, poses, intrinsics and the object's world box)
    are all taken, and the box that was sent is the one the field is fitted in."""
    # eight cameras (the fewest a NeRF takes): the three axes and five between them
    eyes = [(2.5, 0.0, 0.0), (0.0, 2.5, 0.0), (0.0, 0.0, 2.5), (1.5, 1.5, 1.2), (-1.5, 1.5, 1.2), (1.5, -1.5, 1.2),
            (-2.0, -1.0, 1.0), (1.0, -2.0, -1.0)]
    poses = []
    for eye in eyes:
        e = np.asarray(eye, np.float64)
        back = e / np.linalg.norm(e)                       # the camera looks down -z at the origin
        up = np.array([0.0, 0.0, 1.0]) if abs(back[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
        right = np.cross(up, back)
        right /= np.linalg.norm(right)
        pose = np.eye(4)
        pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, np.cross(back, right), back, e
        poses.append(pose)
    images = np.zeros((len(eyes), 8, 8, 4), np.uint8)
    images[:, 2:6, 2:6] = (200, 40, 40, 255)
    box = np.array([[0.2, -0.3, -0.1], [0.7, 0.1, 0.3]], np.float32)
    arrays = {"train_images": images, "train_poses": np.stack(poses).astype(np.float32),
              "intrinsics": np.array([8.0, 8.0, 4.0, 4.0]), "aabb": box}
    c = server.client()
    job = c.submit("nerf", {"preset": "quick", "steps": 2, "batch_size": 64, "task.mesh_resolution": 16,
                            "task.eval_views": 1}, arrays)
    st = wait_state(c, job, FINAL, timeout=300)
    assert st["state"] == "done", c.log(job)[-2000:]
    meta, _ = c.result(job)
    dataset = meta["report"]["dataset"]
    assert dataset["aabb_from"] == "file" and np.allclose(dataset["aabb"], box)


def test_every_numeric_option_of_every_task_has_a_bound() -> None:
    """Bounds live beside each option (nstr.config.option); a numeric option without them would reach
    torch unchecked."""
    import typing

    from nstr.config import FieldConfig, TrainConfig
    from nstr.tasks.audio import AudioOptions
    from nstr.tasks.image import ImageOptions
    from nstr.tasks.nerf import NerfOptions
    from nstr.tasks.sdf import SDFOptions

    missing = []
    for block, cls in [("field", FieldConfig), ("train", TrainConfig), ("task", SDFOptions), ("task", NerfOptions),
                       ("task", ImageOptions), ("task", AudioOptions)]:
        for f in dataclasses.fields(cls):
            text = str(typing.get_type_hints(cls)[f.name])
            if ("int" in text or "float" in text) and "bool" != text.split("[")[0].strip("<class '>"):
                if "bounds" not in f.metadata:
                    missing.append(f"{block}.{f.name}")
    assert not missing, missing


# -------------------------------------------------------------------- 6. uploads and idempotency
def test_a_retry_with_the_same_idempotency_key_never_duplicates_the_job(server: ServerProcess) -> None:
    c = server.client()
    body = wire.encode({"task": "sdf", "config": TINY}, icosphere())
    headers = {"Content-Type": wire.CONTENT_TYPE, "Idempotency-Key": "retry-test-1"}
    before = {j["id"] for j in c.jobs()}
    raw(server.url, "POST", "/v1/jobs", body, headers, read=False)  # the client timed out: no answer read
    status2, second = raw(server.url, "POST", "/v1/jobs", body, headers)
    status3, third = raw(server.url, "POST", "/v1/jobs", body, headers)
    assert status2 in (200, 201) and status3 == 200 and second["id"] == third["id"]
    new = {j["id"] for j in c.jobs()} - before
    assert new == {second["id"]}
    assert wait_state(c, second["id"], FINAL)["state"] == "done"


@pytest.mark.slow
def test_slow_loris_connections_are_closed_and_the_server_answers_again(tmp_path: Path) -> None:
    """More half-sent request heads than the connection cap: each is closed by the head deadline
    (or refused with 503 beyond the cap); none is answered, and afterwards the server serves again."""
    with ServerProcess(tmp_path / "jobs", "--header-timeout", "1") as srv:
        host, port = srv.url.rsplit("/", 1)[-1].rsplit(":", 1)
        socks = []
        for _ in range(70):  # CONCURRENCY_LIMIT is 64
            s = socket.create_connection((host, int(port)), timeout=60)
            s.sendall(b"GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # the head never ends
            socks.append(s)
        endings = []
        for s in socks:
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            s.close()
            endings.append("closed" if not data else data.split(b"\r\n", 1)[0].decode())
        assert set(endings) <= {"closed", "HTTP/1.1 503 Service Unavailable"}, sorted(set(endings))
        assert endings.count("closed") >= 64
        assert srv.client().health()["worker_alive"] is True


# -------------------------------------------------------------------- 7. retention and compression
@pytest.mark.slow
def test_results_are_compressed_and_prune_removes_finished_jobs(tmp_path: Path) -> None:
    import gzip

    with ServerProcess(tmp_path / "jobs") as srv:
        c = srv.client()
        job = c.submit("sdf", TINY, icosphere())
        wait_state(c, job, FINAL)
        stored = (srv.jobs_dir / job / "result.nstr.gz").read_bytes()
        inflated = gzip.decompress(stored)
        assert len(stored) < 0.7 * len(inflated)
        meta, arrays = c.result(job)  # the client inflates it
        assert wire.decode(inflated)[1]["vertices"].shape == arrays["vertices"].shape
        proc = nstr("jobs", "--server", srv.url, "--prune", "--older-than", "0")
        assert proc.returncode == 0 and "removed 1 finished job(s)" in proc.stdout and job in proc.stdout
        assert c.jobs() == [] and not (srv.jobs_dir / job).exists()


# ------------------------------------------------------------------------ 8. signals and the parent
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_exit_cleanly_and_mark_the_running_job_interrupted(tmp_path: Path, sig: int) -> None:
    srv = ServerProcess(tmp_path / "jobs").start()
    c = srv.client()
    job = c.submit("sdf", {**TINY, "steps": 20000}, icosphere())
    wait_state(c, job, ("running",), phase="fitting")
    srv.proc.send_signal(sig)
    code = srv.proc.wait(timeout=30)
    srv.proc = None
    assert code in (0, -15, 143), (code, srv.log()[-2000:])
    assert "terminate called" not in srv.log() and "NSTR backend stopped" in srv.log()
    db = sqlite3.connect(tmp_path / "jobs" / "jobs.sqlite")
    record = json.loads(db.execute("SELECT record FROM jobs WHERE id=?", (job,)).fetchone()[0])
    db.close()
    assert record["state"] == "failed" and record["message"] == "interrupted"


@pytest.mark.slow
def test_server_exits_when_its_parent_dies_whatever_signal_mask_it_inherited(tmp_path: Path) -> None:
    url_file, pid_file = tmp_path / "url", tmp_path / "pid"
    parent = textwrap.dedent(f"""
        import os, signal, subprocess, sys, time
        signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGINT, signal.SIGTERM}})  # as a busy Blender may
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        p = subprocess.Popen([{PYTHON!r}, "-m", "nstr", "serve", "--port", "0", "--device", "cpu",
                              "--jobs-dir", {str(tmp_path / 'jobs')!r}, "--url-file", {str(url_file)!r},
                              "--parent-pid", str(os.getpid())], start_new_session=True)
        open({str(pid_file)!r}, "w").write(str(p.pid))
        time.sleep(600)
    """)
    proc = subprocess.Popen([PYTHON, "-c", parent], env=ENV, cwd=REPO)
    deadline = time.monotonic() + 90
    while not (url_file.is_file() and url_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.1)
    c = BackendClient(url_file.read_text().strip())
    job = c.submit("sdf", {**TINY, "steps": 20000}, icosphere())
    wait_state(c, job, ("running",), phase="fitting")
    server_pid = int(pid_file.read_text())
    proc.kill()  # kill -9: the parent cannot stop its child
    proc.wait()
    gone_by = time.monotonic() + 10
    while time.monotonic() < gone_by:
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            break
        _reap(server_pid)
        time.sleep(0.1)
    else:
        os.kill(server_pid, signal.SIGKILL)
        pytest.fail("the orphaned server was still running 10 s after its parent died")


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


# ------------------------------------------------------------------------------------ 9. the CLI
@pytest.mark.slow
def test_report_output_and_checkpoint_never_overwrite_an_input(tmp_path: Path, server: ServerProcess,
                                                               roots: dict[str, Path]) -> None:
    import trimesh

    mesh = tmp_path / "ico.ply"
    trimesh.Trimesh(**icosphere(), process=False).export(mesh)
    digest = hashlib.sha256(mesh.read_bytes()).hexdigest()
    scene = roots["root"] / "scene"
    image, clip = tmp_path / "in.png", tmp_path / "in.wav"
    write_tiny_image_and_clip(image, clip)
    signal_digests = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (image, clip)}
    cases = [
        (["fit", "sdf", str(mesh), "--report", str(mesh)], "is the input file"),
        (["fit", "sdf", str(mesh), "--checkpoint", str(mesh)], "is the input file"),
        (["fit", "sdf", str(mesh), "-o", str(tmp_path / "out.ply"), "--report", str(tmp_path / "out.ply")],
         "both name"),
        (["eval", str(mesh), str(mesh), "--report", str(mesh)], "is the input file"),
        (["submit", str(mesh), "--server", server.url, "--report", str(mesh)], "is the input file"),
        (["fit", "nerf", str(scene), "--report", str(scene / "transforms.json")], "inside the input folder"),
        (["fit", "nerf", str(scene), "-o", str(scene / "mesh.ply")], "inside the input folder"),
        (["fit", "sdf", str(mesh), "--report", str(mesh) + "/sub/r.json"], "not writable"),
        # /proc takes no new file even from root, whose permission bits allow everything: tried for real
        (["fit", "sdf", str(mesh), "-o", "/proc/nstr-out.ply"], "the folder /proc does not accept new files"),
        (["submit", str(mesh), "--server", server.url, "-o", "/proc/nstr-out.ply"], "does not accept new files"),
        (["fit", "image", str(image), "--report", str(image)], "is the input file"),
        (["fit", "image", str(image), "--checkpoint", str(image)], "is the input file"),
        (["fit", "audio", str(clip), "--report", str(clip)], "is the input file"),
        (["fit", "audio", str(clip), "--flow", str(tmp_path / "f.npz"), "--report", str(tmp_path / "f.npz")],
         "same file as another output"),
    ]
    jobs_before = len(server.client().jobs())
    for args, needle in cases:
        one_line_error(nstr(*args), needle)
    assert hashlib.sha256(mesh.read_bytes()).hexdigest() == digest
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (image, clip)} == signal_digests
    assert json.loads((scene / "transforms.json").read_text())["camera_angle_x"] == 0.7
    assert len(server.client().jobs()) == jobs_before  # submit refused before sending anything


@pytest.mark.slow
def test_listed_tracebacks_are_one_line_errors(tmp_path: Path, server: ServerProcess) -> None:
    import trimesh

    mesh = tmp_path / "ico.ply"
    trimesh.Trimesh(**icosphere(), process=False).export(mesh)
    jobs_before = len(server.client().jobs())
    for poll in ("-1", "nan"):
        one_line_error(nstr("submit", str(mesh), "--server", server.url, "--wait", "--poll", poll), "--poll")
    assert len(server.client().jobs()) == jobs_before  # refused before the job was submitted
    for value in ("nan", "inf"):
        one_line_error(nstr("serve", "--max-body-mb", value, "--port", "0", "--jobs-dir", str(tmp_path / "j")),
                       "--max-body-mb")
    one_line_error(nstr("jobs", "--server", "http://[::1"), "not a server URL")
    one_line_error(nstr("fit", "sdf", str(mesh), "--set", "task.eval_chunk=0", "--preset", "quick"),
                   "task.eval_chunk must be at least 1")
    with pytest.raises(RemoteError, match="not a server URL"):
        BackendClient("http://[::1")


@pytest.mark.slow
def test_a_bad_detail_range_is_one_line_naming_the_valid_range(tmp_path: Path) -> None:
    """Empty, inverted, malformed: refused before any work; finer than the grid: as soon as the grid
    is chosen (before the fit), with the shortest wavelength the result can hold."""
    import trimesh

    mesh = tmp_path / "ico.ply"
    trimesh.Trimesh(**icosphere(), process=False).export(mesh)
    out = tmp_path / "out.ply"
    for value, needle in (("[0.5,0.1]", "is inverted"), ("0.1,0.1", "is empty"), ("[0.1]", "two finite wavelengths"),
                          ("[a,b]", "must be a number"), ("[1e-5,0.5]", "finer than this result's grid can hold")):
        one_line_error(nstr("fit", "sdf", str(mesh), "--preset", "quick", "--steps", "5", "-o", str(out),
                            "--set", "task.samples=2000", "--set", f"task.detail_range={value}"), needle)
    assert not out.exists()


@pytest.mark.slow
def test_a_crafted_checkpoint_runs_nothing_and_a_real_one_loads(tmp_path: Path) -> None:
    import pickle

    import trimesh

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format": "nstr-checkpoint-1", "field": Evil()}))
    mesh = tmp_path / "ico.ply"
    trimesh.Trimesh(**icosphere(), process=False).export(mesh)
    proc = nstr("fit", "sdf", str(mesh), "--checkpoint", str(evil), "--preset", "quick", "-o", str(tmp_path / "o.ply"))
    one_line_error(proc, "cannot be loaded safely")
    assert not marker.exists() and not (tmp_path / "o.ply").exists()
    # the file really is an exploit: unpickled the unsafe way, it creates the marker
    subprocess.run([PYTHON, "-c", f"import pickle; pickle.load(open({str(evil)!r}, 'rb'))"], env=ENV, check=True)
    assert marker.exists()
    # a checkpoint nstr writes loads with weights_only=True
    sets = [a for k, v in TINY.items() if k not in ("preset", "steps") for a in ("--set", f"{k}={v}")]
    ckpt = tmp_path / "run.pt"
    ok = nstr("fit", "sdf", str(mesh), "--preset", "quick", "--steps", "4", *sets, "--checkpoint", str(ckpt),
              "-o", str(tmp_path / "ok.ply"), "--quiet")
    assert ok.returncode == 0, ok.stderr
    from nstr.train.loop import read_checkpoint

    assert read_checkpoint(ckpt)["step"] == 4


# ------------------------------------------------------------------------------------ 10. precision
@pytest.mark.slow
def test_a_mesh_far_from_the_origin_keeps_its_precision_end_to_end(server: ServerProcess) -> None:
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
    centre = np.array([1e7, 0.0, 0.0])
    mesh = {"vertices": np.asarray(sphere.vertices, np.float64) + centre, "faces": np.asarray(sphere.faces, np.int32)}
    c = server.client()
    job = c.submit("sdf", {**TINY, "steps": 60, "task.resolution": 32}, mesh)
    st = wait_state(c, job, FINAL, timeout=300)
    assert st["state"] == "done", st
    _meta, arrays = c.result(job)
    v = arrays["vertices"].to_numpy()
    assert v.dtype == np.float64
    assert len(np.unique(v[:, 0])) > 50  # float32 at x = 1e7 leaves about 3 distinct values
    r = np.linalg.norm(v - centre, axis=1)
    assert abs(np.median(r) - 1.0) < 0.15, np.median(r)


def test_the_sample_cache_is_bounded(tmp_path: Path) -> None:
    from nstr.geometry.sampling import trim_cache

    for i in range(5):
        p = tmp_path / f"{i}.npz"
        p.write_bytes(b"x" * 1000)
        os.utime(p, (1000 + i, 1000 + i))
    removed = trim_cache(tmp_path, max_bytes=2500)
    assert sorted(p.name for p in removed) == ["0.npz", "1.npz", "2.npz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3.npz", "4.npz"]
