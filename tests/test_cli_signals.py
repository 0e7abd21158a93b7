"""``nstr fit image`` / ``nstr fit audio`` as a user runs them: a real subprocess, real files, tiny fits."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nstr.tasks.skeleton import REPORT_KEYS

CONTRACT_KEYS = set(REPORT_KEYS)   # every task's report starts with these (one builder: TaskRun.report)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NSTR_DEBUG": ""}


def nstr(*args: str | Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nstr", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


@pytest.fixture(scope="module")
def camera_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import skimage.data

    path = tmp_path_factory.mktemp("img") / "camera.png"
    Image.fromarray(skimage.data.camera()[180:204, 220:252]).save(path)  # 32 x 24, the cameraman's head
    return path


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """20 ms of the real speech clip, from its loudest part."""
    with wave.open(str(data_dir / "audio" / "Front_Center.wav"), "rb") as wf:
        rate, x = wf.getframerate(), np.frombuffer(wf.readframes(wf.getnframes()), "<i2")
    start = int(np.argmax(np.abs(x)))
    path = tmp_path_factory.mktemp("wav") / "speech.wav"
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1), wf.setsampwidth(2), wf.setframerate(rate)
        wf.writeframes(x[start - 480:start + 480].tobytes())
    return path


def test_top_level_help_lists_every_command() -> None:
    r = nstr("--help")
    assert r.returncode == 0, r.stderr
    for word in ("fit", "serve", "submit", "jobs", "COMMAND --help"):
        assert word in r.stdout


@pytest.mark.parametrize("task, words", [
    ("image", ("PNG", "JPEG", "PSNR", "SSIM", "_compare.png", "_flow.png")),
    ("audio", ("WAV", "SNR", "--start", "--duration", "_compare.png", "_flow.png")),
])
def test_fit_help_documents_the_contract(task: str, words: tuple[str, ...]) -> None:
    r = nstr("fit", task, "--help")
    assert r.returncode == 0, r.stderr
    for flag in ("INPUT", "-o", "--output", "--model", "nstr,siren,ffn,hashgrid", "--preset", "quick,default,high",
                 "--steps", "--params", "--device", "auto,cpu,cuda", "--seed", "--report", "--set", "--checkpoint",
                 *words):
        assert flag in r.stdout, f"'{flag}' missing from 'nstr fit {task} --help'"


@pytest.mark.slow
def test_image_fit_writes_reconstruction_pictures_and_report(tmp_path: Path, camera_png: Path) -> None:
    out, rep = tmp_path / "res" / "head.png", tmp_path / "head.json"
    r = nstr("fit", "image", camera_png, "-o", out, "--preset", "quick", "--steps", "60", "--params", "3000",
             "--device", "cpu", "--seed", "3", "--report", rep)
    assert r.returncode == 0, r.stderr
    assert "step 60/60" in r.stderr and "ETA" in r.stderr  # the progress bar
    report = json.loads(rep.read_text())
    assert CONTRACT_KEYS <= report.keys() and {"fitting", "predicting"} <= set(report["timings"])
    assert report["task"] == "image" and report["model"] == "nstr" and report["steps"] == 60
    assert abs(report["params"] - 3000) <= 150 and report["device"] == "cpu" and report["seconds"] > 0
    assert report["config"]["train"]["seed"] == 3
    assert report["config"]["field"]["max_freq"] == 32 / 4  # Nyquist of the 32-pixel side
    rec = np.asarray(Image.open(out), dtype=np.float64) / 255.0
    ref = np.asarray(Image.open(camera_png), dtype=np.float64) / 255.0
    assert rec.shape == ref.shape == (24, 32)
    measured = -10 * np.log10(np.mean((rec - ref) ** 2))
    assert abs(measured - report["metrics"]["psnr"]) < 0.3  # the report tells the truth about the file
    assert report["metrics"]["psnr"] > 20 and 0 < report["metrics"]["ssim"] <= 1
    assert set(report["pictures"]) == {"compare", "flow"}
    for path in report["pictures"].values():
        with Image.open(path) as pic:
            assert pic.size[0] > 300 and pic.size[1] > 200
    assert 0 <= report["spectral"]["pde_relative"] and "gain" in report["spectral"]["transport_prediction"]


@pytest.mark.slow
def test_baseline_image_fit_gets_the_measured_flow(tmp_path: Path, camera_png: Path) -> None:
    rep = tmp_path / "r.json"
    r = nstr("fit", "image", camera_png, "-o", tmp_path / "h.jpg", "--model", "hashgrid", "--preset", "quick",
             "--steps", "40", "--device", "cpu", "--report", rep, "--quiet", "--flow", tmp_path / "f.npz")
    assert r.returncode == 0, r.stderr
    report = json.loads(rep.read_text())
    assert report["model"] == "hashgrid" and set(report["pictures"]) == {"compare", "flow"} and "spectral" not in report
    with np.load(tmp_path / "f.npz", allow_pickle=False) as z:
        assert set(z.files) == {"local_frequency", "bandwidth", "drift", "meta_json"}  # measured readout only
        assert z["local_frequency"].shape == (24, 32) and z["drift"].shape == (24, 32, 2)
        assert json.loads(z["meta_json"].tobytes())["units"]["local_frequency"] == "cycles per pixel"
    assert r.stderr == ""  # --quiet: no progress bar


@pytest.mark.slow
def test_audio_fit_writes_wav_pictures_and_report(tmp_path: Path, speech_wav: Path) -> None:
    out, rep = tmp_path / "speech_fit.wav", tmp_path / "speech.json"
    r = nstr("fit", "audio", speech_wav, "-o", out, "--preset", "quick", "--steps", "60", "--params", "3000",
             "--device", "cpu", "--report", rep)
    assert r.returncode == 0, r.stderr
    report = json.loads(rep.read_text())
    assert CONTRACT_KEYS <= report.keys() and report["task"] == "audio" and report["steps"] == 60
    with wave.open(str(out), "rb") as wf:
        assert wf.getnchannels() == 1 and wf.getframerate() == 48000 and wf.getnframes() == 960
        rec = np.frombuffer(wf.readframes(960), "<i2") / 32768.0
    with wave.open(str(speech_wav), "rb") as wf:
        ref = np.frombuffer(wf.readframes(960), "<i2") / 32768.0
    measured = 10 * np.log10(np.sum(ref**2) / np.sum((ref - rec) ** 2))
    assert abs(measured - report["metrics"]["snr_db"]) < 0.5
    assert report["metrics"]["snr_db"] > 3  # better than predicting silence (0 dB)
    assert set(report["pictures"]) == {"compare", "flow"} and all(Path(p).is_file() for p in report["pictures"].values())


@pytest.mark.slow
def test_audio_excerpt_flags_cut_the_clip(tmp_path: Path, speech_wav: Path) -> None:
    rep = tmp_path / "e.json"
    r = nstr("fit", "audio", speech_wav, "-o", tmp_path / "e.wav", "--model", "ffn", "--preset", "quick",
             "--steps", "10", "--device", "cpu", "--start", "0.005", "--duration", "0.01", "--report", rep,
             "--quiet", "--no-pictures")
    assert r.returncode == 0, r.stderr
    report = json.loads(rep.read_text())
    assert report["signal"]["samples"] == 480 and report["pictures"] == {}


@pytest.mark.slow
def test_image_fit_resumes_from_its_checkpoint(tmp_path: Path, camera_png: Path) -> None:
    ckpt, rep = tmp_path / "fit.ckpt", tmp_path / "r.json"
    common = ["fit", "image", camera_png, "-o", tmp_path / "r.png", "--model", "ffn", "--preset", "quick",
              "--device", "cpu", "--checkpoint", ckpt, "--report", rep, "--quiet", "--no-pictures"]
    assert nstr(*common, "--steps", "20").returncode == 0 and ckpt.is_file()
    first = json.loads(rep.read_text())
    r = nstr(*common, "--steps", "40")
    assert r.returncode == 0, r.stderr
    second = json.loads(rep.read_text())
    assert second["steps"] == 40
    steps = [row["step"] for row in second["history"]]
    assert steps[0] == 10 and steps[-1] == 40 and steps == sorted(set(steps))  # one curve, continued
    assert second["history"][1]["loss"] == pytest.approx(first["history"][1]["loss"])  # the first 20 steps kept


# ---------------------------------------------------------------- bad input: one line, non-zero exit, no traceback
def _wav_bytes(channels: int, bits: int, n: int = 400) -> bytes:
    payload = bytes(n * channels * bits // 8) if n else b""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, 8000, 8000 * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _make(tmp_path: Path, kind: str, camera_png: Path) -> list[str]:
    """The argument list for one bad invocation."""
    img, snd = ["fit", "image"], ["fit", "audio"]
    out = ["-o", str(tmp_path / "o.png")]
    if kind == "missing_image":
        return [*img, str(tmp_path / "nope.png"), *out]
    if kind == "folder_image":
        return [*img, str(tmp_path), *out]
    if kind == "gif":
        p = tmp_path / "x.gif"
        Image.open(camera_png).save(p)
        return [*img, str(p), *out]
    if kind == "empty_image":
        (tmp_path / "e.png").write_bytes(b"")
        return [*img, str(tmp_path / "e.png"), *out]
    if kind == "one_pixel_image":
        Image.fromarray(np.zeros((1, 1), np.uint8)).save(tmp_path / "1.png")
        return [*img, str(tmp_path / "1.png"), *out]
    if kind == "stereo_wav":
        (tmp_path / "s.wav").write_bytes(_wav_bytes(2, 16))
        return [*snd, str(tmp_path / "s.wav"), "-o", str(tmp_path / "o.wav")]
    if kind == "8bit_wav":
        (tmp_path / "b.wav").write_bytes(_wav_bytes(1, 8))
        return [*snd, str(tmp_path / "b.wav"), "-o", str(tmp_path / "o.wav")]
    if kind == "empty_wav":
        (tmp_path / "z.wav").write_bytes(_wav_bytes(1, 16, 0))
        return [*snd, str(tmp_path / "z.wav"), "-o", str(tmp_path / "o.wav")]
    if kind == "silent_wav":
        (tmp_path / "q.wav").write_bytes(_wav_bytes(1, 16, 400))
        return [*snd, str(tmp_path / "q.wav"), "-o", str(tmp_path / "o.wav")]
    if kind == "png_as_audio":
        return [*snd, str(camera_png), "-o", str(tmp_path / "o.wav")]
    if kind == "output_is_input":
        return [*img, str(camera_png), "-o", str(camera_png)]
    if kind == "bad_output_ext":
        return [*img, str(camera_png), "-o", str(tmp_path / "o.bmp")]
    flags = {"steps_word": ["--steps", "many"], "steps_zero": ["--steps", "0"], "model": ["--model", "resnet"],
             "preset": ["--preset", "fast"], "device": ["--device", "tpu"], "params_small": ["--params", "5"],
             "set_type": ["--set", "field.n_freqs=lots"], "set_unknown": ["--set", "field.colour=red"],
             "set_syntax": ["--set", "n_freqs"], "cuda_absent": ["--device", "cuda"]}[kind]
    return [*img, str(camera_png), *out, "--preset", "quick", *flags]


BAD = {
    "missing_image": "does not exist", "folder_image": "is a folder", "gif": "GIF image; only PNG and JPEG",
    "empty_image": "is empty", "one_pixel_image": "too small", "stereo_wav": "2 channels; NSTR fits mono",
    "8bit_wav": "8-bit PCM", "empty_wav": "no audio samples", "silent_wav": "silent",
    "png_as_audio": "not a WAV file", "output_is_input": "destroy your data", "bad_output_ext": "'.bmp'",
    "steps_word": "'many' is not a whole number", "steps_zero": "must be 1 or more", "model": "invalid choice",
    "preset": "invalid choice", "device": "invalid choice", "params_small": "at least 100",
    "set_type": "must be an integer", "set_unknown": "unknown config key 'field.colour'",
    "set_syntax": "not KEY=VALUE", "cuda_absent": "CUDA",
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_input_gives_one_line_and_a_nonzero_exit(tmp_path: Path, camera_png: Path, kind: str) -> None:
    if kind == "cuda_absent":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    r = nstr(*_make(tmp_path, kind, camera_png))
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert BAD[kind] in lines[0], lines[0]
    assert camera_png.is_file() and camera_png.stat().st_size > 0  # the user's input is never touched


@pytest.mark.parametrize("task", ["sdf", "nerf"])
def test_mesh_fit_help_says_what_the_code_does(task: str) -> None:
    """The claims in `nstr fit sdf|nerf --help` that can drift from the code: every model gets the
    detail maps (they once said "NSTR only"), and the resolution ranges are the presets' own."""
    from nstr.tasks.sdf import sdf_config

    r = nstr("fit", task, "--help")
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "NSTR only" not in text and "detail maps" in text
    if task == "sdf":
        for preset in ("quick", "default", "high"):
            t = sdf_config(preset).task
            assert f"{preset} {t.resolution_min}-{t.resolution_max}" in text
