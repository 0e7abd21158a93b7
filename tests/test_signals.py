"""Signal loading, validation, metrics and synthetic signals, on real files (no mocks)."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nstr.errors import InputError
from nstr.signals import chirp, drifting_texture, load_image, load_wav, psnr, save_image, save_wav, skimage_image, snr_db, ssim
from nstr.signals.synthetic import drifting_texture_frequency


# ---------------------------------------------------------------- helpers: real WAV files in every layout
def _riff(fmt_tag: int, channels: int, rate: int, bits: int, payload: bytes, extensible: bool = False) -> bytes:
    block = channels * bits // 8
    if extensible:  # WAVE_FORMAT_EXTENSIBLE: the real tag is the first 2 bytes of the sub-format GUID
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * block, block, bits, 22, bits, 4)
        fmt += struct.pack("<H", fmt_tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    else:
        fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.fixture(scope="module")
def speech(data_dir: Path) -> tuple[np.ndarray, int]:
    """The real clip, read independently with the stdlib: the reference the loader must match."""
    with wave.open(str(data_dir / "audio" / "Front_Center.wav"), "rb") as wf:
        rate, frames = wf.getframerate(), wf.readframes(wf.getnframes())
    return np.frombuffer(frames, "<i2").astype(np.float64) / 32768.0, rate


# ---------------------------------------------------------------- WAV loading
def test_real_speech_loads_as_mono_float(data_dir: Path, speech: tuple[np.ndarray, int]) -> None:
    ref, rate = speech
    audio = load_wav(data_dir / "audio" / "Front_Center.wav")
    assert audio.rate == rate == 48000 and audio.bits == 16
    assert audio.samples.dtype == np.float32 and audio.samples.shape == ref.shape
    assert abs(audio.seconds - 1.428) < 0.01
    np.testing.assert_allclose(audio.samples, ref, atol=1e-7)


@pytest.mark.parametrize("bits, tag, extensible", [(24, 1, False), (32, 1, False), (32, 3, False), (64, 3, False),
                                                    (24, 1, True), (32, 3, True)])
def test_pcm_and_float_layouts_read_the_same_speech(tmp_path: Path, speech: tuple[np.ndarray, int], bits: int,
                                                     tag: int, extensible: bool) -> None:
    ref, rate = speech
    x = ref[:4000]
    if tag == 3:
        payload = x.astype("<f4" if bits == 32 else "<f8").tobytes()
    elif bits == 24:
        ints = np.round(x * 2**23).astype("<i4")
        payload = b"".join(int(v & 0xFFFFFF).to_bytes(3, "little") for v in ints)
    else:
        payload = np.round(x * 2**31).astype("<i4").tobytes()
    path = tmp_path / "clip.wav"
    path.write_bytes(_riff(tag, 1, rate, bits, payload, extensible))
    audio = load_wav(path)
    assert audio.rate == rate and audio.bits == bits
    np.testing.assert_allclose(audio.samples, x, atol=2e-7)


def test_save_then_load_round_trips_to_16_bit_precision(tmp_path: Path, speech: tuple[np.ndarray, int]) -> None:
    ref, rate = speech
    path = save_wav(tmp_path / "out" / "speech.wav", ref[:5000], rate)
    back = load_wav(path)
    assert back.rate == rate and back.samples.shape == (5000,)
    assert np.max(np.abs(back.samples - ref[:5000])) <= 1.0 / 32767
    assert load_wav(save_wav(tmp_path / "clipped.wav", np.array([2.0, -3.0] * 10), 8000)).samples.max() <= 1.0


def test_excerpt_takes_the_requested_window(data_dir: Path, speech: tuple[np.ndarray, int]) -> None:
    ref, rate = speech
    part = load_wav(data_dir / "audio" / "Front_Center.wav").excerpt(0.5, 0.1)
    assert part.samples.shape == (4800,)
    np.testing.assert_allclose(part.samples, ref[24000:28800], atol=1e-7)
    with pytest.raises(InputError, match="outside the clip"):
        part.excerpt(5.0)


def _bad_wav(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.wav"
    tone = (np.sin(np.arange(800) * 0.1) * 8000).astype("<i2")
    if kind == "stereo":
        path.write_bytes(_riff(1, 2, 8000, 16, np.repeat(tone, 2).tobytes()))
    elif kind == "8bit":
        path.write_bytes(_riff(1, 1, 8000, 8, (tone // 256 + 128).astype(np.uint8).tobytes()))
    elif kind == "no_samples":
        path.write_bytes(_riff(1, 1, 8000, 16, b""))
    elif kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "not_wav":
        path.write_bytes(b"ID3\x03\x00 this is an mp3, honestly" * 10)
    elif kind == "mulaw":
        path.write_bytes(_riff(7, 1, 8000, 8, bytes(800)))
    elif kind == "too_short":
        path.write_bytes(_riff(1, 1, 8000, 16, tone[:3].tobytes()))
    elif kind == "folder":
        path.mkdir()
    return path


@pytest.mark.parametrize("kind, message", [
    ("stereo", "2 channels.*mono.*Mix it down"),
    ("8bit", "8-bit PCM.*Convert it to 16-bit"),
    ("no_samples", "no audio samples"),
    ("zero_bytes", "is empty"),
    ("not_wav", "not a WAV file"),
    ("mulaw", "mu-law.*not supported"),
    ("too_short", "only 3 samples"),
    ("folder", "is a folder"),
])
def test_bad_wav_files_give_one_line_with_the_fix(tmp_path: Path, kind: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        load_wav(_bad_wav(tmp_path, kind))
    assert "\n" not in str(info.value) and info.value.fix


def test_missing_wav_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_wav(tmp_path / "nowhere.wav")


# ---------------------------------------------------------------- image loading
@pytest.mark.parametrize("name, channels", [("camera", 1), ("astronaut", 3)])
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_real_images_load_grey_or_rgb(tmp_path: Path, name: str, channels: int, suffix: str) -> None:
    import skimage.data

    raw = getattr(skimage.data, name)()[100:164, 200:296]
    path = tmp_path / f"{name}{suffix}"
    Image.fromarray(raw).save(path, quality=98)
    img = load_image(path)
    assert img.shape == (64, 96, channels) and img.dtype == np.float32
    ref = raw.reshape(64, 96, channels) / 255.0
    assert psnr(ref, img) > (120 if suffix == ".png" else 30)  # PNG is exact (float32 rounding), JPEG close


def test_sixteen_bit_palette_and_opaque_alpha_images(tmp_path: Path) -> None:
    import skimage.data

    cam = skimage.data.camera()[:32, :40]
    Image.fromarray(cam.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    np.testing.assert_allclose(load_image(tmp_path / "deep.png")[..., 0], cam / 255.0, atol=1e-6)
    astro = skimage.data.astronaut()[:32, :40]
    Image.fromarray(astro).convert("P").save(tmp_path / "palette.png")
    assert load_image(tmp_path / "palette.png").shape == (32, 40, 3)
    Image.fromarray(astro).convert("RGBA").save(tmp_path / "opaque.png")
    np.testing.assert_allclose(load_image(tmp_path / "opaque.png"), astro / 255.0, atol=1e-6)


def _bad_image(tmp_path: Path, kind: str) -> Path:
    import skimage.data

    astro = skimage.data.astronaut()[:32, :32]
    path = tmp_path / f"{kind}.png"
    if kind == "one_pixel":
        Image.fromarray(astro[:1, :1]).save(path)
    elif kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "gif":
        path = tmp_path / "anim.gif"
        Image.fromarray(astro).save(path)
    elif kind == "bmp_named_png":
        Image.fromarray(astro).save(path, format="BMP")
    elif kind == "text":
        path.write_text("not an image at all\n" * 20)
    elif kind == "truncated":
        Image.fromarray(astro).save(path)
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "transparent":
        rgba = np.dstack([astro, np.full(astro.shape[:2], 128, np.uint8)])
        Image.fromarray(rgba).save(path)
    return path


@pytest.mark.parametrize("kind, message", [
    ("one_pixel", "1 x 1 pixels, too small"),
    ("zero_bytes", "is empty"),
    ("gif", "GIF image; only PNG and JPEG"),
    ("bmp_named_png", "BMP image; only PNG and JPEG"),
    ("text", "not an image"),
    ("truncated", "could not be decoded"),
    ("transparent", "transparent pixels"),
])
def test_bad_images_give_one_line_with_the_fix(tmp_path: Path, kind: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        load_image(_bad_image(tmp_path, kind))
    assert "\n" not in str(info.value) and info.value.fix


def test_save_image_round_trips_and_refuses_unknown_extensions(tmp_path: Path) -> None:
    img = skimage_image("astronaut", 32, 128)
    back = load_image(save_image(tmp_path / "a.png", img))
    assert np.max(np.abs(back - img)) <= 0.5 / 255 + 1e-6
    with pytest.raises(InputError, match="unsupported extension '.tif'"):
        save_image(tmp_path / "a.tif", img)


# ---------------------------------------------------------------- metrics
def test_psnr_and_snr_follow_their_definitions(speech: tuple[np.ndarray, int]) -> None:
    from skimage.metrics import peak_signal_noise_ratio

    img = skimage_image("camera", 64, 256)
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 0.05, img.shape), 0, 1)
    assert psnr(img, noisy) == pytest.approx(peak_signal_noise_ratio(img, noisy, data_range=1.0), abs=1e-4)
    assert psnr(np.zeros((8, 8)), np.full((8, 8), 0.1)) == pytest.approx(20.0)
    assert psnr(img, img) == float("inf")
    x = speech[0]
    assert snr_db(x, 0.9 * x) == pytest.approx(20.0)  # error = 0.1 x
    assert snr_db(x, x + 0.5 * x) == pytest.approx(10 * np.log10(4))


def test_ssim_ranks_a_blurred_picture_below_a_sharp_one() -> None:
    from scipy.ndimage import gaussian_filter

    img = skimage_image("astronaut", 64, 256)
    assert ssim(img, img) == pytest.approx(1.0)
    mild = np.stack([gaussian_filter(img[..., c], 0.7) for c in range(3)], -1)
    strong = np.stack([gaussian_filter(img[..., c], 2.0) for c in range(3)], -1)
    assert 1.0 > ssim(img, mild) > ssim(img, strong) > 0.0
    assert 0.0 < ssim(img[:9, :9], mild[:9, :9]) < 1.0  # small images shrink the window, not crash


# ---------------------------------------------------------------- synthetic signals
def test_chirp_sweeps_its_frequency_range() -> None:
    audio = chirp(8000, 16000, 200.0, 4000.0)
    x = audio.samples

    def freq(seg: np.ndarray) -> float:  # zero crossings per second / 2
        return np.count_nonzero(np.diff(np.signbit(seg))) / 2 / (len(seg) / audio.rate)

    assert freq(x[:400]) == pytest.approx(295, rel=0.15)  # mean over the first 25 ms
    assert freq(x[-400:]) == pytest.approx(3905, rel=0.05)
    assert np.max(np.abs(x)) <= 0.8 + 1e-6


def test_drifting_texture_tightens_from_left_to_right() -> None:
    tex = drifting_texture(96, 0.03, 0.25)[..., 0]
    assert tex.shape == (96, 96) and 0.09 < tex.min() and tex.max() < 0.91

    def dominant(block: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(block - block.mean(), n=1024))
        return float(np.argmax(spec)) / 1024

    row = tex[48]
    assert dominant(row[:24]) < 0.1 < 0.18 < dominant(row[-24:])
    truth = drifting_texture_frequency(96, 0.03, 0.25)
    assert truth[:, 0].max() < 0.04 and truth[:, -1].min() > 0.24


def test_skimage_pictures_are_cropped_and_resized() -> None:
    for name, c in (("camera", 1), ("astronaut", 3), ("brick", 1), ("grass", 1)):
        img = skimage_image(name, 48, 192)
        assert img.shape == (48, 48, c) and 0.0 <= img.min() and img.max() <= 1.0 and img.std() > 0.02
    with pytest.raises(InputError, match="unknown scikit-image picture"):
        skimage_image("lena")


# ---------------------------------------------------------------- coordinates and units shared by the tasks
def test_pixel_centres_keep_the_aspect_ratio() -> None:
    from nstr.signals.fitting import grid_coordinates, samples_per_unit, with_band_limit
    from nstr.config import FieldConfig

    xy = grid_coordinates((4, 8)).reshape(4, 8, 2)  # H = 4 rows, W = 8 columns
    assert xy[0, 0].tolist() == pytest.approx([-7 / 8, -3 / 8]) and xy[-1, -1].tolist() == pytest.approx([7 / 8, 3 / 8])
    assert np.allclose(np.diff(xy[..., 0], axis=1), 0.25) and np.allclose(np.diff(xy[..., 1], axis=0), 0.25)
    assert samples_per_unit((4, 8)) == 4.0
    cfg = with_band_limit(FieldConfig(), (4000,))
    assert cfg.max_freq == 1000.0 and cfg.grid_max_res == 4000  # Nyquist: 4000 samples over 2 units
    kept = with_band_limit(FieldConfig(max_freq=7.0, grid_max_res=9), (4000,))
    assert (kept.max_freq, kept.grid_max_res) == (7.0, 9)
