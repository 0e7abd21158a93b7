"""The stdlib side: wire format, the client's one-line errors, a bare-Python client against a real
server, and the launcher that starts the server as a child process (as the Blender add-on does)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from nstr.remote import wire
from nstr.remote.client import AuthError, BackendClient, BackendUnreachable, RemoteError
from nstr.remote.launcher import LaunchError, LocalBackend

sys.path.insert(0, str(Path(__file__).parent))
from test_server import TINY, ServerProcess, icosphere  # noqa: E402

REMOTE_PKG = Path(__file__).resolve().parents[1] / "backend" / "nstr" / "remote"


# ------------------------------------------------------------------------------------------ wire
def test_wire_round_trips_every_supported_array_exactly() -> None:
    rng = np.random.default_rng(0)
    arrays = {"vertices": rng.normal(size=(37, 3)).astype(np.float32), "faces": rng.integers(0, 37, (50, 3)),
              "mask": rng.random(7) > 0.5, "bytes": np.frombuffer(b'{"a": 1}', np.uint8),
              "scalar": np.float64(2.5), "empty": np.zeros((0, 3), np.float32),
              "big_endian": np.arange(5, dtype=">i4"), "strided": np.arange(30.0).reshape(5, 6)[:, ::2]}
    meta, out = wire.decode(wire.encode({"task": "sdf", "config": {"steps": 3}}, arrays))
    assert meta == {"task": "sdf", "config": {"steps": 3}}
    for name, a in arrays.items():
        got = out[name].to_numpy()
        assert got.shape == np.shape(a) and np.array_equal(got, a), name
        assert got.dtype.byteorder in "<|=" and got.dtype.newbyteorder("<") == np.asarray(a).dtype.newbyteorder("<")
    # stdlib-only construction and reading gives the same bytes as numpy's
    v = wire.Array.from_values([0.5, 1.5, -2.0], "<f4", (3,))
    assert v.tolist() == [0.5, 1.5, -2.0] and v.to_numpy().tolist() == [0.5, 1.5, -2.0]


def _corrupt_header(msg: bytes, change: dict) -> bytes:
    (hlen,) = struct.unpack("<I", msg[8:12])
    header = json.loads(msg[12:12 + hlen])
    header["arrays"][0].update(change)
    new = json.dumps(header).encode()
    head = wire.MAGIC + struct.pack("<I", len(new)) + new
    head += b"\0" * ((-len(head)) % 8)
    data_start = 12 + hlen + ((-(12 + hlen)) % 8)
    return head + msg[data_start:]


@pytest.mark.parametrize("mutate, needle", [
    (lambda m: m[:5], "magic"),
    (lambda m: b"NSTRWIR2" + m[8:], "magic"),
    (lambda m: m[:8] + struct.pack("<I", 2**31) + m[12:], "header"),
    (lambda m: m[:12] + b"\xff" * 20 + m[32:], "JSON"),
    (lambda m: m[:-8], "outside"),
    (lambda m: m + b"\0" * 16, "unexpected bytes"),
    (lambda m: _corrupt_header(m, {"dtype": "object"}), "dtype"),
    (lambda m: _corrupt_header(m, {"shape": [4, 3]}), "needs"),
    (lambda m: _corrupt_header(m, {"shape": [-1, 3]}), "shape"),
    (lambda m: _corrupt_header(m, {"offset": 8}), "overlap"),
    (lambda m: _corrupt_header(m, {"name": "faces"}), "twice"),
])
def test_wire_rejects_corrupt_messages_with_one_line(mutate, needle: str) -> None:
    msg = wire.encode({"task": "sdf"}, {"vertices": np.zeros((5, 3), np.float32),
                                        "faces": np.zeros((2, 3), np.int32)})
    with pytest.raises(wire.WireError) as err:
        wire.decode(mutate(msg))
    assert needle.lower() in str(err.value).lower() and "\n" not in str(err.value)


def test_wire_refuses_pickle_style_objects() -> None:
    with pytest.raises(wire.WireError, match="cannot be sent"):
        wire.encode({}, {"x": np.array([object()], dtype=object)})
    with pytest.raises(wire.WireError, match="plain JSON"):
        wire.encode({"x": float("nan")}, {})


# ------------------------------------------------------------------------------- client errors
def test_client_errors_are_one_line_with_a_fix() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(BackendUnreachable) as err:
        BackendClient(f"http://127.0.0.1:{port}", timeout=2).health()
    assert "cannot reach" in str(err.value) and "nstr serve" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(RemoteError, match="not a server URL"):
        BackendClient("127.0.0.1:8765")
    # a socket that accepts but never answers: a timeout, not a hang
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        with pytest.raises(BackendUnreachable, match="did not answer within 0.5 s"):
            BackendClient(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.5).health()


# ----------------------------------------------------------------------- bare Python, no packages
@pytest.mark.slow
def test_stdlib_client_runs_under_a_bare_python_against_the_real_server(tmp_path: Path) -> None:
    """The add-on's situation: the client package copied (vendored) elsewhere, no numpy, no site-packages."""
    bare = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    vendor = tmp_path / "vendor"
    shutil.copytree(REMOTE_PKG, vendor / "nstr_remote", ignore=shutil.ignore_patterns("__pycache__"))
    mesh = icosphere()
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(vendor)!r})
        for banned in ("numpy", "torch", "nstr"):
            try:
                __import__(banned)
                raise SystemExit("third-party package importable: " + banned)
            except ImportError:
                pass
        from nstr_remote.client import BackendClient, BackendError
        from nstr_remote.wire import Array
        c = BackendClient(sys.argv[1], token="bare-token")
        assert c.health()["api"] == "v1"
        v = Array.from_values({mesh["vertices"].ravel().tolist()!r}, "<f4", {mesh["vertices"].shape!r})
        f = Array.from_values({mesh["faces"].ravel().tolist()!r}, "<i4", {mesh["faces"].shape!r})
        job = c.submit("sdf", json.loads(sys.argv[2]), {{"vertices": v, "faces": f}})
        st = c.wait(job, poll=0.1, timeout=180)
        assert st["state"] == "done", st
        meta, arrays = c.result(job)
        verts = arrays["vertices"].tolist()
        try:
            c.submit("teapot", {{}}, {{"vertices": v, "faces": f}})
        except BackendError as err:
            refused = str(err)
        print(json.dumps({{"n": len(verts) // 3, "keys": sorted(arrays), "ranges": "ranges" in meta,
                           "refused": refused, "modules": sorted(m for m in sys.modules if m in ("numpy", "torch"))}}))
    """)
    with ServerProcess(tmp_path / "jobs", "--token", "bare-token") as srv:
        proc = subprocess.run([bare, "-I", "-S", "-c", script, srv.url, json.dumps(TINY)],
                              capture_output=True, text=True, timeout=240, env={})
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["n"] > 10 and "local_frequency" in out["keys"] and out["ranges"]
    assert "unknown task" in out["refused"] and out["modules"] == []


# ------------------------------------------------------------------------------------ launcher
@pytest.mark.slow
def test_launcher_starts_uses_restarts_and_stops_a_local_server(tmp_path: Path) -> None:
    backend = LocalBackend(sys.executable, log_dir=tmp_path / "logs", device="cpu", jobs_dir=tmp_path / "jobs")
    try:
        url = backend.start(timeout=120)
        assert url.startswith("http://127.0.0.1:") and backend.alive()
        # the launcher's server has a token: other local users cannot drive it
        with pytest.raises(AuthError):
            BackendClient(url).health()
        client = backend.client()
        job = client.submit("sdf", TINY, icosphere())
        assert client.wait(job, poll=0.1, timeout=180)["state"] == "done"
        running = client.submit("sdf", {**TINY, "steps": 20000}, icosphere())
        while client.status(running)["state"] != "running":
            time.sleep(0.05)
        pid = backend.process.pid
        url2 = backend.restart(timeout=120)  # SIGTERM: the server records the running job as interrupted
        assert backend.process.pid != pid and backend.alive()
        client = backend.client()
        assert client.status(job)["state"] == "done"  # same jobs folder after a restart
        st = client.status(running)
        assert st["state"] == "failed" and "stopped while this job was running" in st["error"]
        assert url2 == backend.url
    finally:
        backend.stop()
    assert not backend.alive()
    with pytest.raises(BackendUnreachable):
        BackendClient(url2, timeout=2).health()
    log = (tmp_path / "logs" / "server.log").read_text()
    assert "listening on" in log and "stopped" in log


@pytest.mark.slow
def test_server_stops_when_the_process_that_launched_it_dies(tmp_path: Path) -> None:
    """Blender crashing (no atexit) must not leave a server behind holding the GPU."""
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from nstr.remote.launcher import LocalBackend
        b = LocalBackend(sys.executable, log_dir={str(tmp_path / 'logs')!r}, device="cpu", jobs_dir={str(tmp_path / 'jobs')!r})
        print(b.start(timeout=120), b.token, flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        url, token = parent.stdout.readline().split()
        assert BackendClient(url, token=token).health()["api"] == "v1"
    finally:
        parent.kill()  # like a crash: no atexit handlers run
        parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            BackendClient(url, token=token, timeout=2).health()
        except BackendUnreachable:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the server outlived its parent by 30 s")
    assert "is gone; stopping" in (tmp_path / "logs" / "server.log").read_text()


def test_launcher_names_what_the_python_lacks(tmp_path: Path) -> None:
    # a Python with torch that cannot import the backend package
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(textwrap.dedent("""
        import sys
        class _NoNstr:
            def find_spec(self, name, path=None, target=None):
                if name == "nstr" or name.startswith("nstr."):
                    raise ModuleNotFoundError("No module named 'nstr'")
        sys.meta_path.insert(0, _NoNstr())
    """))
    wrapper = tmp_path / "python-without-nstr"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={block} exec {sys.executable} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(LaunchError) as err:
        LocalBackend(str(wrapper), log_dir=tmp_path / "l1").start(timeout=30)
    assert "cannot import the NSTR backend package" in str(err.value) and "pip install" in str(err.value)
    # a Python without torch (the system one here has none)
    no_torch = "/usr/bin/python3"
    if subprocess.run([no_torch, "-c", "import torch"], capture_output=True).returncode == 0:
        pytest.skip("the system Python has torch")
    with pytest.raises(LaunchError, match="has no torch"):
        LocalBackend(no_torch, log_dir=tmp_path / "l2").start(timeout=30)
    with pytest.raises(LaunchError, match="does not exist"):
        LocalBackend(str(tmp_path / "no-python"), log_dir=tmp_path / "l3").start(timeout=30)
    assert not os.path.exists(tmp_path / "l1" / "server.log")  # nothing was started
