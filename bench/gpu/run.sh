#!/usr/bin/env bash
# One command for the GPU results, into reports/gpu/ (or $GPU_OUT): a bare CUDA-event loop
# (the independent reference), the XLM-R-large sweep on every torch GPU backend
# (bench/gpu/large.toml), the latency-frontier variants (frontier-*.toml), the GPU tests, and
# the bare loop again. Uses the machine's own torch/transformers (no install), so it runs on
# an image without network access. Each stage has its own time cap; a failing stage is logged
# and the next one runs. Summarise afterwards with `python3 bench/gpu/summarize.py DIR`.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${GPU_OUT:-reports/gpu}
cache=${HARNESS_CACHE:-/tmp/xlmr-harness-cache}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0), torch.__version__)" || exit 2
mkdir -p "$out"
stage() {  # stage NAME CAP_S COMMAND...
  local name=$1 cap=$2; shift 2
  local t0=$SECONDS
  echo "== $name (cap ${cap}s)"
  timeout --signal=INT --kill-after=15 "$cap" "$@" 2>&1 | tee "$out/$name.log" | tail -40
  echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s"
}
stage bare-before 45 python3 bench/gpu/bare_loop.py --out "$out/bare-before.json"
stage large "${CAP_LARGE:-200}" python3 -m harness run --sweep bench/gpu/large.toml --out "$out" --cache-dir "$cache"
stage frontier-autotune "${CAP_AUTOTUNE:-300}" python3 -m harness run --sweep bench/gpu/frontier-autotune.toml --out "$out" --cache-dir "$cache"
stage frontier-fused "${CAP_FUSED:-80}" python3 -m harness run --sweep bench/gpu/frontier-fused.toml --out "$out" --cache-dir "$cache"
stage gpu-tests "${CAP_TESTS:-75}" python3 -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider
[ "${BARE_AFTER:-1}" = 1 ] && stage bare-after 45 python3 bench/gpu/bare_loop.py --out "$out/bare-after.json"
