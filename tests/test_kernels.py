from __future__ import annotations

import pytest

from harness.measure.kernels import KernelTime, breakdown, kernel_kind

# Names as torch.profiler reports them on an H200 (torch 2.11, cuBLAS 13, Inductor).
NAMES = [
    ("nvjet_tst_128x64_64x8_2x1_v_bz_coopA_TNT", "gemm"),
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1", "gemm"),
    ("triton_tem_fused_addmm_0", "gemm"),
    ("pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 128, 4>>", "attention"),
    (
        "fmha_cutlassF_bf16_aligned_64x64_rf_sm80(PyTorchMemEffAttention::AttentionKernel)",
        "attention",
    ),
    ("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::BFloat16>", "norm"),
    ("triton_per_fused_add_native_layer_norm_3", "norm"),
    ("triton_poi_fused_gelu_4", "fused (Inductor)"),
    (
        "void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl>",
        "elementwise",
    ),
    ("Memcpy HtoD (Pageable -> Device)", "copy"),
    ("some_custom_kernel", "other"),
]


@pytest.mark.parametrize(("name", "kind"), NAMES)
def test_kernel_kind_from_real_names(name: str, kind: str) -> None:
    assert kernel_kind(name) == kind


def test_breakdown_sums_counts_and_times_per_kind_and_ranks_names() -> None:
    kernels = [
        KernelTime("nvjet_a", 10e-6),
        KernelTime("nvjet_a", 12e-6),
        KernelTime("flash_fwd", 8e-6),
        KernelTime("triton_poi_fused_add_1", 2e-6),
        KernelTime("nvjet_b", 5e-6),
    ]
    got = breakdown(kernels, top=2)
    assert got["by_kind"]["gemm"] == {"kernels": 3, "device_time_s": pytest.approx(27e-6)}
    assert got["by_kind"]["attention"]["kernels"] == 1
    assert list(got["by_kind"]) == ["gemm", "attention", "fused (Inductor)"]  # by time
    assert [t["name"] for t in got["top"]] == ["nvjet_a", "flash_fwd"]
    assert got["top"][0]["calls"] == 2 and got["top"][0]["kind"] == "gemm"
    assert breakdown([])["by_kind"] == {}
