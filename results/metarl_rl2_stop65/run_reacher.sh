#!/bin/bash
# Stop 65: metarl.reacher at `small`, 5 seeds, --jobs 2 (the headline; never timed on this host,
# 15.3 min on stop 53's EPYC), from a clone of main, an empty cache, nothing else running.
CLONE=/tmp/s65/clone PROVENML_CACHE=/tmp/s65/cache_reacher LOG=/tmp/s65/times_reacher.log RUNS=/tmp/s65/runs_reacher OUTS=/tmp/s65/out_
export PROVENML_CACHE
source "$(cd "$(dirname "$0")/../list_times_stop64" && pwd)/timed_run.sh"
cd "$CLONE"
run metarl.reacher --seeds 5 --jobs 2
echo "=== all done $(date -u +%H:%M:%S)" >> "$LOG"
