"""CUDA graphs: capture the forward once per static shape, then replay it.

At small batch an eager encoder is bound by the host launching hundreds of kernels; a graph
replays them with one launch. Capture happens in ``bind`` (one graph per batch shape, sharing
one memory pool), so it is outside the timed region and its cost shows up as the case's cold
first call. Inputs are copied into static buffers, as a server would.

Lifetime: every captured graph is kept by the backend until :meth:`close`. Graphs captured
into one shared pool must outlive each other's use of that pool: letting one go when the
runner drops a bound batch trips PyTorch's caching allocator
(``it->second->use_count > 0 INTERNAL ASSERT FAILED``), which is how this backend failed
every case the first time it met a GPU.

Option ``compile``: capture a ``torch.compile``-d module instead of the eager one
(``max-autotune-no-cudagraphs`` picks Inductor's tuned kernels and leaves the graphs to us).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from harness.backends.base import BackendContext
from harness.backends.torchbase import TorchBackend

if TYPE_CHECKING:
    from harness.checkpoints.load import Checkpoint
    from harness.inputs.workloads import Batch

__all__ = ["CudaGraphBackend"]


class CudaGraphBackend(TorchBackend):
    name: ClassVar[str] = "cuda-graph"
    devices: ClassVar[tuple[str, ...]] = ("cuda",)
    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = TorchBackend.OPTIONS | {
        "compile": ("none", "default", "max-autotune-no-cudagraphs"),
    }

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        self.pool: Any = None
        #: Every graph captured so far, with its static output; released only in close().
        self.graphs: list[tuple[Any, Any]] = []
        self.capture_s: list[float] = []

    @classmethod
    def unavailable(cls, device: str) -> str | None:
        if not torch.cuda.is_available():
            return "CUDA graphs need a CUDA device"
        return None

    def prepare(self, ckpt: Checkpoint, example: Batch) -> dict[str, Any]:
        model, precision = self.place(ckpt)
        compile_mode = self.ctx.option("compile", "none")
        if compile_mode != "none":
            torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
            model = torch.compile(model, mode=compile_mode, dynamic=False)  # type: ignore[assignment]
        self.module = model
        self.pool = self.new_pool()
        return (
            precision
            | self.variant_info()
            | {
                "mode": "capture per static shape, replay",
                "compile": compile_mode,
            }
        )

    def new_pool(self) -> Any:
        return torch.cuda.graph_pool_handle()

    def capture(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[Any, Any]:
        """Warm up on a side stream (compiles, autotunes, settles the allocator), then
        capture one forward into the shared pool. Returns (graph, static output)."""
        stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(3):
                self.module(ids, mask)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph, pool=self.pool):
            out = self.module(ids, mask)
        return graph, out

    def bind(self, batch: Batch) -> Any:
        ids, mask = super().bind(batch)
        start = time.perf_counter()
        graph, out = self.capture(ids, mask)
        self.capture_s.append(time.perf_counter() - start)
        self.graphs.append((graph, out))
        # The static inputs must stay alive too: the graph reads their addresses.
        return (graph, out, ids, mask)

    def run(self, bound: Any) -> Any:
        graph, out = bound[0], bound[1]
        graph.replay()
        return out

    def close(self) -> None:
        self.graphs.clear()
        super().close()
        self.pool = None
