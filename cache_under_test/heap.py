"""Give a closed connection's memory back to the system soon after it closes.

A connection's transport, protocol and TLS objects hold each other in reference cycles, so
its buffers (hundreds of KiB for a client that was reading a blob) are freed only by Python's
cycle collector, which an idle process seldom runs; and what glibc's malloc then frees stays
with the process. So within ``TRIM_INTERVAL`` seconds of connections closing (``closed``),
``trim_forever`` runs a full collection and ``malloc_trim``; nothing when none closed, so a
busy process with long-lived connections pays nothing for it.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging

from .events import emit

TRIM_INTERVAL = 2.0  # seconds
_closed = 0  # connections closed in this process


def closed() -> None:
    """A client connection of this process closed."""
    global _closed
    _closed += 1


def _malloc_trim():
    """glibc's ``malloc_trim``, or None (another C library)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


async def trim_forever(interval: float = TRIM_INTERVAL) -> None:
    """Every ``interval`` seconds in which connections closed, collect and return the free
    heap memory to the system; until cancelled."""
    trim = _malloc_trim()
    if trim is None:
        emit("config.warning", logging.WARNING, problem="malloc_trim is not available: memory "
             "freed after a burst of clients stays with the process")
        return
    seen = _closed
    while True:
        await asyncio.sleep(interval)
        if _closed != seen:
            seen = _closed
            gc.collect()
            trim(0)
