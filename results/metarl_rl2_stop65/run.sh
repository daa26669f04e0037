#!/bin/bash
# Stop 65: one of S2's experiments at `small`, 5 seeds, --jobs 2, from a clone of main in
# /tmp/s65/clone, with an empty cache of its own and nothing else running:
#   run.sh metarl.gridworld   (then metarl.session_rate, metarl.ablations, metarl.reacher)
# ../list_times_stop64/timed_run.sh logs its start, end, wall seconds and load averages to
# /tmp/s65/times_<experiment>.log (committed here as times_<experiment>.log).
NAME=${1:?usage: run.sh metarl.EXPERIMENT} SHORT=${1#metarl.}
CLONE=/tmp/s65/clone PROVENML_CACHE=/tmp/s65/cache_$SHORT LOG=/tmp/s65/times_$SHORT.log
RUNS=/tmp/s65/runs_$SHORT OUTS=/tmp/s65/out_
export PROVENML_CACHE
source "$(cd "$(dirname "$0")/../list_times_stop64" && pwd)/timed_run.sh"
cd "$CLONE"
run "$NAME" --seeds 5 --jobs 2
echo "=== all done $(date -u +%H:%M:%S)" >> "$LOG"
