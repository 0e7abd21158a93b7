"""The binary message format between the add-on / CLI and the server: arrays + a JSON header.

Why not ``.npz`` or pickle: pickles execute code when loaded, and ``.npz`` needs numpy
(Blender's Python has it, a bare client does not). This format is read and written with
the standard library alone, validated field by field before any byte is trusted, and
maps straight onto ``numpy.frombuffer`` where numpy exists.

Layout (all integers little-endian)::

    8 bytes   magic b"NSTRWIR1"
    4 bytes   uint32 header length H
    H bytes   UTF-8 JSON: {"meta": {...}, "arrays": [{"name", "dtype", "shape", "offset", "nbytes"}, ...]}
    0-7 bytes zero padding to a multiple of 8
    data      each array's raw little-endian C-order bytes at ``offset`` (relative to the data
              start, 8-byte aligned), zero-padded to a multiple of 8
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

MAGIC = b"NSTRWIR1"
CONTENT_TYPE = "application/x-nstr-wire"
MAX_HEADER_BYTES = 4 << 20
MAX_ARRAYS = 256
MAX_NDIM = 8
MAX_NAME_LENGTH = 128

# Allowed element types: numpy ``dtype.str`` spelling -> item size in bytes.
DTYPES: dict[str, int] = {
    "|b1": 1, "|u1": 1, "|i1": 1,
    "<u2": 2, "<i2": 2, "<f2": 2,
    "<u4": 4, "<i4": 4, "<f4": 4,
    "<u8": 8, "<i8": 8, "<f8": 8,
}
# The same types as ``array`` module codes (for stdlib-only users; sizes checked at import).
_ARRAY_CODES: dict[str, str] = {"|u1": "B", "|i1": "b", "<u2": "H", "<i2": "h", "<u4": "I", "<i4": "i",
                                "<u8": "Q", "<i8": "q", "<f4": "f", "<f8": "d"}


class WireError(ValueError):
    """A message that is not a valid NSTR wire message. ``str(err)`` is one line."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix or "Send arrays with nstr.remote.wire.encode (or BackendClient.submit)"
        super().__init__(f"{problem}. {self.fix}")


@dataclass(frozen=True)
class Array:
    """An n-dimensional array as plain bytes: works without numpy, converts to it when present."""

    dtype: str  # numpy dtype.str spelling, little-endian: '<f4', '<i4', '|u1', ...
    shape: tuple[int, ...]
    data: bytes | memoryview

    def __post_init__(self) -> None:
        _check_dtype(self.dtype, "array")
        if not isinstance(self.shape, tuple) or not all(isinstance(s, int) and s >= 0 for s in self.shape):
            raise WireError(f"array shape must be a tuple of non-negative integers, not {self.shape!r}")
        got = memoryview(self.data).nbytes
        if got != self.nbytes:
            raise WireError(f"array of shape {self.shape} and dtype {self.dtype} needs {self.nbytes} bytes, got {got}")

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * DTYPES[self.dtype]

    @classmethod
    def from_numpy(cls, a: Any) -> "Array":
        """From a numpy array (any byte order or layout): a little-endian C-order copy when needed."""
        import numpy as np

        a = np.asarray(a)
        if a.dtype.kind not in "biuf" or a.dtype.str.lstrip("<>|=") not in {d[1:] for d in DTYPES}:
            raise WireError(f"arrays of type {a.dtype} cannot be sent",
                            "Convert to float32/float64, int32/int64, uint8 or bool first")
        if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and sys.byteorder == "big"):
            a = a.astype(a.dtype.newbyteorder("<"))
        if not a.flags.c_contiguous:
            a = a.copy(order="C")
        dtype = a.dtype.str.replace("=", "<")
        data = memoryview(a.reshape(-1).view(np.uint8)) if a.size else b""
        return cls(dtype=dtype, shape=tuple(int(s) for s in a.shape), data=data)

    @classmethod
    def from_values(cls, values: Iterable[float | int], dtype: str, shape: tuple[int, ...]) -> "Array":
        """From a flat sequence of Python numbers (no numpy needed), e.g. Blender's foreach_get output."""
        import array as pyarray

        _check_dtype(dtype, "array")
        if dtype not in _ARRAY_CODES:
            raise WireError(f"from_values does not support dtype {dtype}", "Use numpy for this type")
        arr = pyarray.array(_ARRAY_CODES[dtype], values)
        if sys.byteorder == "big":  # pragma: no cover - every supported platform is little-endian
            arr.byteswap()
        return cls(dtype=dtype, shape=tuple(shape), data=arr.tobytes())

    def to_numpy(self, copy: bool = False) -> Any:
        """A numpy view on the bytes (read-only unless ``copy``)."""
        import numpy as np

        out = np.frombuffer(self.data, dtype=np.dtype(self.dtype), count=self.size).reshape(self.shape)
        return out.copy() if copy else out

    def tolist(self) -> list[float | int | bool]:
        """The values as a flat Python list (no numpy needed)."""
        import array as pyarray

        if self.dtype == "|b1":
            return [b != 0 for b in bytes(self.data)]
        if self.dtype == "<f2":
            return [v[0] for v in struct.iter_unpack("<e", bytes(self.data))]
        arr = pyarray.array(_ARRAY_CODES[self.dtype])
        arr.frombytes(bytes(self.data))
        if sys.byteorder == "big":  # pragma: no cover
            arr.byteswap()
        return arr.tolist()


