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


class SwitchingClock:
    """A fake clock for interleaved arms: each backend's calls cost ``base(backend)`` seconds,
    times ``penalty[k]`` for the *k*-th call after switching from another backend (what the
    previous arm's leftovers in the caches cost on a real machine), 1 after those."""

    def __init__(
        self, base: Callable[[object], float], penalty: Sequence[float] = (1.3, 1.2, 1.1)
    ) -> None:
        self.base = base
        self.penalty = list(penalty)
        self.t = 0.0
        self.last: int | None = None
        self.since_switch = 0

    def now(self) -> float:
        return self.t

    def time(self, fn: Callable[[], object]) -> float:
        fn()
        backend = getattr(getattr(fn, "func", None), "__self__", None)
        if id(backend) != self.last:
            self.last, self.since_switch = id(backend), 0
        k = self.since_switch
        self.since_switch += 1
        cost = self.base(backend) * (self.penalty[k] if k < len(self.penalty) else 1.0)
        self.t += cost
        return cost


def hanging_group_job(hang_on: str, cases: list[dict[str, object]]) -> object:
    """A worker job (see ``harness.execution.launcher``) that records every case ok but never returns
    from the one whose id contains ``hang_on``: a backend call that hangs."""
    import functools

    return functools.partial(_hanging_group, hang_on, cases)


def _hanging_group(hang_on: str, cases: list[dict[str, object]], store, opts, emit) -> None:  # type: ignore[no-untyped-def]
    import time

    from harness.records.results import Record

    for case in cases:
        case_id = str(case["case_id"]) if "case_id" in case else _case_id(case)
        emit(("start", case_id))
        if hang_on in case_id:
            time.sleep(3600)
        rec = Record(case_id=case_id, case=case, status="ok", samples=[0.01, 0.01])  # type: ignore[arg-type]
        store.append(rec)
        emit(("done", rec))


def _case_id(case: dict[str, object]) -> str:
    from harness.spec.sweep import Case

    return Case.from_dict(case).case_id  # type: ignore[arg-type]


def greedy_job(store, opts, emit) -> None:  # type: ignore[no-untyped-def]
    """A worker job that asks for 4 GiB at once (a case that exhausts memory)."""
    emit(("start", "m/greedy"))
    bytearray(4 * 2**30)
