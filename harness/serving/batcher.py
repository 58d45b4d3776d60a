"""A dynamic batcher: which waiting requests form the next batch, and when.

Pure logic over a clock value the caller passes in, so it is tested without threads. Two
policies, the closed-loop padding policies under arrival-time pressure:

* ``longest`` — one FIFO queue; a batch is the oldest ``max_batch`` requests, padded to the
  longest of them;
* ``bucket``  — one FIFO queue per length bucket (``edges`` are the buckets' upper token
  counts); a batch never mixes buckets, so short sentences are not padded to long ones.

A queue is *ready* when it holds ``max_batch`` requests or its oldest request has waited
``max_delay_s``; among ready queues the one whose oldest request arrived first goes next.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

__all__ = ["POLICIES", "DynamicBatcher", "Request", "default_edges"]

POLICIES = ("longest", "bucket")


@dataclass(frozen=True, slots=True)
class Request:
    """One query: LoadGen's response id, the sample's index in the traffic, its token count."""

    id: int
    index: int
    length: int
    arrival: float


def default_edges(lengths: list[int], buckets: int = 4) -> tuple[int, ...]:
    """Bucket upper bounds at the length distribution's quantiles (each bucket ~equally full)."""
    ordered = sorted(lengths)
    if not ordered:
        return ()
    edges = {
        ordered[min(len(ordered) - 1, (len(ordered) * k) // buckets)] for k in range(1, buckets)
    }
    return tuple(sorted(edges | {ordered[-1]}))


class DynamicBatcher:
    def __init__(
        self,
        max_batch: int,
        max_delay_s: float,
        policy: str = "longest",
        edges: tuple[int, ...] = (),
    ) -> None:
        if max_batch < 1 or max_delay_s < 0:
            raise ValueError("max_batch must be >= 1 and max_delay_s >= 0")
        if policy not in POLICIES:
            raise ValueError(f"unknown batching policy {policy!r}")
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.edges = tuple(sorted(edges)) if policy == "bucket" else ()
        self._queues: list[deque[Request]] = [deque() for _ in range(len(self.edges) or 1)]

    def _queue_of(self, length: int) -> deque[Request]:
        if not self.edges:
            return self._queues[0]
        i = min(bisect.bisect_left(self.edges, length), len(self.edges) - 1)
        return self._queues[i]

    def add(self, request: Request) -> None:
        self._queue_of(request.length).append(request)

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues)

    def take(self, now: float, flush: bool = False) -> tuple[list[Request], float | None]:
        """The batch to run now (and ``None``), or no batch and the time one will be ready
        (``None`` when nothing waits). ``flush`` runs whatever waits without delay."""
        ready: deque[Request] | None = None
        deadline: float | None = None
        for q in self._queues:
            if not q:
                continue
            due = q[0].arrival + self.max_delay_s
            if flush or len(q) >= self.max_batch or due <= now:
                if ready is None or q[0].arrival < ready[0].arrival:
                    ready = q
            elif deadline is None or due < deadline:
                deadline = due
        if ready is None:
            return [], deadline
        n = min(self.max_batch, len(ready))
        return [ready.popleft() for _ in range(n)], None
