#!/bin/bash
# Stop 66: the two `small` times in `provenml list` that were measured under load (ssl.single_object
# beside `make test`, kge.scale at load 2.7-3.1), re-timed one after the other on the idle host
# from a clone of main in /tmp/s66/clone with an empty cache; ../list_times_stop64/timed_run.sh
# logs start, end, wall seconds and load averages to /tmp/s66/times.log (committed as times.log).
CLONE=/tmp/s66/clone PROVENML_CACHE=/tmp/s66/cache LOG=/tmp/s66/times.log RUNS=/tmp/s66/runs OUTS=/tmp/s66/out_
export PROVENML_CACHE
source "$(cd "$(dirname "$0")/../list_times_stop64" && pwd)/timed_run.sh"
cd "$CLONE"
run ssl.single_object --seeds 3 --jobs 2
run kge.scale --seeds 1 --jobs 1
echo "=== all done $(date -u +%H:%M:%S)" >> "$LOG"
