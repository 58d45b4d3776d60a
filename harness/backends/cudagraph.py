"""CUDA graphs: capture the forward once per static shape, then replay it.

At small batch an eager encoder is bound by the host launching hundreds of kernels; a graph
replays them with one launch. Capture happens in ``bind`` (one graph per batch shape, sharing
one memory pool), so it is outside the timed region and its cost shows up as the case's cold
first call. Inputs are copied into static buffers, as a server would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .base import BackendContext
from .torchbase import TorchBackend

if TYPE_CHECKING:
    from ..checkpoints import Checkpoint
    from ..workloads import Batch


class CudaGraphBackend(TorchBackend):
    name: ClassVar[str] = "cuda-graph"
    devices: ClassVar[tuple[str, ...]] = ("cuda",)

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        self.pool: Any = None

    @classmethod
    def unavailable(cls, device: str) -> str | None:
        if not torch.cuda.is_available():
            return "CUDA graphs need a CUDA device"
        return None

    def prepare(self, ckpt: Checkpoint, example: Batch) -> dict[str, Any]:
        self.module, precision = self.place(ckpt)
        self.pool = torch.cuda.graph_pool_handle()
        return {"mode": "capture per static shape, replay", **precision}

    def bind(self, batch: Batch) -> Any:
        ids, mask = super().bind(batch)
        stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(3):  # warm up kernels and allocator before capture
                self.module(ids, mask)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph, pool=self.pool):
            out = self.module(ids, mask)
        return (graph, out)

    def run(self, bound: Any) -> Any:
        graph, out = bound
        graph.replay()
        return out

    def close(self) -> None:
        super().close()
        self.pool = None
