#!/usr/bin/env bash
# 10 A/A and 10 planted (+8.3 %: one more layer) trials of the in-job gate, alternating.
cd /work/main
export HARNESS_TATOEBA=/work/shared/corpora/tatoeba
for i in $(seq 1 10); do
  for cand in xlmr-base xlmr-base-deep; do
    t0=$(date +%s)
    .venv/bin/python -m harness check --candidate $cand --suite bench/ci/interleaved.toml \
      --processes 2 --min-rounds 6 --max-rounds 10 --threshold 0.05 --out /tmp/trials/out -q \
      --json /tmp/trials/$cand-$i.json > /tmp/trials/$cand-$i.log 2>&1
    code=$?
    echo "trial $i $cand exit $code $(( $(date +%s) - t0 ))s" >> /tmp/trials/summary.txt
  done
done
echo DONE >> /tmp/trials/summary.txt
