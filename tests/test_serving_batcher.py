"""The dynamic batcher's decisions, on a clock the test controls."""

from __future__ import annotations

import pytest

from harness.serving.batcher import DynamicBatcher, Request, default_edges


def req(i: int, length: int = 10, at: float = 0.0) -> Request:
    return Request(id=i, index=i, length=length, arrival=at)


def test_a_full_queue_runs_at_once_oldest_first() -> None:
    b = DynamicBatcher(max_batch=3, max_delay_s=1.0)
    for i in range(4):
        b.add(req(i, at=0.1 * i))
    batch, deadline = b.take(now=0.3)
    assert [r.id for r in batch] == [0, 1, 2]
    assert deadline is None
    assert len(b) == 1


def test_a_partial_batch_waits_for_its_oldest_requests_delay() -> None:
    b = DynamicBatcher(max_batch=8, max_delay_s=0.005)
    b.add(req(0, at=1.000))
    b.add(req(1, at=1.002))
    batch, deadline = b.take(now=1.003)
    assert batch == []
    assert deadline == pytest.approx(1.005)
    batch, _ = b.take(now=1.005)
    assert [r.id for r in batch] == [0, 1]
    assert b.take(now=2.0) == ([], None)


def test_flush_runs_what_waits_without_delay() -> None:
    b = DynamicBatcher(max_batch=8, max_delay_s=10.0)
    b.add(req(0))
    assert b.take(now=0.0)[0] == []
    assert [r.id for r in b.take(now=0.0, flush=True)[0]] == [0]


def test_buckets_never_mix_lengths_and_the_oldest_ready_bucket_goes_first() -> None:
    b = DynamicBatcher(max_batch=2, max_delay_s=1.0, policy="bucket", edges=(16, 64, 128))
    b.add(req(0, length=100, at=0.0))  # long bucket, alone
    b.add(req(1, length=8, at=0.1))
    b.add(req(2, length=12, at=0.2))  # short bucket now full
    batch, _ = b.take(now=0.3)
    assert [r.id for r in batch] == [1, 2]
    batch, deadline = b.take(now=0.3)
    assert batch == [] and deadline == pytest.approx(1.0)
    assert [r.id for r in b.take(now=1.0)[0]] == [0]


def test_longest_policy_mixes_lengths_fifo() -> None:
    b = DynamicBatcher(max_batch=2, max_delay_s=1.0, policy="longest")
    b.add(req(0, length=100))
    b.add(req(1, length=8))
    assert [r.length for r in b.take(now=0.0)[0]] == [100, 8]


def test_lengths_beyond_the_last_edge_go_to_the_last_bucket() -> None:
    b = DynamicBatcher(max_batch=2, max_delay_s=1.0, policy="bucket", edges=(16, 32))
    b.add(req(0, length=30))
    b.add(req(1, length=500))
    assert [r.id for r in b.take(now=0.0)[0]] == [0, 1]


def test_default_edges_split_the_length_distribution_at_quantiles() -> None:
    lengths = list(range(1, 101))
    edges = default_edges(lengths, buckets=4)
    assert edges == (26, 51, 76, 100)
    assert default_edges([], 4) == ()
    assert default_edges([7] * 10, 4) == (7,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch": 0, "max_delay_s": 0.0}, "max_batch"),
        ({"max_batch": 1, "max_delay_s": -1.0}, "max_batch"),
        ({"max_batch": 1, "max_delay_s": 0.0, "policy": "sorted"}, "policy"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DynamicBatcher(**kwargs)  # type: ignore[arg-type]
