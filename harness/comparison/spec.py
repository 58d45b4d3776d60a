"""How arms are interleaved: a frozen spec, light to import (the CLI reads its defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import HarnessError

__all__ = ["InterleaveSpec"]


@dataclass(frozen=True, slots=True)
class InterleaveSpec:
    """How each process interleaves the arms of one case.

    ``rounds`` rounds; per round every arm runs ``max(block, block_s / call)`` timed calls
    (rounded up to whole passes over a real-text case's batches) after
    ``max(1, warmup_s / call)`` untimed ones. ``solo`` adds one block per arm run on its own
    after the rounds, the check that interleaving did not move the p50. ``seed`` drives the
    round orders; a comparison draws a fresh one unless given (it is recorded)."""

    rounds: int = 5
    block: int = 3
    block_s: float = 0.1
    warmup_s: float = 0.025
    solo: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rounds < 2:
            raise HarnessError("rounds must be >= 2 (a process's effect is a mean over rounds)")
        if self.block < 1:
            raise HarnessError("block must be >= 1")
        if not 0 <= self.block_s <= 60 or not 0 <= self.warmup_s <= 60:
            raise HarnessError("block_s and warmup_s must be between 0 and 60 seconds")
