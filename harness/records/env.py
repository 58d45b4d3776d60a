"""The environment a run was measured in, stored with every run (pyperf, asv, optimum do too)."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from harness.records.results import Record

__all__ = [
    "COMPARABLE_KEYS",
    "collect_env",
    "comparability_problems",
    "cpu_model",
    "gpu_env",
    "hardware_class",
    "nvml",
    "record_env",
]

#: Keys that must match for two runs' timings to be compared (see :mod:`harness.compare`).
COMPARABLE_KEYS = ("cpu_model", "logical_cpus", "torch", "onnxruntime", "transformers", "machine")

_PACKAGES = (
    "torch",
    "transformers",
    "onnxruntime",
    "onnx",
    "optimum-onnx",
    "numpy",
    "xlmr-harness",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: CPU features that decide which reduced-precision kernels run natively.
ISA_FLAGS = ("avx2", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


def cpu_isa() -> list[str]:
    """The instruction-set extensions of this CPU that int8 / bf16 kernels use."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return [f for f in ISA_FLAGS if f in flags]


def _git_sha(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def collect_env(root: Path | None = None) -> dict[str, Any]:
    """Versions, CPU, threads, OS and git revision. GPU facts are added by the CUDA backends."""
    import torch

    root = root or Path(__file__).resolve().parents[2]
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads_default": torch.get_num_threads(),
        "git_sha": _git_sha(root),
        "cuda_available": torch.cuda.is_available(),
    }
    for name in _PACKAGES:
        env[name.replace("-", "_")] = _version(name)
    if torch.cuda.is_available():
        env |= gpu_env()
    return env


def hardware_class(env: dict[str, Any]) -> str:
    """The hardware a timing belongs to: CPU model and GPU (results never pool across it)."""
    return f"{env.get('cpu_model')} · {env.get('gpu_name') or 'no GPU'}"


def record_env(rec: Record, run_env: dict[str, Any]) -> dict[str, Any]:
    """The environment a record was measured in: its node's (Ray) or else the run's."""
    host_env = rec.host.get("env") if rec.host else None
    return dict(host_env) if host_env else run_env


def comparability_problems(env_a: dict[str, Any], env_b: dict[str, Any]) -> list[str]:
    """Environment facts that make timings incomparable (different CPU, library versions)."""
    return [
        f"{k} differs: {env_a.get(k)!r} vs {env_b.get(k)!r}"
        for k in COMPARABLE_KEYS
        if env_a.get(k) != env_b.get(k)
    ]


def gpu_env() -> dict[str, Any]:
    """GPU facts for the environment: name, memory, CUDA, driver, clocks."""
    if not torch.cuda.is_available():
        return {}
    props = torch.cuda.get_device_properties(0)
    env: dict[str, Any] = {
        "gpu_name": props.name,
        "gpu_memory_bytes": props.total_memory,
        "gpu_sm_count": props.multi_processor_count,
        "cuda_version": torch.version.cuda,
    }
    nv = nvml()
    if nv is not None:
        handle = nv.nvmlDeviceGetHandleByIndex(0)
        env["gpu_driver"] = nv.nvmlSystemGetDriverVersion()
        for name, clock in (("sm", nv.NVML_CLOCK_SM), ("memory", nv.NVML_CLOCK_MEM)):
            try:
                env[f"gpu_clock_{name}_mhz"] = nv.nvmlDeviceGetClockInfo(handle, clock)
                env[f"gpu_max_clock_{name}_mhz"] = nv.nvmlDeviceGetMaxClockInfo(handle, clock)
            except Exception:
                pass
    return env


def nvml() -> Any:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    return pynvml
