"""Keep freed array memory in the process for ``fusekit fuse`` and ``fusekit eval`` (glibc only).

glibc's malloc gives every block above its mmap threshold (128 KiB at
first, raised as blocks are freed) fresh pages from the kernel and hands
them back on free, so each new image-sized temporary pays a page fault and
the kernel's zeroing of every 4 KiB page. The metrics and the fusers make
hundreds of such temporaries per image: on the one-triplet ``fusekit eval``
of ``BENCHMARKS.md`` this cost about 5 % of the CPU time, on a folder of
five exposure brackets about 9 %. :func:`keep_freed_memory` raises the
thresholds (arrays up to 64 MiB come from the heap and are reused; the heap
is trimmed once 256 MiB are free at its top), as ``MALLOC_MMAP_THRESHOLD_``
and ``MALLOC_TRIM_THRESHOLD_`` would. The process's peak memory is the
same; what it has freed is kept until it exits. Nothing changes where libc
is not glibc, or where the user tunes malloc already (any ``MALLOC_*`` or
``GLIBC_TUNABLES`` variable set).
"""

from __future__ import annotations

import os
import sys

__all__ = ["keep_freed_memory"]

#: mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 64 << 20
_TRIM_THRESHOLD = 256 << 20


def keep_freed_memory() -> bool:
    """Raise glibc malloc's mmap and trim thresholds for this process, if it is safe to.

    Returns
    -------
    bool
        Whether the thresholds were set.
    """
    if not sys.platform.startswith("linux") or any(
            key.startswith("MALLOC_") or key == "GLIBC_TUNABLES" for key in os.environ):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version"):   # musl and others: leave them alone
            return False
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
