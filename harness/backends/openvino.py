"""OpenVINO on the CPU: the runtime many CPU deployments pick first (the ``[openvino]`` extra).

* ``openvino`` — the harness's ONNX export (:mod:`harness.backends.onnx_graphs`) converted by
  OpenVINO's own converter (``openvino.convert_model``), saved as IR in the cache, compiled
  for the CPU with the case's threads, one stream and the latency hint. OpenVINO chooses the
  precision itself unless told (``precision=auto``, the default: bf16 on CPUs with AMX or
  AVX-512 BF16); the record says what ran (``inference_precision``), and a case that ran in
  bf16 is judged by accuracy (cosine, top-1), not by a float32 tolerance.
* ``openvino-int8`` — the IR quantized by NNCF's post-training quantization (weights and
  activations int8, ``ModelType.TRANSFORMER``), calibrated on real sentences: the
  ``calibration_languages`` option (``eng`` by default: English sentences), taken from the
  corpus's *train* half, so no measured sentence calibrates the graph it measures. Accuracy
  on every served language is in each case's record.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from harness.backends.base import BackendContext, validate_options
from harness.backends.onnx_graphs import export_graph, staged
from harness.cache import seal_entry, usable
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.checkpoints.load import Checkpoint
    from harness.inputs.workloads import Batch

__all__ = ["OpenVinoBackend", "OpenVinoInt8Backend", "openvino_unavailable"]

_HINTS = {"auto": None, "f32": "f32", "bf16": "bf16"}
#: Sentences NNCF calibrates on (its default subset is 300; transformer activations settle
#: well before that, and a calibration pass over xlmr-base costs a second or two each).
CALIBRATION_SENTENCES = 64


def openvino_unavailable() -> str | None:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return "OpenVINO is not installed (pip install 'xlmr-harness[openvino]')"
    return None


class OpenVinoBackend:
    name: ClassVar[str] = "openvino"
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    dtypes: ClassVar[tuple[str, ...]] = ("float32",)
    takes_onnx_exports: ClassVar[bool] = False
    int8: ClassVar[bool] = False
    #: Needs calibration sentences from the corpus (BackendContext.calibration).
    calibrated: ClassVar[bool] = False
    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = {
        "precision": tuple(_HINTS),
        "min_cosine": ("0.9", "0.95", "0.98", "0.99", "0.995", "0.999"),
    }

    def __init__(self, ctx: BackendContext) -> None:
        self.ctx = ctx
        self.request: Any = None
        #: Set by prepare: True when the compiled graph does not run float32 (bf16 chosen by
        #: OpenVINO, or int8): its parity is then accuracy.
        self.approximate = self.int8

    @classmethod
    def check_options(cls, options: dict[str, str]) -> None:
        free = {k: v for k, v in options.items() if k == "calibration_languages"}
        validate_options(cls.name, {k: v for k, v in options.items() if k not in free}, cls.OPTIONS)
        if free and not cls.calibrated:
            raise HarnessError(
                f"backend {cls.name!r}: calibration_languages is for the int8 variant"
            )

    @classmethod
    def dtypes_on(cls, device: str) -> tuple[str, ...]:
        return cls.dtypes

    @classmethod
    def unavailable(cls, device: str) -> str | None:
        return openvino_unavailable()

    def _ir(self, ckpt: Checkpoint, example: Batch) -> tuple[Any, dict[str, Any]]:
        """The IR from the cache, or converted (and, for int8, quantized) and cached."""
        import openvino as ov

        onnx_path, info, _ = export_graph(ckpt, example, self.ctx.cache_dir, False, "auto")
        key = f"{info.get('export_key')}-ov{ov.__version__.split('-')[0]}"
        if self.int8:
            import nncf

            # What the graph was quantized on and by: the sentences, NNCF and its settings.
            settings = self.ctx.calibration_facts | {
                "nncf": nncf.__version__,
                "model_type": "TRANSFORMER",
                "subset_size": len(self.ctx.calibration),
            }
            digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
            key += "-int8-" + digest[:12]
        folder = self.ctx.cache_dir / "openvino" / key
        xml = folder / "model.xml"
        converted = False
        if not usable(folder, [xml, folder / "model.bin"], "OpenVINO IR"):
            with staged(folder, required="model.xml") as staging:
                model = ov.convert_model(str(onnx_path))
                if self.int8:
                    model = self._quantize(model)
                ov.save_model(model, str(staging / "model.xml"), compress_to_fp16=False)
                seal_entry(staging)
            converted = True
        return ov.Core().read_model(str(xml)), info | {"ir_key": key, "converted": converted}

    def _quantize(self, model: Any) -> Any:
        import nncf

        if not self.ctx.calibration:
            raise HarnessError(f"{self.name}: no calibration sentences (a corpus is needed)")
        items = [
            {"input_ids": b.input_ids.numpy(), "attention_mask": b.attention_mask.numpy()}
            for b in self.ctx.calibration
        ]
        # Measurement code never prints: NNCF's log lines and progress bars are swallowed.
        nncf.set_log_level(logging.ERROR)
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            return nncf.quantize(
                model,
                nncf.Dataset(items),
                model_type=nncf.ModelType.TRANSFORMER,
                subset_size=len(items),
            )

    def prepare(self, ckpt: Checkpoint, example: Batch) -> dict[str, Any]:
        import openvino as ov

        if ckpt.onnx is not None:
            raise HarnessError(f"{self.name}: runs the harness's own export of PyTorch weights")
        model, info = self._ir(ckpt, example)
        hint = _HINTS[self.ctx.option("precision", "auto")]
        config: dict[str, Any] = {
            "INFERENCE_NUM_THREADS": self.ctx.threads,
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
        }
        if hint:
            config["INFERENCE_PRECISION_HINT"] = hint
        compiled = ov.Core().compile_model(model, "CPU", config)
        ran = _precision_name(compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.request = compiled.create_infer_request()
        self.approximate = self.int8 or ran != "f32"
        out: dict[str, Any] = info | {
            "openvino": ov.__version__,
            "inference_precision": "int8 (NNCF), other ops " + ran if self.int8 else ran,
            "precision_hint": hint or "auto (OpenVINO's choice)",
            "num_threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
            "exporter": f"openvino.convert_model from {info.get('exporter')}",
        }
        if self.int8:
            out["calibration"] = {
                "method": "nncf.quantize (post-training, ModelType.TRANSFORMER)",
                **self.ctx.calibration_facts,
            }
        return out

    def bind(self, batch: Batch) -> Any:
        return {
            "input_ids": batch.input_ids.numpy(),
            "attention_mask": batch.attention_mask.numpy(),
        }

    def run(self, bound: Any) -> Any:
        self.request.infer(bound, share_inputs=True)
        return self.request

    def sync(self) -> None:
        return None

    def output(self, result: Any) -> np.ndarray:
        return np.array(result.get_output_tensor(0).data, dtype=np.float32)

    def close(self) -> None:
        self.request = None


def _precision_name(value: Any) -> str:
    """OpenVINO's element type (``<Type: 'bfloat16'>``, ``bf16``, ``f32``…) as bf16 / f16 / f32."""
    text = str(value).lower()
    if "bf16" in text or "bfloat16" in text:
        return "bf16"
    if "f16" in text or "float16" in text:
        return "f16"
    if "32" in text:
        return "f32"
    return text


class OpenVinoInt8Backend(OpenVinoBackend):
    name: ClassVar[str] = "openvino-int8"
    int8: ClassVar[bool] = True
    calibrated: ClassVar[bool] = True

    @classmethod
    def unavailable(cls, device: str) -> str | None:
        missing = openvino_unavailable()
        if missing:
            return missing
        try:
            import nncf  # noqa: F401
        except ImportError:
            return "NNCF is not installed (pip install 'xlmr-harness[openvino]')"
        return None
