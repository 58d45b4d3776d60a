"""The serving worker: one thread takes batches from a :class:`DynamicBatcher` and runs them.

Requests are submitted from LoadGen's issue thread; the worker waits on a condition until a
batch is ready (full, or its oldest request's delay is up), runs it outside the lock, and
reports its requests done. One worker, because one backend instance runs one batch at a
time, as a single model replica does. A failing batch still answers its requests (LoadGen
would otherwise wait forever); the first error is kept and the probe is failed by the caller.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from harness.serving.batcher import DynamicBatcher, Request

__all__ = ["BatchingServer"]


class BatchingServer:
    def __init__(
        self,
        batcher: DynamicBatcher,
        run_batch: Callable[[list[Request]], None],
        done: Callable[[list[Request]], None],
        clock: Callable[[], float] = time.perf_counter,
        max_queue: int = 4096,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be >= 1")
        self.batcher = batcher
        self.max_queue = max_queue
        #: Requests answered unserved because the queue was full, and the deepest it got.
        self.shed = 0
        self.max_depth = 0
        self.run_batch = run_batch
        self.done = done
        self.clock = clock
        self.batch_sizes: Counter[int] = Counter()
        self.busy_s = 0.0
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self._flush = False
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="harness-serve", daemon=True)

    def __enter__(self) -> BatchingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join()

    def submit(self, requests: list[Request]) -> None:
        shed: list[Request] = []
        with self._cond:
            for r in requests:
                if len(self.batcher) >= self.max_queue:
                    shed.append(r)
                else:
                    self.batcher.add(r)
            self.max_depth = max(self.max_depth, len(self.batcher))
            self.shed += len(shed)
            self._cond.notify()
        if shed:
            self.done(shed)

    def flush(self) -> None:
        """No more requests will come for now: run what waits without delay."""
        with self._cond:
            self._flush = True
            self._cond.notify()

    def reset(self) -> None:
        """Back to delaying (a new scenario starts)."""
        with self._cond:
            self._flush = False

    def _next(self) -> list[Request] | None:
        with self._cond:
            while True:
                batch, deadline = self.batcher.take(self.clock(), flush=self._flush)
                if batch:
                    return batch
                if self._stop:
                    return None
                timeout = None if deadline is None else max(0.0, deadline - self.clock())
                self._cond.wait(timeout)

    def _loop(self) -> None:
        while (batch := self._next()) is not None:
            start = self.clock()
            try:
                self.run_batch(batch)
            except BaseException as exc:  # answered anyway; the caller fails the probe
                if self.error is None:
                    self.error = exc
            self.busy_s += self.clock() - start
            self.batch_sizes[len(batch)] += 1
            self.done(batch)
