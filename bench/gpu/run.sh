#!/usr/bin/env bash
# One command for the GPU results: the XLM-R-large sweep (bench/gpu/large.toml) plus the GPU
# tests, into reports/gpu/. Runs where torch sees a CUDA device; uses the machine's own
# torch/transformers (no install), so it also runs on an image without network access.
#   bash bench/gpu/run.sh                 # full sweep
#   QUICK=1 bash bench/gpu/run.sh         # batch 1 and 64 at seq 128/512 only
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${GPU_OUT:-reports/gpu}
cache=${HARNESS_CACHE:-/tmp/xlmr-harness-cache}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0), torch.__version__)"
mkdir -p "$out"
python3 -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider 2>&1 | tail -3 | tee "$out/gpu-tests.txt"
extra=()
if [ "${QUICK:-0}" = "1" ]; then extra=(--batch-sizes 1,64 --seq-lens 128,512); fi
python3 -m harness run --sweep bench/gpu/large.toml --out "$out" --cache-dir "$cache" "${extra[@]}"
