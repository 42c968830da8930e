"""Giving the heaps' free pages back to the system (glibc's ``malloc_trim``).

glibc keeps what a process frees for reuse, and gives the top of a heap back only past a
threshold that grows with the largest block freed so far: loading models (their bytes read,
parsed and let go) leaves megabytes of free pages resident in a serving process for good.
``malloc_trim(0)`` hands back every whole free page of every heap (a short call, made only
after loading); a page is faulted in again only when reused. Where the C library has no
``malloc_trim`` (not glibc), nothing is done.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

__all__ = ["release_free_memory"]


def release_free_memory() -> None:
    """Return the free pages of this process's heaps to the system, where glibc can."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None)  # the C library the interpreter runs on
    except (OSError, TypeError):  # TypeError: Windows wants a name
        return None
    return getattr(libc, "malloc_trim", None)
