#!/bin/sh
# Runs each multi-master scenario and fix (and cross-node-lost-update's second order) at every
# level RUNS times (default 50) on a throwaway Galera cluster, and counts the verdicts: a
# node's lag that is a step gives one verdict per variant and level, however often it runs.
#   sh bench/galera-repeat.sh [RUNS]
set -eu
runs=${1:-50}
cd "$(dirname "$0")/.."
cargo build --release --quiet
binary=target/release/anomalies
for variant in \
  "cross-node-lost-update" \
  "cross-node-lost-update --interleaving both-read-first" \
  "cross-node-lost-update --fix atomic-update" \
  "cross-node-lost-update --fix single-writer" \
  "cross-node-write-skew" \
  "cross-node-for-update"; do
  i=0
  while [ "$i" -lt "$runs" ]; do
    # shellcheck disable=SC2086
    "$binary" run $variant --engine galera --level all --format json | python3 -c "
import json, sys
for run in json.load(sys.stdin)['runs']:
    print('$variant |', run['level']['requested'], run['verdict'], run['prevented_by'] or '')"
    i=$((i + 1))
  done
done | sort | uniq -c
