#!/bin/bash
# Stop 65: metarl.ablations at `small`, 5 seeds, --jobs 2 (20.7 min at stop 64 on this host,
# unchanged code since), from a clone of main, an empty cache, nothing else running.
CLONE=/tmp/s65/clone PROVENML_CACHE=/tmp/s65/cache_abl LOG=/tmp/s65/times_abl.log RUNS=/tmp/s65/runs_abl OUTS=/tmp/s65/out_
export PROVENML_CACHE
source "$(cd "$(dirname "$0")/../list_times_stop64" && pwd)/timed_run.sh"
cd "$CLONE"
run metarl.ablations --seeds 5 --jobs 2
echo "=== all done $(date -u +%H:%M:%S)" >> "$LOG"
