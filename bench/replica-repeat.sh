#!/bin/sh
# Runs stale-replica-read and each of its fixes at every level RUNS times (default 50) on the
# throwaway primary and standby, and counts the verdicts: a lag that is a step gives one verdict
# per variant and level, however often it runs.
#   sh bench/replica-repeat.sh [RUNS]
set -eu
runs=${1:-50}
cd "$(dirname "$0")/.."
cargo build --release --quiet
binary=target/release/anomalies
for fix in none primary-read remote-apply read-your-writes; do
  i=0
  while [ "$i" -lt "$runs" ]; do
    if [ "$fix" = none ]; then
      "$binary" run stale-replica-read --level all --format json
    else
      "$binary" run stale-replica-read --fix "$fix" --level all --format json
    fi | python3 -c "
import json, sys
for run in json.load(sys.stdin)['runs']:
    print('$fix', run['level']['requested'], run['verdict'], run['prevented_by'] or '')"
    i=$((i + 1))
  done
done | sort | uniq -c
