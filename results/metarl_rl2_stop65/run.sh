#!/bin/bash
# Stop 65: metarl.gridworld at `small`, 5 seeds, --jobs 2, from a clone of main with RL2 on the
# C recurrence, an empty cache, nothing else running (timed_run.sh of stop 64 logs it).
CLONE=/tmp/s65/clone PROVENML_CACHE=/tmp/s65/cache LOG=/tmp/s65/times.log RUNS=/tmp/s65/runs OUTS=/tmp/s65/out_
export PROVENML_CACHE
source "$(cd "$(dirname "$0")/../list_times_stop64" && pwd)/timed_run.sh"
cd "$CLONE"
run metarl.gridworld --seeds 5 --jobs 2
echo "=== all done $(date -u +%H:%M:%S)" >> "$LOG"
