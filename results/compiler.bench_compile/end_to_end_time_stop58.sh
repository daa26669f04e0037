#!/bin/bash
# Stop 58: wall time of compiler.end_to_end at small (one seed, --jobs 1, empty caches), the code
# before the tuner screening (0f30bf6, a git worktree at /tmp/s58/old) and after (HEAD), one
# after the other. Output: end_to_end_time_stop58.txt (the log).
# old (0f30bf6) and new (HEAD) compiler.end_to_end at small, one seed, empty caches, one after the other
for rev in old new; do
  if [ $rev = old ]; then src=/tmp/s58/old/src; else src=/work/main/src; fi
  cache=$(mktemp -d /tmp/s58/cache.XXXX); runs=$(mktemp -d /tmp/s58/runs.XXXX)
  echo "$rev start $(date -u +%T) $(cat /proc/loadavg)" >> /tmp/s58/e2e.log
  s=$(date +%s.%N)
  PROVENML_CACHE=$cache PYTHONPATH=$src /work/main/.venv/bin/python -m provenml.cli reproduce compiler.end_to_end --scale small --seeds 1 --jobs 1 --out $runs > /tmp/s58/e2e_$rev.out 2>&1
  e=$(date +%s.%N)
  echo "$rev end $(date -u +%T) $(cat /proc/loadavg) seconds $(echo "$e - $s" | bc) rc $?" >> /tmp/s58/e2e.log
  cp -r $runs /tmp/s58/runs_$rev
done
