#!/usr/bin/env bash
# One command for the GPU results, into reports/gpu/ (or $GPU_OUT): the harness's eager
# backend against the bare model in one process (host_overhead.py), a bare CUDA-event loop
# (the independent reference: eager, CUDA graph, and at batch 64 its own trace and compile),
# the XLM-R-large sweep on every torch GPU backend (bench/gpu/large.toml), the latency-frontier
# sweeps (frontier-*.toml), the GPU tests, and the bare loop again. Uses the machine's own
# torch/transformers (no install), so it runs on an image without network access. Each stage
# has its own time cap; a failing stage is logged and the next one runs. $STAGES picks stages
# (default: all, in this order). Summarise with `python3 bench/gpu/summarize.py DIR`.
#
# Real text (stages packed-text, serve-buckets) needs $HARNESS_TATOEBA: the device has no
# network and ../shared does not travel, so copy the four languages' files into the checkout
# first (git-ignored): `mkdir -p .gpu-corpus && cp ../shared/corpora/tatoeba/tatoeba.{deu,jpn,tha,hin}-eng.* .gpu-corpus/`
# and carry `.gpu-corpus`. serve-bench needs MLPerf LoadGen; without it on the image the stage
# says so and is skipped (carry a wheel directory and set $WHEELS to install it offline).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${GPU_OUT:-reports/gpu}
cache=${HARNESS_CACHE:-/tmp/xlmr-harness-cache}
export HARNESS_CACHE=$cache PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
stages=${STAGES:-host-overhead bare-before large frontier-fused frontier-compiled frontier-autotune packed-text serve-buckets gpu-tests bare-after}
if [ -z "${HARNESS_TATOEBA:-}" ] && [ -d .gpu-corpus ]; then export HARNESS_TATOEBA="$PWD/.gpu-corpus"; fi
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0), torch.__version__)" || exit 2
mkdir -p "$out"
stage() {  # stage NAME CAP_S COMMAND...
  local name=$1 cap=$2; shift 2
  local t0=$SECONDS
  echo "== $name (cap ${cap}s)"
  timeout --signal=INT --kill-after=15 "$cap" "$@" 2>&1 | tee "$out/$name.log" | tail -12
  echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s"
}
sweep() {  # sweep NAME CAP_S: one bench/gpu/NAME.toml
  stage "$1" "$2" python3 -m harness run --sweep "bench/gpu/$1.toml" --out "$out" --cache-dir "$cache"
}
for s in $stages; do
  case $s in
    host-overhead) stage host-overhead "${CAP_HOST:-80}" python3 bench/gpu/host_overhead.py --out "$out/host-overhead.json" --iters 50 ;;
    bare-before) stage bare-before "${CAP_BARE:-100}" python3 bench/gpu/bare_loop.py --out "$out/bare-before.json" --jit-shapes 64x128,64x512 ;;
    large) sweep large "${CAP_LARGE:-200}" ;;
    frontier-fused) sweep frontier-fused "${CAP_FUSED:-80}" ;;
    frontier-compiled) sweep frontier-compiled "${CAP_COMPILED:-120}" ;;
    frontier-autotune) sweep frontier-autotune "${CAP_AUTOTUNE:-300}" ;;
    packed-text)  # padded and bucketed, then packed (no padded position computed)
      if [ -z "${HARNESS_TATOEBA:-}" ]; then echo "== packed-text: skipped (no \$HARNESS_TATOEBA)"; continue; fi
      sweep packed-text "${CAP_PACKED:-90}"
      for mode in true varlen; do
        stage "packed-text-$mode" "${CAP_PACKED:-90}" python3 -m harness run --sweep bench/gpu/packed-text.toml \
          --backend-option "eager.pack=$mode" --policies longest --out "$out" --cache-dir "$cache"
      done ;;
    serve-buckets)  # capacity per language at a p99 bound: graphs per shape bucket against eager
      if [ -z "${HARNESS_TATOEBA:-}" ]; then echo "== serve-buckets: skipped (no \$HARNESS_TATOEBA)"; continue; fi
      if [ -n "${WHEELS:-}" ]; then python3 -m pip install -q --no-index --find-links "$WHEELS" mlcommons-loadgen; fi
      if ! python3 -c "import mlperf_loadgen" 2>/dev/null; then echo "== serve-buckets: skipped (no MLPerf LoadGen)"; continue; fi
      stage serve-buckets "${CAP_SERVE:-150}" python3 -m harness serve-bench -m xlmr-large \
        -b cuda-graph-buckets -b eager --device cuda --dtype bfloat16 --languages deu,tha \
        --max-batch 32 --max-len 128 --p99 20ms --policies bucket --min-duration 2 \
        --max-probes 5 --out "$out" --cache-dir "$cache" ;;
    gpu-tests) stage gpu-tests "${CAP_TESTS:-75}" python3 -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider ${TESTS_K:+-k "$TESTS_K"} ;;
    bare-after) stage bare-after 45 python3 bench/gpu/bare_loop.py --out "$out/bare-after.json" ;;
    *) echo "unknown stage $s"; exit 2 ;;
  esac
done
