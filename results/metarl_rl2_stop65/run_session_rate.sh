#!/bin/bash
# Stop 65: metarl.session_rate at `small`, 5 seeds, --jobs 2 (its last idle time is stop 47's,
# on a faster Xeon), from a clone of main, an empty cache, nothing else running.
CLONE=/tmp/s65/clone PROVENML_CACHE=/tmp/s65/cache_rate LOG=/tmp/s65/times_rate.log RUNS=/tmp/s65/runs_rate OUTS=/tmp/s65/out_
export PROVENML_CACHE
source "$(cd "$(dirname "$0")/../list_times_stop64" && pwd)/timed_run.sh"
cd "$CLONE"
run metarl.session_rate --seeds 5 --jobs 2
echo "=== all done $(date -u +%H:%M:%S)" >> "$LOG"
