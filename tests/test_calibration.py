"""The comparison's decisions scored on noise this project did not design.

``tests/noise_sim.py`` is a copy of the simulator we were given (``shared/calibration``): an
interleaved comparison on a noisy 2-vCPU VM with a known truth, under eleven named kinds of
noise, among them some that do not cancel in a paired ratio (a process favouring one arm, an
arm more sensitive to the machine's state, asymmetric carry-over from the previous arm).
Here the shipped analysis runs at its shipped defaults — the processes, rounds, block and
block warm-up that ``harness compare`` uses for calls of the simulator's length — and is
scored over many seeds per scenario against the targets of the issue that asked for it:

* 95 % intervals cover the truth in ≥ 93 % of runs;
* A/A runs called "slower" or "faster" in ≤ α + 2 %;
* A/A runs called "equivalent within ±5 %" in ≥ 90 %;
* a planted +8.3 % (one layer more of twelve) called "slower" in ≥ 95 %.

The adapter does what the interleaving does: the first calls of every block are warm-up, not
timed (the simulator's carry-over and switch costs land on them), and the rest go to the
analysis as (process, round, batch, seconds) rows, the form :func:`harness.comparison.decide.
paired_estimate` takes from records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.commands.compare import DEFAULT_PROCESSES
from harness.comparison.decide import CompareSettings, paired_estimate, verdict_of
from harness.comparison.interleave import block_sizes
from harness.comparison.spec import InterleaveSpec
from harness.stats.hierarchy import CALL_DTYPE
from harness.stats.summary import adjust

from .noise_sim import SCENARIOS, simulate

SPEC = InterleaveSpec()
CALL_S = 0.010  # the simulator's base call length
BATCHES = 4  # a real-text case's batch shapes
BLOCK, WARM = block_sizes(SPEC, CALL_S, BATCHES)
SETTINGS = CompareSettings(margin=0.05, min_effect=0.05)  # the README's settings for the question
SEEDS = 300
PLANTED = 1.083


def _timed(calls: np.ndarray, arm: int) -> np.ndarray:
    """One arm's calls without each block's warm-up, as analysis rows."""
    x = calls[calls["arm"] == arm]
    block_key = x["process"].astype(np.int64) * 100_000 + x["round"]
    starts = np.r_[0, np.flatnonzero(np.diff(block_key)) + 1]
    position = np.arange(x.size) - np.repeat(starts, np.diff(np.r_[starts, x.size]))
    kept = x[position >= WARM]
    out = np.empty(kept.size, CALL_DTYPE)
    for name in CALL_DTYPE.names or ():
        out[name] = kept[name]
    return out


def _score(scenario: str, truth: float) -> dict[str, float]:
    covered = alarms = equivalent = slower = 0
    for seed in range(SEEDS):
        calls = simulate(
            scenario,
            truth,
            processes=DEFAULT_PROCESSES,
            rounds=SPEC.rounds,
            block=WARM + BLOCK,
            batches=BATCHES,
            seed=seed,
        )
        est = paired_estimate(_timed(calls, 0), _timed(calls, 1))
        verdict, _ = verdict_of(est, est.p_diff, SETTINGS)
        lo, hi = est.interval(0.95)
        covered += lo < truth < hi
        alarms += verdict in ("slower", "faster")
        equivalent += verdict == "equivalent"
        slower += verdict == "slower"
    n = float(SEEDS)
    return {
        "cover": covered / n,
        "alarms": alarms / n,
        "equiv": equivalent / n,
        "slower": slower / n,
    }


def test_the_adapter_drops_exactly_the_block_warmups() -> None:
    calls = simulate("iid", processes=2, rounds=3, block=WARM + BLOCK, batches=BATCHES, seed=0)
    for arm in (0, 1):
        timed = _timed(calls, arm)
        assert timed.size == 2 * 3 * BLOCK
        assert set(np.unique(timed["batch"])) == set(range(BATCHES))


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_aa_at_the_shipped_defaults(scenario: str) -> None:
    score = _score(scenario, 1.0)
    assert score["cover"] >= 0.93, score
    assert score["alarms"] <= SETTINGS.alpha + 0.02, score
    assert score["equiv"] >= 0.90, score


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_planted_slowdown_at_the_shipped_defaults(scenario: str) -> None:
    score = _score(scenario, PLANTED)
    assert score["cover"] >= 0.93, score
    assert score["slower"] >= 0.95, score


def test_the_old_bootstrap_floor_is_gone() -> None:
    """A p-value is a t tail, not a count of resamples: a huge effect gets a tiny p (the
    bootstrap's floor of 2/(n_boot+1), times Holm's row count, once hid every slowdown of a
    72-row suite)."""
    calls = simulate("iid", 1.5, processes=DEFAULT_PROCESSES, rounds=6, block=8, seed=1)
    est = paired_estimate(_timed(calls, 0), _timed(calls, 1))
    assert est.p_diff < 1e-8


# Real noise: per-block medians of `harness compare` runs recorded on this project's 2-vCPU
# VMs (bench/calibration/trials.sh, then bench/calibration/fixture.py), four arms each: the
# baseline, an A/A copy, an intermediate-trained checkpoint and one more layer.
REAL = Path(__file__).parent / "data" / "real_rounds.json"


def _real() -> list[dict[str, Any]]:
    return list(json.loads(REAL.read_text())["comparisons"])


def _rows(rows: list[list[float]], scale: float = 1.0) -> np.ndarray:
    out = np.empty(len(rows), CALL_DTYPE)
    arr = np.asarray(rows, float)
    out["process"], out["round"], out["batch"] = arr[:, 0], arr[:, 1], arr[:, 2]
    out["seconds"] = arr[:, 3] * scale
    return out


def _real_verdicts(arm: str, scale: float = 1.0) -> list[tuple[str, str, float, float]]:
    """(case, verdict, ci_low, ci_high) of ``arm`` (by name suffix) against each recorded
    comparison's baseline, its seconds times ``scale``, adjusted per comparison as
    ``harness compare`` adjusts (the family: that candidate's cases)."""
    out = []
    for cmp in _real():
        base_name = cmp["arms"][0]
        name = next(a for a in cmp["arms"] if a.endswith(arm) and a != base_name)
        ests = []
        for key, arms in cmp["cases"].items():
            ests.append((key, paired_estimate(_rows(arms[base_name]), _rows(arms[name], scale))))
        adjusted = adjust([e.p_diff for _, e in ests], SETTINGS.correction)
        for (key, est), p in zip(ests, adjusted, strict=True):
            lo, hi = est.interval(0.95)
            out.append((key, verdict_of(est, p, SETTINGS)[0], lo, hi))
    return out


@pytest.mark.skipif(not REAL.is_file(), reason="no real-noise fixture recorded")
def test_real_aa_copies() -> None:
    verdicts = _real_verdicts("~aa")
    n = len(verdicts)
    assert n >= 40
    assert sum(v in ("slower", "faster") for _, v, _, _ in verdicts) / n <= SETTINGS.alpha + 0.02
    assert sum(v == "equivalent" for _, v, _, _ in verdicts) / n >= 0.90
    assert sum(lo < 1 < hi for _, _, lo, hi in verdicts) / n >= 0.93


@pytest.mark.skipif(not REAL.is_file(), reason="no real-noise fixture recorded")
def test_real_aa_copies_with_a_planted_slowdown() -> None:
    verdicts = _real_verdicts("~aa", PLANTED)
    assert sum(v == "slower" for _, v, _, _ in verdicts) / len(verdicts) >= 0.95
    assert sum(lo < PLANTED < hi for _, _, lo, hi in verdicts) / len(verdicts) >= 0.93


@pytest.mark.skipif(not REAL.is_file(), reason="no real-noise fixture recorded")
def test_real_deeper_and_trained_checkpoints() -> None:
    deeper = _real_verdicts("-deep")
    assert sum(v == "slower" for _, v, _, _ in deeper) / len(deeper) >= 0.95
    trained = _real_verdicts("-nli")
    assert sum(v == "equivalent" for _, v, _, _ in trained) / len(trained) >= 0.90
