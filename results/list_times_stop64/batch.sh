#!/bin/bash
# Times each non-headline experiment at `small` on the idle host, one after another.
cd /tmp/s64/clone
export PYTHONPATH=/tmp/s64/clone/src PROVENML_CACHE=/tmp/s64/cache
LOG=/tmp/s64/times.log
run() {
  name=$1; shift
  s=$(date +%s); echo "=== $name $* | start $(date -u +%H:%M:%S) | load $(cut -d' ' -f1-3 /proc/loadavg)" >> $LOG
  /work/main/.venv/bin/python -m provenml.cli reproduce "$name" --scale small "$@" --out /tmp/s64/runs > /tmp/s64/out_$name.txt 2>&1
  rc=$?
  e=$(date +%s); echo "=== $name rc=$rc | end $(date -u +%H:%M:%S) | wall $((e-s)) s | load $(cut -d' ' -f1-3 /proc/loadavg)" >> $LOG
}
run kge.relation_patterns --seeds 3 --jobs 2
run kge.relation_extraction --seeds 3 --jobs 2
run kge.triple_classification --seeds 3 --jobs 2
run distrl.league --seeds 1 --jobs 1
run distrl.faults --seeds 1 --jobs 1
run wsd.oracle_regime --seeds 3 --jobs 2
run wsd.multibudget --seeds 3 --jobs 2
run fewshot.standard --seeds 3 --jobs 2
run fewshot.heads --seeds 3 --jobs 2
run fewshot.denoising --seeds 3 --jobs 2
run selection.noisy_labels --seeds 3 --jobs 2
run selection.clean_control --seeds 3 --jobs 2
run selection.scorer_size --seeds 3 --jobs 2
run selection.text --seeds 3 --jobs 2
run graphpretrain.transfer --seeds 1 --jobs 2
run federated.heterogeneity --seeds 3 --jobs 2
run federated.faults --seeds 3 --jobs 1
echo "=== all done $(date -u +%H:%M:%S)" >> $LOG
