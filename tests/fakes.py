"""Test doubles: a deterministic clock with a cost per call."""

from __future__ import annotations

from collections.abc import Callable, Sequence


class FakeTimer:
    """Each timed call 'takes' ``costs[i % len(costs)]`` seconds (or ``costs(i)``)."""

    def __init__(self, costs: Sequence[float] | Callable[[int], float]) -> None:
        self.costs = costs
        self.t = 0.0
        self.calls = 0

    def now(self) -> float:
        return self.t

    def time(self, fn: Callable[[], object]) -> float:
        fn()
        cost = (
            self.costs(self.calls)
            if callable(self.costs)
            else self.costs[self.calls % len(self.costs)]
        )
        self.calls += 1
        self.t += cost
        return cost
