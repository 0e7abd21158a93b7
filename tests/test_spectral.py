"""The measured local frequency against known answers (issue 9): analytic chirps, the drifting
texture, the chirp-heightfield slab and its flat control, a x10 scaled mesh, fitted fields with
two seeds, and ``--flow`` as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from nstr.signals.synthetic import chirp, drifting_texture, drifting_texture_frequency
from nstr.spectral.measured import image_local_frequency, per_sample, signal_local_frequency
from nstr.validation.scores import calibration_slope, cv, relative_error, spearman, weighted_cosine

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NSTR_DEBUG": ""}
RATE, N = 16000, 4096


def _inner(n: int, frac: float = 0.05) -> slice:
    return slice(int(n * frac), n - int(n * frac))


def test_chirp_reads_its_instantaneous_frequency_in_hz() -> None:
    for f0, f1 in ((200.0, 4000.0), (5000.0, 300.0)):  # rising chirp and a downward sweep
        a = chirp(N, RATE, f0, f1)
        out = per_sample(signal_local_frequency(a.samples, RATE), N, RATE)
        truth = np.linspace(f0, f1, N, endpoint=False)
        m = _inner(N)
        nu = out["local_frequency"][m]
        assert spearman(nu, truth[m]) > 0.99
        assert 0.95 < calibration_slope(nu, truth[m]) < 1.05
        assert relative_error(nu, truth[m]) < 0.05
        assert abs(np.median(out["drift"][m]) / ((f1 - f0) / (N / RATE)) - 1) < 0.1  # Hz per second


def test_constant_frequency_control_stays_flat() -> None:
    t = np.arange(N) / RATE
    out = signal_local_frequency(np.sin(2 * np.pi * 1000.0 * t), RATE)
    nu = out["local_frequency"][4:-4]
    assert cv(nu) < 0.01 and abs(nu.mean() - 1000.0) < 10.0
    grating = 0.5 + 0.4 * np.sin(2 * np.pi * 0.15 * np.mgrid[0:64, 0:64][1])
    img = image_local_frequency(grating)["local_frequency"][12:-12, 12:-12]
    assert cv(img) < 0.05 and abs(img.mean() - 0.15) < 0.01
    silence = signal_local_frequency(np.zeros(N), RATE)["local_frequency"]
    # no detail reads the prior exactly: one cycle per window (32 ms: 512 samples at 16 kHz)
    np.testing.assert_allclose(silence, RATE / round(0.032 * RATE), rtol=1e-12)


def test_drifting_texture_reads_cycles_per_pixel_and_its_drift() -> None:
    size, f0, f1 = 64, 0.03, 0.25
    out = image_local_frequency(drifting_texture(size, f0, f1))
    truth = drifting_texture_frequency(size, f0, f1)
    m = np.zeros_like(truth, bool)
    m[12:-12, 12:-12] = True
    nu = out["local_frequency"][m]
    assert spearman(nu, truth[m]) > 0.99 and 0.9 < calibration_slope(nu, truth[m]) < 1.1
    assert weighted_cosine(out["drift"][m], np.tile([1.0, 0.0], (m.sum(), 1))) > 0.9  # it drifts along +x


def _slab_readout(scale: float, control: bool = False, res: int = 64):  # noqa: ANN202
    """The detail maps of a chirp slab meshed on a res^3 grid (the mesh a fit at that resolution gives)."""
    from nstr.geometry.attributes import spectral_attributes
    from nstr.geometry.normalize import fit_unit_box
    from nstr.validation.surfaces import SurfaceCase

    case = SurfaceCase("slab", "slab", 3.0, 8.0, 0.02, scale=scale, control=control)
    v, f = case.mesh(res)
    tr = fit_unit_box(v, 0.1)
    arrays, meta = spectral_attributes(None, tr.to_unit(v), f, tr.scale, voxel=2.0 / (res - 1))
    return case, v, arrays, meta


@pytest.mark.parametrize("name", ["threaded_rod", "knurled_rod"])
def test_threaded_and_knurled_rods_read_their_pitch(name: str) -> None:
    """A single-start thread and a diamond knurl whose pitch rises 3 -> 8 cycles per unit along the rod: the
    detail maps follow the helices' surface frequency (the pitch and the turn around the rod together), so
    the periodic cases that issue 28 fits are scored against a truth the maps can read."""
    from nstr.geometry.attributes import spectral_attributes
    from nstr.geometry.normalize import fit_unit_box
    from nstr.validation.surfaces import CASES

    case = CASES[name]
    v, f = case.mesh(96)
    assert len(f) == 2 * len(v) - 4  # closed, genus 0
    tr = fit_unit_box(v, 0.1)
    a, _ = spectral_attributes(None, tr.to_unit(v), f, tr.scale, voxel=2.0 / 95)
    truth, grad, mask = case.truth(v)
    nu = a["local_frequency"][mask]
    assert np.mean(nu > 0) > 0.95 and spearman(nu[nu > 0], truth[mask][nu > 0]) > 0.95
    z = v[mask][:, 2]
    edges = np.linspace(-0.65, 0.65, 7)
    for lo, hi in zip(edges[:-1], edges[1:]):  # every sixth of the textured length: the median within 10 %
        m = (z >= lo) & (z < hi)
        assert abs(np.median(nu[m]) / np.median(truth[mask][m]) - 1) < 0.1, (lo, np.median(nu[m]))
    assert weighted_cosine(a["drift"][mask], grad[mask]) > 0.8  # toward the finer pitch: +z


def test_chirp_slab_frequency_and_drift_follow_the_truth_at_any_size() -> None:
    """local_frequency = 1 / the detail maps' wavelength, drift = its log2 gradient (octaves per unit)."""
    case, v, a, meta = _slab_readout(1.0)
    truth, grad, mask = case.truth(v)
    nu = a["local_frequency"][mask]
    assert np.mean(nu > 0) > 0.9 and spearman(nu[nu > 0], truth[mask][nu > 0]) > 0.95
    x = v[mask][:, 0]
    edges = np.linspace(x.min(), x.max(), 9)
    for lo, hi in zip(edges[1:-2], edges[2:-1]):  # the chirp's inner bins: the median within 15% of the truth
        m = (x >= lo) & (x < hi)
        assert abs(np.median(nu[m]) / np.median(truth[mask][m]) - 1) < 0.15, (lo, np.median(nu[m]))
    assert weighted_cosine(a["drift"][mask], grad[mask]) > 0.8  # toward finer detail: +x
    assert meta["units"]["local_frequency"] == "cycles per unit of input length" and "local_frequency" in meta["descriptions"]
    assert meta["units"]["drift"].startswith("octaves per unit")
    case10, v10, a10, _ = _slab_readout(10.0)
    np.testing.assert_allclose(v10, v * 10.0)
    both = (a["local_frequency"] > 0) & (a10["local_frequency"] > 0)
    ratio = a["local_frequency"][both] / a10["local_frequency"][both]
    # x10 the mesh: frequency / 10, and drift (octaves per unit) / 10 too, not / 100
    assert abs(np.median(ratio) - 10.0) < 0.01 and np.mean(np.abs(ratio - 10.0) < 0.01 * 10.0) > 0.97
    moving = mask & (a10["drift_magnitude"] > 0)
    assert abs(np.median(a["drift_magnitude"][moving] / a10["drift_magnitude"][moving]) - 10.0) < 0.1
    _, vc, ac, metac = _slab_readout(1.0, control=True)
    _, _, mc = case.truth(vc)
    none = metac["detail"]["states"]["none"]
    # the flat control: no detail, so no frequency (0) and no drift, where a window readout made one up
    assert np.mean(ac["detail_state"][mc] == none) > 0.95 and np.mean(ac["local_frequency"][mc] == 0) > 0.95


