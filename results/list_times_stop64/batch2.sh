#!/bin/bash
# S2's three non-headline experiments at `small`, 5 seeds, one after another on the idle host.
cd /tmp/s64/clone2
export PYTHONPATH=/tmp/s64/clone2/src PROVENML_CACHE=/tmp/s64/cache2
LOG=/tmp/s64/times2.log
run() {
  name=$1; shift
  s=$(date +%s); echo "=== $name $* | start $(date -u +%H:%M:%S) | load $(cut -d' ' -f1-3 /proc/loadavg)" >> $LOG
  /work/main/.venv/bin/python -m provenml.cli reproduce "$name" --scale small "$@" --out /tmp/s64/runs2 > /tmp/s64/out2_$name.txt 2>&1
  rc=$?
  e=$(date +%s); echo "=== $name rc=$rc | end $(date -u +%H:%M:%S) | wall $((e-s)) s | load $(cut -d' ' -f1-3 /proc/loadavg)" >> $LOG
}
run metarl.gridworld --seeds 5 --jobs 2
run metarl.ablations --seeds 5 --jobs 2
run metarl.session_rate --seeds 5 --jobs 2
echo "=== all done $(date -u +%H:%M:%S)" >> $LOG
