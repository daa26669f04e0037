#!/bin/bash
# Times each non-headline experiment at `small` on the idle host, one after another.
CLONE=/tmp/s64/clone PROVENML_CACHE=/tmp/s64/cache LOG=/tmp/s64/times.log RUNS=/tmp/s64/runs OUTS=/tmp/s64/out_
export PROVENML_CACHE
source "$(cd "$(dirname "$0")" && pwd)/timed_run.sh"
cd "$CLONE"
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
echo "=== all done $(date -u +%H:%M:%S)" >> "$LOG"