def test_drift_smoothing_keeps_a_linear_ramp_and_stays_on_the_vertices_with_detail() -> None:
    """The drift's smoothing of log2(frequency) (nstr.spectral.detail_flow._ring_mean, an implicit heat
    step): a smoothing that keeps what it must keeps a linear ramp (the exponential chirp's exact log
    frequency) unchanged away from the edges, never averages in the vertices without detail, and leaves
    them at 0."""
    from nstr.spectral.detail_flow import _ring_mean

    n = 61
    s = np.linspace(-1.0, 1.0, n)
    x, y = np.meshgrid(s, s, indexing="ij")
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    x, y = x.ravel(), y.ravel()
    ramp = 2.0 + 0.7 * x
    has = x < 0.5                                            # no detail on the right: weight 0
    values = np.where(has, ramp, 100.0)                      # what a vertex without detail holds must not leak
    out = _ring_mean(values, has.astype(float), faces, steps=20)   # about 3 edges wide
    inner = (np.abs(x) < 0.2) & (np.abs(y) < 0.4)            # 9+ edges from every edge of the region
    np.testing.assert_allclose(out[inner], ramp[inner], atol=2e-3)
    assert np.all(out[~has] == 0.0)
    assert out[has].max() < ramp[has].max() + 1e-6           # 100 never came in
    # vertex-to-vertex noise (a checkerboard of +-0.2) is smoothed away: one implicit heat step alone
    # left 0.01 of it, 20 rounds of averaging 0.0003
    rough = np.where(has, ramp + 0.2 * (-1.0) ** idx.ravel(), 0.0)
    smooth = _ring_mean(rough, has.astype(float), faces, steps=20)
    assert np.abs(smooth[inner] - ramp[inner]).max() < 2e-3


