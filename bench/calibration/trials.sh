#!/usr/bin/env bash
# End-to-end trials of the A/B decisions on this machine, and the real-noise fixture.
#
#   bash bench/calibration/trials.sh OUT [N]
#
# N (default 10) trials of `harness compare` per model, each with four arms: the baseline, an
# A/A copy of it (--aa), an intermediate-trained checkpoint of the same architecture, and the
# baseline plus one layer (13/12 = +8.3 % work) — so every trial is an A/A, an equivalence and
# a planted-slowdown trial at once, on eager PyTorch and ONNX Runtime. Models: xlmr-mid (calls of
# a few ms) and xlmr-base. Then N A/A and N planted trials of `harness check --candidate` per
# model. Everything runs at the harness's defaults but for the margin and minimum effect the
# README names for the XLM-R question (±5 %). Wall times land in OUT/times.tsv.
#
# $STAGES picks stages (default: "train compare-mid compare-base check-mid check-base").
set -euo pipefail
out=${1:?usage: trials.sh OUT [N]}
n=${2:-10}
stages=${STAGES:-train compare-mid compare-base check-mid check-base}
harness=(python -m harness)
mkdir -p "$out"
times="$out/times.tsv"
stat=(--margin 0.05 --min-effect 0.05)

timed() {  # label, command...
  local label=$1; shift
  local start=$SECONDS rc=0
  "$@" >"$out/$label.log" 2>&1 || rc=$?
  printf '%s\t%s\t%s\n' "$label" "$((SECONDS - start))" "$rc" >>"$times"
}

trained_spec() {  # model -> a spec serving its intermediate-trained weights as an encoder
  local model=$1
  cat >"$out/$model-nli.toml" <<TOML
name = "$model-nli"
source = "$out/$model-nli"
head = "encoder"
description = "$model after 20 steps of MNLI-shaped intermediate training, served as encoder"
TOML
}

for stage in $stages; do
  case $stage in
    train)
      for model in xlmr-mid xlmr-base; do
        [ -d "$out/$model-nli" ] || timed "train-$model" "${harness[@]}" train-intermediate \
          -m "$model" --task pair-classification --steps 20 --batch-size 8 --max-len 64 \
          --out "$out/$model-nli"
        trained_spec "$model"
      done ;;
    compare-mid|compare-base)
      model=xlmr-${stage#compare-}
      shapes=(--batch-sizes 1,8 --seq-lens 32)
      [ "$model" = xlmr-base ] && shapes=(--batch-sizes 1 --seq-lens 32)
      for i in $(seq 1 "$n"); do
        timed "$stage-$i" "${harness[@]}" compare -m "$model" -m "$out/$model-nli.toml" \
          -m "$model-deep" --aa -b eager -b onnxruntime "${shapes[@]}" --threads 2 \
          "${stat[@]}" --out "$out/$stage" -q
      done ;;
    check-mid|check-base)
      model=xlmr-${stage#check-}
      suite="$out/$model-suite.toml"
      cat >"$suite" <<TOML
name = "$model-gate"
models = ["$model"]
backends = ["eager", "onnxruntime"]
batch_sizes = [1]
seq_lens = [32]
threads = 2
TOML
      for i in $(seq 1 "$n"); do
        for candidate in "$model" "$model-deep"; do
          timed "$stage-$candidate-$i" "${harness[@]}" check --candidate "$candidate" \
            --suite "$suite" --threshold 0.05 --json "$out/$stage-$candidate-$i.json" \
            --out "$out/$stage" -q
        done
      done ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
