#!/bin/bash
# S2's three non-headline experiments at `small`, 5 seeds, one after another on the idle host.
CLONE=/tmp/s64/clone2 PROVENML_CACHE=/tmp/s64/cache2 LOG=/tmp/s64/times2.log RUNS=/tmp/s64/runs2 OUTS=/tmp/s64/out2_
export PROVENML_CACHE
source "$(cd "$(dirname "$0")" && pwd)/timed_run.sh"
cd "$CLONE"
run metarl.gridworld --seeds 5 --jobs 2
run metarl.ablations --seeds 5 --jobs 2
run metarl.session_rate --seeds 5 --jobs 2
echo "=== all done $(date -u +%H:%M:%S)" >> "$LOG"