@pytest.fixture(scope="module")
def chirp_fits():  # noqa: ANN201
    """NSTR fitted (tiny) to a 1-D chirp with two seeds."""
    import torch

    from nstr.tasks.audio import audio_config, audio_flow, fit_audio

    torch.set_num_threads(1)
    a = chirp(2048, 8000, 200.0, 1800.0)
    out = []
    for seed in (0, 1):
        cfg = audio_config("quick", {"steps": 250, "seed": seed, "device": "cpu", "batch_size": 2048})
        res = fit_audio(a, cfg)
        out.append((res, audio_flow(res)))
    return a, out


@pytest.mark.slow
def test_fitted_chirp_measured_frequency_matches_truth_and_seeds_agree(chirp_fits) -> None:  # noqa: ANN001
    a, fits = chirp_fits
    n = len(a.samples)
    truth = np.linspace(200.0, 1800.0, n, endpoint=False)
    m = _inner(n, 0.1)
    for res, flow in fits:
        assert res.metrics["snr_db"] > 10, res.metrics
        assert flow["time_s"].shape == (n,) and abs(flow["time_s"][-1] - (n - 1) / 8000) < 1e-6
        nu = flow["local_frequency"][m]
        assert spearman(nu, truth[m]) > 0.9 and 0.8 < calibration_slope(nu, truth[m]) < 1.25
        assert relative_error(nu, truth[m]) < 0.25
        assert {"spectral_frequency", "transport_drift", "drift_exact", "transport_residual"} <= flow.keys()
    assert spearman(fits[0][1]["local_frequency"][m], fits[1][1]["local_frequency"][m]) > 0.9


def _write_chirp_wav(path: Path) -> None:
    x = (chirp(1600, 8000, 300.0, 2500.0).samples * 32767).astype("<i2")
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1), wf.setsampwidth(2), wf.setframerate(8000)
        wf.writeframes(x.tobytes())