def _check_dtype(dtype: Any, name: str) -> None:
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise WireError(f"array '{name}' has unsupported dtype {dtype!r}",
                        "Use one of: " + ", ".join(DTYPES))


def as_array(value: Any, name: str = "array") -> Array:
    """Accept an :class:`Array` or anything numpy-like."""
    if isinstance(value, Array):
        return value
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        return Array.from_numpy(value)
    raise WireError(f"'{name}' is a {type(value).__name__}, not an array",
                    "Pass numpy arrays or nstr.remote.wire.Array values")


def _pad(n: int) -> int:
    return (-n) % 8


def encode_parts(meta: Mapping[str, Any], arrays: Mapping[str, Any]) -> list[bytes | memoryview]:
    """The message as a list of byte chunks (so large arrays are not copied into one buffer)."""
    entries = []
    blobs: list[bytes | memoryview] = []
    offset = 0
    for name, value in arrays.items():
        _check_name(name)
        arr = as_array(value, name)
        entries.append({"name": name, "dtype": arr.dtype, "shape": list(arr.shape),
                        "offset": offset, "nbytes": arr.nbytes})
        if arr.nbytes:
            blobs.append(memoryview(arr.data).cast("B"))
        padding = _pad(arr.nbytes)
        if padding:
            blobs.append(b"\0" * padding)
        offset += arr.nbytes + padding
    try:
        header = json.dumps({"meta": dict(meta), "arrays": entries}, allow_nan=False,
                            separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as err:
        raise WireError(f"the message's metadata is not plain JSON ({err})",
                        "Use only dicts, lists, strings, finite numbers, booleans and None") from None
    if len(header) > MAX_HEADER_BYTES:
        raise WireError(f"the message header is {len(header)} bytes (limit {MAX_HEADER_BYTES})",
                        "Send large data as arrays, not in the metadata")
    head = MAGIC + struct.pack("<I", len(header)) + header
    return [head + b"\0" * _pad(len(head)), *blobs]


def encode(meta: Mapping[str, Any], arrays: Mapping[str, Any]) -> bytes:
    """One message as bytes."""
    return b"".join(encode_parts(meta, arrays))


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise WireError(f"array name {name!r} is not a short printable string")


def decode(buf: bytes | bytearray | memoryview) -> tuple[dict[str, Any], dict[str, Array]]:
    """Parse and validate a message. Arrays are zero-copy views on ``buf``."""
    view = memoryview(buf).cast("B")
    if len(view) < 12 or bytes(view[:8]) != MAGIC:
        raise WireError("the body is not an NSTR wire message (bad magic bytes)")
    (hlen,) = struct.unpack("<I", view[8:12])
    if hlen > MAX_HEADER_BYTES:
        raise WireError(f"the message header claims {hlen} bytes (limit {MAX_HEADER_BYTES})")
    if 12 + hlen > len(view):
        raise WireError(f"the message is truncated: header needs {hlen} bytes, {len(view) - 12} present")
    header = _parse_header(bytes(view[12:12 + hlen]))
    if not isinstance(header, dict) or not isinstance(header.get("meta", {}), dict) \
            or not isinstance(header.get("arrays", []), list):
        raise WireError("the message header must be an object with 'meta' (object) and 'arrays' (list)")
    data_start = 12 + hlen + _pad(12 + hlen)
    data = view[data_start:]
    specs = header.get("arrays", [])
    if len(specs) > MAX_ARRAYS:
        raise WireError(f"the message has {len(specs)} arrays (limit {MAX_ARRAYS})")
    arrays: dict[str, Array] = {}
    spans = []
    for spec in specs:
        name, arr, span = _decode_entry(spec, data)
        if name in arrays:
            raise WireError(f"array '{name}' appears twice in the message")
        arrays[name] = arr
        spans.append(span)
    spans.sort()
    for (a0, a1), (b0, _b1) in zip(spans, spans[1:]):
        if b0 < a1:
            raise WireError("two arrays in the message overlap")
    end = spans[-1][1] if spans else 0
    if len(data) - end >= 8 or len(data) < end:
        raise WireError(f"the message has {len(data) - end} unexpected bytes after its arrays")
    return header.get("meta", {}), arrays


def _parse_header(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise WireError("the message header is nested too deeply", "Send a flat JSON header") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WireError(f"the message header is not valid UTF-8 JSON ({err})") from None


def _decode_entry(spec: Any, data: memoryview) -> tuple[str, Array, tuple[int, int]]:
    if not isinstance(spec, dict):
        raise WireError("each entry of 'arrays' must be an object")
    name = spec.get("name")
    _check_name(name)
    dtype = spec.get("dtype")
    _check_dtype(dtype, name)
    shape = spec.get("shape")
    if not isinstance(shape, list) or len(shape) > MAX_NDIM or \
            not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise WireError(f"array '{name}' has an invalid shape {shape!r}",
                        f"A shape is a list of at most {MAX_NDIM} non-negative integers")
    offset, nbytes = spec.get("offset"), spec.get("nbytes")
    for key, value in (("offset", offset), ("nbytes", nbytes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise WireError(f"array '{name}' has an invalid {key} {value!r}")
    expected = math.prod(shape) * DTYPES[dtype]
    if nbytes != expected:
        raise WireError(f"array '{name}' declares {nbytes} bytes but shape {shape} of {dtype} needs {expected}")
    if offset % 8 or offset + nbytes > len(data):
        raise WireError(f"array '{name}' lies outside the message (offset {offset}, {nbytes} bytes, "
                        f"{len(data)} data bytes)")
    arr = Array(dtype=dtype, shape=tuple(shape), data=data[offset:offset + nbytes])
    return name, arr, (offset, offset + nbytes)


def write_file(path: str | os.PathLike[str], meta: Mapping[str, Any], arrays: Mapping[str, Any]) -> None:
    """Write a message atomically (temporary file + rename), so a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        for part in encode_parts(meta, arrays):
            fh.write(part)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_file(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Array]]:
    """A message from a file, memory-mapped: the arrays are views on the file's pages, so reading a
    large upload costs no second copy in memory."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return decode(b"")
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    return decode(mapped)


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Only the meta of a message file (its header), without touching the array data."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:8] != MAGIC:
            raise WireError("the body is not an NSTR wire message (bad magic bytes)")
        (hlen,) = struct.unpack("<I", head[8:12])
        if hlen > MAX_HEADER_BYTES:
            raise WireError(f"the message header claims {hlen} bytes (limit {MAX_HEADER_BYTES})")
        raw = fh.read(hlen)
    if len(raw) < hlen:
        raise WireError(f"the message is truncated: header needs {hlen} bytes, {len(raw)} present")
    header = _parse_header(raw)
    if not isinstance(header, dict) or not isinstance(header.get("meta", {}), dict):
        raise WireError("the message header must be an object with 'meta' (object) and 'arrays' (list)")
    return header.get("meta", {})


__all__ = ["Array", "WireError", "CONTENT_TYPE", "MAGIC", "DTYPES", "encode", "encode_parts", "decode",
           "as_array", "write_file", "read_file", "read_meta"]
