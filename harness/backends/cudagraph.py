"""CUDA graphs: capture the forward once per static shape, then replay it.

At small batch an eager encoder is bound by the host launching hundreds of kernels; a graph
replays them with one launch. Capture happens in ``bind`` (one graph per batch shape, sharing
one memory pool), so it is outside the timed region and its cost shows up as the case's cold
first call. Inputs are copied into static buffers, as a server would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from .base import BackendContext, validate_options
from .eager import torch_dtype

if TYPE_CHECKING:
    from ..checkpoints import Checkpoint
    from ..workloads import Batch


class CudaGraphBackend:
    name: ClassVar[str] = "cuda-graph"
    devices: ClassVar[tuple[str, ...]] = ("cuda",)
    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, ctx: BackendContext) -> None:
        self.ctx = ctx
        self.module: torch.nn.Module | None = None
        self.pool: Any = None

    @classmethod
    def unavailable(cls, device: str) -> str | None:
        if not torch.cuda.is_available():
            return "CUDA graphs need a CUDA device"
        return None

    @classmethod
    def check_options(cls, options: dict[str, str]) -> None:
        validate_options(cls.name, options, cls.OPTIONS)

    def prepare(self, ckpt: Checkpoint, example: Batch) -> dict[str, Any]:
        from ..gpu import set_precision

        precision = set_precision(self.ctx.dtype)
        self.module = ckpt.model.to(device="cuda", dtype=torch_dtype(self.ctx.dtype)).eval()
        self.pool = torch.cuda.graph_pool_handle()
        return {"mode": "capture per static shape, replay", **precision}

    def bind(self, batch: Batch) -> Any:
        assert self.module is not None
        ids = batch.input_ids.to("cuda")
        mask = batch.attention_mask.to("cuda")
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

    def sync(self) -> None:
        torch.cuda.synchronize()

    def output(self, result: Any) -> np.ndarray:
        return np.asarray(result.detach().float().cpu().numpy())

    def close(self) -> None:
        self.module = None
        self.pool = None
