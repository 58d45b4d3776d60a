"""The backend protocol: prepare once, then bind / run / sync / output. Backends never time,
never print and never compute statistics; the runner does that around them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

if TYPE_CHECKING:
    from harness.checkpoints.load import Checkpoint
    from harness.inputs.workloads import Batch

__all__ = ["Backend", "BackendContext", "validate_options"]


def validate_options(
    backend: str, options: dict[str, str], allowed: dict[str, tuple[str, ...]]
) -> None:
    from harness.errors import HarnessError

    for key, value in options.items():
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise HarnessError(f"backend {backend!r} has no option {key!r} (options: {known})")
        if str(value) not in allowed[key]:
            raise HarnessError(
                f"backend {backend!r}: {key} must be one of {', '.join(allowed[key])}"
            )


@dataclass(frozen=True, slots=True)
class BackendContext:
    device: str
    dtype: str
    threads: int
    cache_dir: Path
    options: tuple[tuple[str, str], ...] = ()
    #: Static int8 variants: the batches they calibrate on, and what those are.
    calibration: tuple[Any, ...] = ()
    calibration_facts: dict[str, Any] = field(default_factory=dict)

    def option(self, name: str, default: str) -> str:
        return dict(self.options).get(name, default)


class Backend(Protocol):
    name: ClassVar[str]
    devices: ClassVar[tuple[str, ...]]
    #: The case dtypes this backend can run; a sweep asking for another is refused up front.
    dtypes: ClassVar[tuple[str, ...]]
    #: Whether it runs a checkpoint given as an ONNX export (no PyTorch weights).
    takes_onnx_exports: ClassVar[bool]

    @classmethod
    def dtypes_on(cls, device: str) -> tuple[str, ...]:
        """The dtypes it runs on ``device`` (some run only on a GPU)."""
        ...

    @classmethod
    def unavailable(cls, device: str) -> str | None:
        """Why this backend cannot run on ``device`` here (``None`` when it can)."""
        ...

    @classmethod
    def check_options(cls, options: dict[str, str]) -> None:
        """Raise :class:`HarnessError` for an option this backend does not know."""
        ...

    def prepare(self, ckpt: Checkpoint, example: Batch) -> dict[str, Any]:
        """Load / export / trace / build a session. Returns settings to record."""
        ...

    def bind(self, batch: Batch) -> Any:
        """Convert a batch to this backend's native inputs, outside the timed region."""
        ...

    def run(self, bound: Any) -> Any:
        """One forward pass; may return before the device is done (see :meth:`sync`)."""
        ...

    def sync(self) -> None:
        """Wait for outstanding device work."""
        ...

    def output(self, result: Any) -> np.ndarray:
        """The forward's output as float32 numpy, for parity checks."""
        ...

    def close(self) -> None: ...
