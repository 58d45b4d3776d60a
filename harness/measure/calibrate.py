"""A speed probe of the machine itself, timed right before each case.

Two runs of the same code on a shared virtual machine can differ by 2× (measured here: a
plain Python loop took 27 to 54 ms in back-to-back processes). Interleaving solves that inside
one comparison; between runs — the CI gate's baseline against today — it cannot. So before
every case the runner times two fixed workloads that do not depend on the code under test: a
small float32 matmul (the BLAS path XLM-R's layers take) and a pure-Python loop (the dispatch
path small batches take). The gate divides the candidate's timings by the change of this probe,
so a machine that is slower today is not mistaken for a regression, while a slower harness,
backend or checkpoint still is.
"""

from __future__ import annotations

import math
import statistics

import torch

from harness.measure.timing import Timer
from harness.records.types import Calibration

__all__ = ["speed_factor", "speed_probe"]

_N = 256


def _matmul(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.mm(a, b)


def _python_loop() -> None:
    total = 0
    for i in range(20_000):
        total += i * i
    if total < 0:  # pragma: no cover - keeps the loop from being optimised away in spirit
        raise AssertionError


def speed_probe(timer: Timer, repeats: int = 15) -> Calibration:
    """Median seconds of each fixed workload (with the case's thread setting already applied)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(_N, _N, generator=gen)
    b = torch.randn(_N, _N, generator=gen)
    for _ in range(3):
        _matmul(a, b)
        _python_loop()
    matmul = statistics.median(timer.time(lambda: _matmul(a, b)) for _ in range(repeats))
    loop = statistics.median(timer.time(_python_loop) for _ in range(repeats))
    return {"matmul_s": matmul, "python_s": loop, "workload": f"mm {_N}x{_N} fp32; 20k-step loop"}


def speed_factor(base: Calibration, cand: Calibration) -> float | None:
    """How much slower the machine was for the candidate (geometric mean over both probes);
    ``None`` when either side has no probe."""
    pairs = [
        (base.get("matmul_s"), cand.get("matmul_s")),
        (base.get("python_s"), cand.get("python_s")),
    ]
    ratios = [b / a for a, b in pairs if a and b]
    if len(ratios) < len(pairs):
        return None
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios))