@pytest.mark.slow
def test_flow_option_writes_units_and_refuses_inputs(tmp_path: Path) -> None:
    wav = tmp_path / "chirp.wav"
    _write_chirp_wav(wav)
    original = wav.read_bytes()
    flow, out = tmp_path / "flow.npz", tmp_path / "fit.wav"

    def nstr(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "nstr", "fit", "audio", *map(str, args)], capture_output=True,
                              text=True, timeout=240, env=ENV)

    r = nstr(wav, "-o", out, "--flow", wav)  # the input itself
    assert r.returncode != 0 and "flow" in r.stderr and r.stderr.count("\n") == 1
    fake = tmp_path / "clip.npz"  # an input that does end in .npz cannot be the flow either
    r = nstr(wav, "-o", out, "--flow", out.with_suffix(".npz"), "--report", out.with_suffix(".npz"))
    assert r.returncode != 0 and "same file" in r.stderr
    assert wav.read_bytes() == original and not fake.exists()
    r = nstr(wav, "-o", out, "--flow", flow, "--model", "hashgrid", "--preset", "quick", "--steps", "60",
             "--device", "cpu", "--quiet", "--no-pictures")
    assert r.returncode == 0, r.stderr
    with np.load(flow, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    meta = json.loads(data.pop("meta_json").tobytes())
    assert {"time_s", "local_frequency", "bandwidth", "drift"} == set(data)  # a baseline: the measured readout
    assert all(v.shape == (1600,) for v in data.values())
    assert meta["units"]["local_frequency"] == "Hz" and meta["units"]["drift"] == "Hz per second"
    assert 0 < np.median(data["local_frequency"]) < 4000


def test_a_speck_below_the_window_keeps_finite_attributes_and_leaves_the_surface_alone() -> None:
    """Marching cubes leaves 6-vertex closed blobs where a fitted field dips below zero at one grid point
    (Suzanne at 384^3 had hundreds). Their normals cancel when smoothed; the readout must stay finite,
    with unit normals, and the real surface's values must not change."""
    import warnings

    import trimesh

    from nstr.spectral.measured import SurfaceWindow, surface_local_frequency

    sphere = trimesh.creation.icosphere(5, radius=0.5)
    h, c = 0.002, np.array([0.0, 0.0, 0.0])  # a speck inside the sphere, like one in an eye socket
    speck_v = c + h * np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    speck_f = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    v = np.concatenate([sphere.vertices, speck_v])
    f = np.concatenate([sphere.faces, speck_f + len(sphere.vertices)])
    assert trimesh.Trimesh(speck_v, speck_f).is_watertight and trimesh.Trimesh(speck_v, speck_f).volume > 0

    def sdf(p: np.ndarray) -> np.ndarray:
        return np.linalg.norm(p, axis=1) - 0.5

    window = SurfaceWindow(half_width=0.6)  # normals smoothed over 0.3: 252 averaging steps at this edge length
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in a cast is an error here
        both = surface_local_frequency(sdf, v, f, window, max_points=10_000)
    alone = surface_local_frequency(sdf, sphere.vertices, sphere.faces, window, max_points=10_000)
    assert all(np.isfinite(val).all() for val in both.values())
    np.testing.assert_allclose(np.linalg.norm(both["normals"], axis=1), 1.0, atol=1e-5)
    n = len(sphere.vertices)
    # the same to float32 round-off (the chunk holding the speck is batched differently)
    np.testing.assert_allclose(both["local_frequency"][:n], alone["local_frequency"], rtol=2e-4)


@pytest.mark.parametrize("spectrum", ["grid", "mlp"])
def test_drift_exact_is_the_autograd_gradient_of_the_local_frequency(spectrum: str) -> None:
    """A known answer, not a range (issue 30, item 7): ``drift_exact`` is grad nu through the field's own
    Jacobian of S (the hash grid's analytic one, or the MLP's forward-mode one); autograd through S(x)
    must give the same vector. Trained a few steps first, so S is not its constant start."""
    import torch

    from nstr.config import FieldConfig
    from nstr.fields import build_field
    from nstr.spectral.flow import flow_from_state

    torch.manual_seed(0)
    field = build_field(FieldConfig(model="nstr", n_freqs=8, spectrum=spectrum, grid_levels=3, grid_max_res=16,
                                    grid_table_size=128, width=16, max_freq=4), 2, 1).double()
    with torch.no_grad():
        for p in field.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = (torch.rand(64, 2, dtype=torch.float64) * 1.6 - 0.8).requires_grad_(True)
    flow = flow_from_state(field.spectral_state(x))
    (grad,) = torch.autograd.grad(flow["local_frequency"].sum(), x)
    exact = flow["drift_exact"].detach().numpy()
    assert np.abs(grad.numpy() - exact).max() <= 1e-6 * np.abs(grad.numpy()).max()
    assert np.abs(grad.numpy()).max() > 1e-3            # not two zeros
