"""An independent reference for the harness's GPU figures: a bare CUDA-event loop.

It shares no code with the harness: it builds a random-init XLM-R (transformers' own class),
mean-pools like the harness's encoder head, and times ``iters`` calls per shape with CUDA
events around each, eagerly and replaying one CUDA graph per shape. The harness's p50 for the
same cell divided by this loop's median is the harness's overhead (or its error).

    python3 bench/gpu/bare_loop.py --out bare.json [--shapes 1x128,64x512] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time

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
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    config = XLMRobertaConfig(**LARGE, attn_implementation="sdpa")
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device("cuda"):
        model = XLMRobertaModel(config, add_pooling_layer=False).to(dtype).eval()
    build_s = time.perf_counter() - t0
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
        results.append({"batch": batch, "seq": seq, "eager_ms": eager, "cuda_graph_ms": replay})
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
        print(
            f"bare b{r['batch']}x{r['seq']}: eager {r['eager_ms']:.3f} ms, graph {r['cuda_graph_ms']:.3f} ms"
        )


if __name__ == "__main__":
    main()
