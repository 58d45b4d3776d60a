"""Python's cyclic garbage collector paused while calls are timed, as ``timeit`` does.

A timed call of an eager model allocates thousands of Python objects; every few hundred
allocations the collector may run, and a full collection over a heap holding torch and
transformers takes milliseconds — charged to whichever call it lands in. That is host time
the model does not cost, and on a fast device (a GPU call of a millisecond) it is a large part
of a call. So the garbage is collected once before timing and the collector is off while the
calls run; reference counting still frees everything that is not a cycle.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused_gc"]


@contextmanager
def paused_gc() -> Iterator[None]:
    """Collect now, keep the collector off inside the block, restore it after."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
