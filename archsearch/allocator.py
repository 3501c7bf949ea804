"""Keep freed tensor memory in the process instead of handing it back to the OS (glibc only).

PyTorch's CPU allocator frees every tensor to ``malloc``; glibc's defaults unmap large blocks and trim the heap
top as soon as they are free, so the next forward pass of the same size page-faults all of that memory in again
(zeroing each 4 KiB page in the kernel). For an image-sized workload this is not small: evaluating LIDIA on BSD68
faulted 354 million pages (735 s of system time against 2,188 s of user time, ``/usr/bin/time -v``), and one
256 x 256 LIDIA forward pass faults 200-600 thousand pages (0.3-1.4 s of system time on a 2-core EPYC); with the
thresholds below a warm process faults almost none. PyTorch's own CPU performance guide recommends the same
idea in the form of jemalloc / tcmalloc.

:func:`keep_freed_memory` raises glibc's mmap threshold to its maximum (32 MiB: blocks below it come from the
heap and are reused), turns mmap off for larger blocks too (``M_MMAP_MAX`` 0; the threshold cannot go above 32 MiB,
and an activation of 64 channels is that big from 362 x 362 pixels, or batch 32 x 64 x 64, so every such tensor was
mapped and faulted in afresh each pass: DnCNN-S's forward pass on a 481 x 321 BSD68-sized image took 2.0-2.5 s with
763,000 page faults, 1.0-1.1 s with 6,500 without; DnCNN-S evaluated on all of BSD68 (the authors' protocol, 29.243 dB
each time) 135 s (111 s of it system time, 48 million faults) with mmap on, 67 s (0.3 s, 75,000) with it off, 146 s
with glibc's defaults; a residual block's training step at 64 channels, batch 32 x 64 x
64, 449-475 ms -> 354-362 ms (dense, NHWC) and 164-204 -> 133-164 ms (NSR, k = 4); 2-core EPYC, 2026-12-07, one
process per setting, alternating; LIDIA's forward pass unchanged, 4.4-5.0 s either way), and its trim threshold to
1 GiB (the heap keeps up to that much free memory), and makes
every thread allocate from that one heap (``M_ARENA_MAX`` 1): a thread other than the main one otherwise gets an
arena of its own, made of 64 MiB mappings that glibc shrinks back to the OS whatever the trim threshold, so
threads that allocate -- LIDIA's chunks on two threads (``blocks/lidia.py`` ``_map_chunks``) -- faulted
100,000-150,000 pages per 256 x 256 image again (1.4-3.3 s of system time on a 2-core Xeon, 2026-12-07; 20-50
faults with one arena, from the third pass on). The lock it shares is taken once per tensor, not per element.
It changes speed only, never numbers. Measured on LIDIA forward passes in one process (one thread, 2026-12-06): from the
third pass on, 0-3,000 page faults and 0.00 s of system time with it, against 6,000-310,000 faults and up to
0.6 s (256 x 256) or 15,000-1,660,000 faults and up to 2.7 s (481 x 321) with glibc's defaults; the wall time
of a pass moved by +-30% from run to run on that shared machine, so no wall-time gain is claimed. The CLI calls it once per process (and each worker process of ``archsearch run``);
library users may call it themselves. Off with ``ARCHSEARCH_MALLOC=default``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -3, -4, -8
MMAP_THRESHOLD = 32 << 20  # glibc's maximum on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 1 << 30
MMAP_MAX = 0  # no block is mapped on its own: those of 32 MiB and more come from the heap and are reused too
ARENA_MAX = 1  # every thread allocates from the main heap, the one the trim threshold keeps
_done: bool | None = None


def keep_freed_memory() -> bool:
    """Set the thresholds once per process; True when glibc accepted them (False elsewhere: musl, macOS,
    Windows, or ``ARCHSEARCH_MALLOC=default``)."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("ARCHSEARCH_MALLOC", "") == "default":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) \
        and bool(mallopt(_M_MMAP_MAX, MMAP_MAX)) and bool(mallopt(_M_ARENA_MAX, ARENA_MAX))
    return _done
