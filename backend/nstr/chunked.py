"""Passes over big arrays in row chunks whose resident memory stays flat, memory-mapped uploads included.

The server checks uploads memory-mapped: numpy views on the file's pages. Reading such a view maps each
page into the process, so one pass over a 200 MiB array leaves 200 MiB in its resident set until the
map is closed. :func:`row_chunks` hands out one chunk at a time and, when the array is backed by a
read-only memory map, drops the chunk's pages from this process once the caller moves on
(``MADV_DONTNEED``; the pages stay in the page cache and come back if touched again), so a pass
costs about one chunk of resident memory whatever the array's size. In-memory arrays are unaffected.
"""

from __future__ import annotations

import mmap
from typing import Iterator

import numpy as np

_PAGE = mmap.PAGESIZE
WORTH_DROPPING = 4 << 20  # arrays smaller than this keep their pages: dropping costs more than it saves


def row_chunks(a: np.ndarray, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, a[start:start + rows])`` for each chunk, in order."""
    mapped = _mapping_of(a) if a.nbytes >= WORTH_DROPPING else None
    for start in range(0, len(a), rows):
        part = a[start:start + rows]
        yield start, part
        if mapped is not None:
            drop_pages(mapped, part)


def _mapping_of(a: np.ndarray) -> mmap.mmap | None:
    """The read-only memory map under a numpy view (``np.frombuffer`` on a slice of it), if any."""
    base = a
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    owner = base.obj if isinstance(base, memoryview) else base
    return owner if isinstance(owner, mmap.mmap) and hasattr(owner, "madvise") else None


def drop_pages(mapped: mmap.mmap, part: np.ndarray) -> None:
    """Unmap the pages under ``part`` from this process (read-only file pages: nothing is lost)."""
    if not part.size or not part.flags.c_contiguous:
        return
    start_address = np.frombuffer(mapped, np.uint8).ctypes.data  # a view: no copy
    offset = part.ctypes.data - start_address
    first = offset // _PAGE * _PAGE
    end = min(len(mapped), offset + part.nbytes)
    if 0 <= first < end:
        try:
            mapped.madvise(mmap.MADV_DONTNEED, first, end - first)
        except (OSError, ValueError):  # an exotic map or platform: only the memory saving is lost
            pass
