"""WAV files in and out: mono 16/24/32-bit PCM or 32/64-bit float, as float32 samples in [-1, 1].

Python 3.11's ``wave`` module reads only plain PCM (format tag 1); it rejects IEEE float (3) and
WAVE_FORMAT_EXTENSIBLE (0xFFFE) headers, which audio editors write by default for 24-bit and float.
So the RIFF chunks are read here with ``struct`` + numpy, and ``wave`` writes the 16-bit PCM output.
"""

from __future__ import annotations

import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nstr.errors import InputError
from nstr.paths import check_readable_file, check_writable_output

PCM, IEEE_FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
MIN_SAMPLES = 16
MONO_FIX = "Mix it down to mono first, e.g. 'ffmpeg -i in.wav -ac 1 out.wav' or 'sox in.wav -c 1 out.wav'"
CONVERT_FIX = "Convert it to 16-bit PCM WAV, e.g. 'ffmpeg -i in.wav -ac 1 -c:a pcm_s16le out.wav'"


@dataclass
class Audio:
    """Mono samples in [-1, 1] and their rate."""

    samples: np.ndarray  # (N,) float32
    rate: int  # samples per second
    bits: int = 16  # of the source file, for the report
    encoding: str = "pcm"  # pcm | float

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate

    def excerpt(self, start_s: float = 0.0, duration_s: float | None = None) -> "Audio":
        """A time window of the clip (the benchmark and quick fits use short excerpts)."""
        if start_s < 0 or start_s >= self.seconds:
            raise InputError(f"start {start_s:g} s is outside the clip (0 to {self.seconds:.3f} s)",
                             "Choose a start inside the clip")
        a = int(round(start_s * self.rate))
        b = len(self.samples) if duration_s is None else min(len(self.samples), a + int(round(duration_s * self.rate)))
        if b - a < MIN_SAMPLES:
            raise InputError(f"the excerpt holds {b - a} samples, too few to fit",
                             f"Ask for at least {MIN_SAMPLES / self.rate * 1000:.2f} ms")
        return Audio(self.samples[a:b].copy(), self.rate, self.bits, self.encoding)


def load_wav(path: str | Path) -> Audio:
    """Read a mono WAV file; anything else is an :class:`InputError` naming the problem and the fix."""
    path = Path(path)
    check_readable_file(path, "a WAV")
    data = path.read_bytes()
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        raise InputError(f"'{path.name}' is not a WAV file (no RIFF/WAVE header)",
                         "Pass a WAV file; convert others with 'ffmpeg -i INPUT -ac 1 -c:a pcm_s16le out.wav'")
    if data[:4] == b"RIFX":
        raise InputError(f"'{path.name}' is a big-endian (RIFX) WAV", CONVERT_FIX)
    fmt, payload = _chunks(data, path)
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]  # the sub-format GUID starts with the real tag
    if channels != 1:
        raise InputError(f"'{path.name}' has {channels} channels; NSTR fits mono audio", MONO_FIX)
    if rate <= 0:
        raise InputError(f"'{path.name}' declares a sample rate of {rate} Hz", "Re-export the file")
    if tag == PCM and bits == 8:
        raise InputError(f"'{path.name}' is 8-bit PCM, which is not supported", CONVERT_FIX)
    if tag == PCM and bits in (16, 24, 32):
        samples = _pcm(payload, bits)
        encoding = "pcm"
    elif tag == IEEE_FLOAT and bits in (32, 64):
        n = len(payload) // (bits // 8)
        samples = np.frombuffer(payload[: n * bits // 8], dtype="<f4" if bits == 32 else "<f8").astype(np.float32)
        encoding = "float"
        if not np.isfinite(samples).all():
            raise InputError(f"'{path.name}' holds NaN or infinite samples", "Re-export the audio")
    else:
        kind = {PCM: f"{bits}-bit PCM", IEEE_FLOAT: f"{bits}-bit float", 6: "A-law", 7: "mu-law",
                2: "ADPCM", 0x11: "IMA ADPCM", 0x55: "MP3"}.get(tag, f"format tag {tag:#x}, {bits}-bit")
        raise InputError(f"'{path.name}' is {kind} audio, which is not supported", CONVERT_FIX)
    if samples.size == 0:
        raise InputError(f"'{path.name}' holds no audio samples", "Pass a WAV file with sound in it")
    if samples.size < MIN_SAMPLES:
        raise InputError(f"'{path.name}' holds only {samples.size} samples, too few to fit",
                         f"Use a clip of at least {MIN_SAMPLES} samples")
    return Audio(samples, int(rate), int(bits), encoding)


def _chunks(data: bytes, path: Path) -> tuple[bytes, bytes]:
    """The 'fmt ' and 'data' chunk bodies; a truncated data chunk keeps what is there."""
    fmt = payload = None
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            fmt = body
        elif cid == b"data":
            payload = body
        pos += 8 + size + (size & 1)  # chunks are word-aligned
    if fmt is None or len(fmt) < 16:
        raise InputError(f"'{path.name}' has no valid 'fmt ' chunk (damaged WAV)", "Re-export the audio as WAV")
    if payload is None:
        raise InputError(f"'{path.name}' has no 'data' chunk: it holds no audio samples",
                         "Pass a WAV file with sound in it")
    return fmt, payload


def _pcm(payload: bytes, bits: int) -> np.ndarray:
    """Little-endian signed PCM of 16, 24 or 32 bits -> float32 in [-1, 1)."""
    width = bits // 8
    n = len(payload) // width
    raw = np.frombuffer(payload[: n * width], dtype=np.uint8)
    if bits == 24:
        b = raw.reshape(n, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16))
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
    else:
        ints = raw.view("<i2" if bits == 16 else "<i4").astype(np.int64)
    return (ints / float(1 << (bits - 1))).astype(np.float32)


def save_wav(path: str | Path, samples: np.ndarray, rate: int) -> Path:
    """Write mono 16-bit PCM (clipped to [-1, 1]): the format every player and editor reads."""
    path = Path(path)
    check_writable_output(path, (), (".wav",), "audio")
    x = np.clip(np.asarray(samples, dtype=np.float64).reshape(-1), -1.0, 1.0)
    ints = np.round(x * 32767.0).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(int(rate))
        wf.writeframes(ints.tobytes())
    return path
