"""An independent reference for the harness's GPU figures: a bare CUDA-event loop.

It shares no code with the harness: it builds a random-init XLM-R (transformers' own class),
mean-pools like the harness's encoder head, and times ``iters`` calls per shape with CUDA
events around each, eagerly and replaying one CUDA graph per shape; at the ``--jit-shapes``
also traced and frozen (TorchScript, traced on a padded example as the harness does) and
``torch.compile``-d (default mode, static shapes), so every harness backend has a bare
counterpart. The harness's p50 for the same cell divided by this loop's median is the
harness's overhead (or its error).

    python3 bench/gpu/bare_loop.py --out bare.json [--shapes 1x128,64x512] [--dtype bfloat16]
        [--jit-shapes 64x128,64x512]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
import warnings

import torch
from transformers import XLMRobertaConfig, XLMRobertaModel

LARGE = {
    "num_hidden_layers": 24,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_attention_heads": 16,
    "vocab_size": 250002,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
}


def pooled(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


class Pooled(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return pooled(self.model, ids, mask)


def traced(model: torch.nn.Module, device: str = "cuda") -> torch.nn.Module:
    ids = torch.randint(5, 1000, (2, 16), device=device)
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0  # a padded row, so the trace keeps the mask path
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about Python-side shape checks
        return torch.jit.freeze(
            torch.jit.trace(Pooled(model), (ids, mask), check_trace=False).eval()
        )  # type: ignore[no-untyped-call,no-any-return]


def median_ms(fn, iters: int) -> float:  # type: ignore[no-untyped-def]
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--shapes", default="1x128,1x512,64x128,64x512")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--jit-shapes", default="", help="shapes also timed traced and compiled")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    config = XLMRobertaConfig(**LARGE, attn_implementation="sdpa")
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device("cuda"):
        model = XLMRobertaModel(config, add_pooling_layer=False).to(dtype).eval()
    build_s = time.perf_counter() - t0
    jit_shapes = set(filter(None, args.jit_shapes.split(",")))
    script = traced(model) if jit_shapes else None
    compiled = torch.compile(Pooled(model), dynamic=False) if jit_shapes else None
    results = []
    for shape in args.shapes.split(","):
        batch, seq = (int(x) for x in shape.split("x"))
        ids = torch.randint(5, config.vocab_size, (batch, seq), device="cuda")
        mask = torch.ones_like(ids)
        with torch.inference_mode():
            eager = median_ms(functools.partial(pooled, model, ids, mask), args.iters)
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    pooled(model, ids, mask)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                pooled(model, ids, mask)
            replay = median_ms(graph.replay, args.iters)
            del graph
        row = {"batch": batch, "seq": seq, "eager_ms": eager, "cuda_graph_ms": replay}
        if shape in jit_shapes:
            with torch.inference_mode():
                row["torchscript_ms"] = median_ms(functools.partial(script, ids, mask), args.iters)
                row["compile_ms"] = median_ms(functools.partial(compiled, ids, mask), args.iters)
        results.append(row)
    out = {
        "what": "bare CUDA-event loop, random-init XLM-R large, SDPA, mean pooling",
        "dtype": args.dtype,
        "iters": args.iters,
        "statistic": "median",
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "build_s": build_s,
        "results": results,
    }
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=1)
    for r in results:
        times = ", ".join(f"{k[:-3]} {v:.3f} ms" for k, v in r.items() if k.endswith("_ms"))
        print(f"bare b{r['batch']}x{r['seq']}: {times}")


if __name__ == "__main__":
    main()
