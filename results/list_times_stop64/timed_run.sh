#!/bin/bash
# Sourced by batch.sh and batch2.sh: run NAME ARGS... reproduces one experiment at `small`
# from $CLONE with /work/main's .venv, its run folder in $RUNS and its console in
# $OUTS<name>.txt, and appends its start, end, wall seconds and load averages to $LOG.
export PYTHONPATH=$CLONE/src
run() {
  name=$1; shift
  s=$(date +%s); echo "=== $name $* | start $(date -u +%H:%M:%S) | load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$LOG"
  /work/main/.venv/bin/python -m provenml.cli reproduce "$name" --scale small "$@" --out "$RUNS" > "$OUTS$name.txt" 2>&1
  rc=$?
  e=$(date +%s); echo "=== $name rc=$rc | end $(date -u +%H:%M:%S) | wall $((e-s)) s | load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$LOG"
}
