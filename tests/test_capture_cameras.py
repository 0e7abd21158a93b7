"""A capture's cameras as the server lists them (nstr.nerf.capture_cameras, ``POST /v1/capture``): the known
cameras of a written capture (COLMAP text and binary, nerfstudio), the suggested box around the point they look
at, and hostile input: paths outside the data roots, forged headers, crafted files, each one line."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nstr.errors import InputError
from nstr.nerf.capture_cameras import capture_cameras
from nstr.remote.client import BackendError

from capture_writers import N_VIEWS, TRUTH, truth_poses, write_colmap, write_nerfstudio
from test_server import ServerProcess
from test_hardening import raw

TEST_VIEWS = [k for k in range(N_VIEWS) if k % 8 == 0]   # every 8th view, by photo name


def assert_known(listing: dict[str, Any], root: Path) -> None:
    cams = sorted(listing["cameras"], key=lambda c: c["name"])
    assert [c["name"] for c in cams] == [f"view_{k:02d}.png" for k in range(N_VIEWS)]
    assert [c["file"] for c in cams] == [f"images/view_{k:02d}.png" for k in range(N_VIEWS)]
    np.testing.assert_allclose([c["matrix"] for c in cams], truth_poses(), atol=1e-6)
    for c in cams:
        assert (c["fx"], c["fy"], c["cx"], c["cy"], c["width"], c["height"]) == pytest.approx(
            (TRUTH.fx, TRUTH.fy, TRUTH.cx, TRUTH.cy, TRUTH.width, TRUTH.height))
    assert [k for k, c in enumerate(cams) if c["test"]] == TEST_VIEWS
    # every optical axis passes through the origin: the box is centred there, as wide as the view at 4 units
    lo, hi = np.asarray(listing["box"])
    assert listing["box_from"] == "cameras" and np.all(lo < 0) and np.all(hi > 0)
    np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-4)
    dist = np.median(np.linalg.norm(truth_poses()[[k for k in range(N_VIEWS) if k not in TEST_VIEWS], :3, 3], axis=1))
    np.testing.assert_allclose(hi - lo, 2 * 1.1 * dist * (TRUTH.width / 2) / TRUTH.fx, rtol=1e-5)
    assert Path(listing["dataset_dir"]) == root


@pytest.mark.parametrize("kind", ["colmap-text", "colmap-binary", "nerfstudio"])
def test_the_listing_gives_the_known_cameras_and_a_box_around_where_they_look(tmp_path: Path, kind: str) -> None:
    root = write_nerfstudio(tmp_path) if kind == "nerfstudio" else write_colmap(tmp_path, binary=kind.endswith("binary"))
    listing = capture_cameras(root)
    assert listing["kind"] == ("transforms" if kind == "nerfstudio" else "colmap")
    assert_known(listing, root)
    json.dumps(listing, allow_nan=False)   # the server sends it as it is


def test_per_frame_intrinsics_and_a_file_box(tmp_path: Path) -> None:
    """nerfstudio frames with their own intrinsics keep them (the photo's own camera); an 'aabb' in the file is
    the box the fit uses, so it is the one suggested."""
    root = write_nerfstudio(tmp_path, {"aabb": [[-0.5, -0.4, -0.3], [0.5, 0.4, 0.3]]})
    doc = json.loads((root / "transforms.json").read_text())
    doc["frames"][3].update({"fl_x": 40.0, "fl_y": 38.0, "cx": 15.0, "cy": 12.5})
    (root / "transforms.json").write_text(json.dumps(doc))
    listing = capture_cameras(root)
    third = next(c for c in listing["cameras"] if c["name"] == "view_03.png")
    assert (third["fx"], third["fy"], third["cx"], third["cy"]) == (40.0, 38.0, 15.0, 12.5)
    np.testing.assert_allclose(listing["box"], [[-0.5, -0.4, -0.3], [0.5, 0.4, 0.3]], rtol=1e-7)
    assert listing["box_from"] == "file"


def test_intrinsics_from_the_field_of_view_or_a_larger_size_are_the_photos(tmp_path: Path) -> None:
    """``camera_angle_x`` needs the photo's size (read from its header); ``fl_x``.. given for photos twice as large
    as those saved are scaled to them, as the fit scales them."""
    root = write_nerfstudio(tmp_path / "angle")
    doc = json.loads((root / "transforms.json").read_text())
    for key in ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_model"):
        doc.pop(key)
    doc["camera_angle_x"] = 0.9
    (root / "transforms.json").write_text(json.dumps(doc))
    cam = capture_cameras(root)["cameras"][0]
    fx = 0.5 * TRUTH.width / math.tan(0.45)
    assert (cam["fx"], cam["fy"], cam["cx"], cam["cy"], cam["width"], cam["height"]) == pytest.approx(
        (fx, fx, TRUTH.width / 2, TRUTH.height / 2, TRUTH.width, TRUTH.height))
    root = write_nerfstudio(tmp_path / "double", {"fl_x": 2 * TRUTH.fx, "fl_y": 2 * TRUTH.fy, "cx": 2 * TRUTH.cx,
                                                  "cy": 2 * TRUTH.cy, "w": 2 * TRUTH.width, "h": 2 * TRUTH.height})
    cam = capture_cameras(root)["cameras"][0]
    assert (cam["fx"], cam["fy"], cam["cx"], cam["cy"], cam["width"], cam["height"]) == pytest.approx(
        (TRUTH.fx, TRUTH.fy, TRUTH.cx, TRUTH.cy, TRUTH.width, TRUTH.height))


def one_line(root: Path, *words: str) -> str:
    with pytest.raises(InputError) as err:
        capture_cameras(root)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words), (words, message)
    return message


def test_bad_captures_get_the_readers_one_line(tmp_path: Path) -> None:
    root = write_colmap(tmp_path / "missing")
    (root / "images" / "view_03.png").unlink()
    one_line(root, "images.txt", "view_03.png", "not found")
    root = write_colmap(tmp_path / "model")
    (root / "sparse/0/cameras.txt").write_text("1 FOV 32 24 30 30 16 12 0.1\n")
    one_line(root, "cameras.txt line 1", "FOV", "not read")
    one_line(write_colmap(tmp_path / "few", n=7), "registers 7 images", "fewer than the 8")
    root = write_colmap(tmp_path / "pose")
    lines = (root / "sparse/0/images.txt").read_text().splitlines()
    lines[2] = lines[2].replace(lines[2].split()[1], "nan", 1)
    (root / "sparse/0/images.txt").write_text("\n".join(lines) + "\n")
    one_line(root, "images.txt line 3", "not a rotation")
    (tmp_path / "empty" / "images").mkdir(parents=True)
    one_line(tmp_path / "empty", "no transforms", "COLMAP model")
    one_line(tmp_path / "nowhere", "does not exist")
    root = write_nerfstudio(tmp_path / "ns")
    (root / "images" / "view_00.png").write_bytes(b"not a png")
    one_line(root, "transforms.json frames[", "view_00.png", "unreadable")


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("captures")
    root, outside = base / "root", base / "outside"
    write_colmap(root / "good")
    write_colmap(outside / "secret")
    linked = write_colmap(root / "linked")               # a photo that links out of the folder
    (linked / "images" / "view_05.png").unlink()
    (linked / "images" / "view_05.png").symlink_to(outside / "secret" / "images" / "view_05.png")
    (root / "escape").symlink_to(outside / "secret")     # a folder that links out of the root
    crafted = write_colmap(root / "crafted", binary=True)  # a count of 2^63 images in 40 bytes
    (crafted / "sparse/0/images.bin").write_bytes(struct.pack("<Q", 1 << 63) + b"\0" * 32)
    return {"base": base, "root": root, "outside": outside}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, roots: dict[str, Path]) -> Any:
    srv = ServerProcess(tmp_path_factory.mktemp("capsrv") / "jobs", "--data-root", str(roots["root"])).start()
    yield srv
    srv.stop()


def test_the_endpoint_lists_a_capture_inside_a_data_root(server: ServerProcess, roots: dict[str, Path]) -> None:
    listing = server.client().capture(str(roots["root"] / "good" / ".." / "good"))
    assert_known(listing, (roots["root"] / "good").resolve())


def test_the_endpoint_refuses_hostile_input_with_one_line(server: ServerProcess, roots: dict[str, Path]) -> None:
    c = server.client()
    messages = []
    for path in ["/etc", "/no/such/folder", str(roots["outside"] / "secret"), "~",
                 str(roots["root"] / ".." / "outside" / "secret"), str(roots["root"] / "escape")]:
        with pytest.raises(BackendError) as err:
            c.capture(path)
        assert err.value.status == 400 and "not inside a data root" in err.value.message, (path, str(err.value))
        messages.append(err.value.message.replace(f"'{path}'", "PATH"))
    assert len(set(messages)) == 1          # the same words whether the path exists or not: no oracle
    for name, words in (("linked", "lies outside the dataset folder"), ("crafted", "images.bin is truncated")):
        with pytest.raises(BackendError) as err:
            c.capture(str(roots["root"] / name))
        assert err.value.status == 400 and words in err.value.message and "\n" not in str(err.value), str(err.value)
    for body in (b"[]", b'{"dataset_dir": 3}', b'{"dataset_dir": "good", "x": 1}', b"{not json"):
        status, answer = raw(server.url, "POST", "/v1/capture", body, headers={"Content-Type": "application/json"})
        assert status == 400 and answer["error"]["code"] in ("bad_body", "bad_config", "bad_input"), (body, answer)
    good = json.dumps({"dataset_dir": str(roots["root"] / "good")}).encode()
    # a forged Host (DNS rebinding), a page's Origin, a cross-site form: refused before the route runs
    assert raw(server.url, "POST", "/v1/capture", good, headers={"Content-Type": "application/json",
                                                                  "Host": "attacker.example"})[1]["error"]["code"] \
        == "host_refused"
    assert raw(server.url, "POST", "/v1/capture", good, headers={"Content-Type": "application/json",
                                                                  "Origin": "http://127.0.0.1:1"})[1]["error"]["code"] \
        == "origin_refused"
    assert raw(server.url, "POST", "/v1/capture", good, headers={"Content-Type": "text/plain"})[1]["error"]["code"] \
        == "csrf_refused"
    assert len(c.capture(str(roots["root"] / "good"))["cameras"]) == N_VIEWS   # and it still serves


@pytest.mark.slow
def test_a_server_without_data_roots_says_how_to_give_one(tmp_path: Path) -> None:
    root = write_colmap(tmp_path / "cap")
    with ServerProcess(tmp_path / "jobs") as srv:
        with pytest.raises(BackendError) as err:
            srv.client().capture(str(root))
    assert err.value.status == 400 and "--data-root" in str(err.value)
