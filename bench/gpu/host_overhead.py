"""Why a host-bound harness cell can differ from the bare loop: both timed in one process.

The harness's eager backend (prepared by the runner exactly as a case is: parity probe,
matmul peak, threads) and the bare loop's model (``bare_loop.py``: transformers' class, no
harness code) are timed alternately with the same CUDA-event loop, at a launch-bound and a
GPU-bound cell, in three conditions: as prepared (the case's ``threads``), with torch's
default thread count, and after one profiled call (torch.profiler / CUPTI). A ratio near 1 in
the first condition puts any gap between a harness run and a bare run on the process they ran
in, not on the harness's code path; the third shows what a profiler session leaves behind.

    python3 bench/gpu/host_overhead.py --out host.json [--shapes 1x128,64x128] [--threads 4]

``--device cpu --model xlmr-tiny`` runs the same steps on a CPU (host clock), as a smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bare_loop import median_ms, pooled


def host_median_ms(fn, iters: int) -> float:  # type: ignore[no-untyped-def]
    """The CPU smoke test's clock: host time per call, median."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from harness.cache import default_cache_dir
    from harness.execution.options import RunOptions
    from harness.execution.prepared import case_inputs, prepare_group
    from harness.spec.config import MeasureSpec, resolve_model
    from harness.spec.sweep import Case

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--shapes", default="1x128,64x128")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--model", default="xlmr-large")
    args = ap.parse_args()
    dev = args.device
    timed = median_ms if dev == "cuda" else host_median_ms
    dtype = "bfloat16" if dev == "cuda" else "float32"
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    spec = resolve_model(args.model)
    cases = [
        Case(
            spec,
            "eager",
            b,
            s,
            device=dev,
            dtype=dtype,
            threads=args.threads,
            measure=MeasureSpec(),
        )
        for b, s in shapes
    ]
    opts = RunOptions(cache_dir=default_cache_dir())
    group = prepare_group(cases[0], opts)
    harness_calls = [case_inputs(c, group, opts).calls[0] for c in cases]
    # The same architecture from transformers' own class and config (no harness code).
    dims = group.ckpt.model.model.config.to_dict()
    keys = (
        "num_hidden_layers",
        "hidden_size",
        "intermediate_size",
        "num_attention_heads",
        "vocab_size",
        "max_position_embeddings",
        "type_vocab_size",
    )
    config = XLMRobertaConfig(**{k: dims[k] for k in keys}, attn_implementation="sdpa")
    torch.manual_seed(0)
    with torch.device(dev):
        bare = XLMRobertaModel(config, add_pooling_layer=False).to(getattr(torch, dtype)).eval()
    bare_calls = []
    for b, s in shapes:
        ids = torch.randint(5, config.vocab_size, (b, s), device=dev)
        mask = torch.ones_like(ids)
        bare_calls.append(lambda ids=ids, mask=mask: pooled(bare, ids, mask))

    rows = []

    def round_(condition: str) -> None:
        for (b, s), h, r in zip(shapes, harness_calls, bare_calls, strict=True):
            times: dict[str, list[float]] = {"bare_ms": [], "harness_ms": []}
            with torch.inference_mode():
                for _ in range(2):  # alternate, so drift hits both alike
                    times["bare_ms"].append(timed(r, args.iters))
                    times["harness_ms"].append(timed(h, args.iters))
            row = {"condition": condition, "batch": b, "seq": s, "threads": torch.get_num_threads()}
            row |= {k: min(v) for k, v in times.items()}
            row["harness_over_bare"] = row["harness_ms"] / row["bare_ms"]
            rows.append(row)
            print(
                f"{condition:>24} b{b}x{s} threads {row['threads']:>2}: bare "
                f"{row['bare_ms']:.3f} ms, harness {row['harness_ms']:.3f} ms, "
                f"ratio {row['harness_over_bare']:.3f}",
                flush=True,
            )

    round_("as prepared")
    torch.set_num_threads(os.cpu_count() or 1)
    round_("torch default threads")
    torch.set_num_threads(args.threads)
    kernels = {}
    if dev == "cuda":
        from harness.measure.gpu import count_kernels

        kernels = {"harness": count_kernels(harness_calls[0]), "bare": count_kernels(bare_calls[0])}
        round_("after one profiled call")
    out = {
        "device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu",
        "torch": torch.__version__,
        "iters": args.iters,
        "statistic": "min of two alternating medians",
        "rows": rows,
        "kernels_first_shape": {
            k: {
                "per_call": v.get("per_call"),
                "device_time_s": v.get("device_time_s"),
                "by_kind": v.get("by_kind"),
            }
            for k, v in kernels.items()
        },
    }
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
