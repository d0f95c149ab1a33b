#!/bin/sh
# How much the throwaway cluster's cache grows over many runs (issue 11, item 3).
#
# Initialises a private cache, then runs `anomalies check --engine postgres` (every built-in
# scenario and fix at its levels: about 160 runs, on the primary and hot standby that
# `stale-replica-read` needs, which every other scenario runs on too) until RUNS runs are done,
# and prints the size of the pair's primary's data directory (slot 0), and of its postgres
# database, before and after, and how many times a start compacted it.
#
#   cargo build --release && sh bench/cache-growth.sh            # RUNS=3000
#   RUNS=500 ANOMALIES=/path/to/anomalies sh bench/cache-growth.sh
set -eu

RUNS=${RUNS:-3000}
ANOMALIES=${ANOMALIES:-target/release/anomalies}
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
# The server runs as an unprivileged user when we are root: it must reach the cache.
chmod 755 "$cache"
export ANOMALIES_CACHE_DIR="$cache"

"$ANOMALIES" check --engine postgres >/dev/null
data=$(echo "$cache"/pg-*-pair/slot-0/data)
compacted=$(cat "$data/../compacted")
compactions=0
# The postgres database is the highest-numbered directory in base/ (template1, template0, it).
database=$(ls "$data/base" | sort -n | tail -n 1)
kib() { du -sk "$1" | cut -f1; }
data_before=$(kib "$data")
database_before=$(kib "$data/base/$database")

runs=0
start=$(date +%s)
while [ "$runs" -lt "$RUNS" ]; do
    # "132 runs: 132 as expected, ..."
    done_now=$("$ANOMALIES" check --engine postgres | sed -n 's/^\([0-9][0-9]*\) runs:.*/\1/p')
    runs=$((runs + done_now))
    if [ "$(cat "$data/../compacted")" != "$compacted" ]; then
        compactions=$((compactions + 1))
        compacted=$(cat "$data/../compacted")
    fi
done
seconds=$(($(date +%s) - start))

data_after=$(kib "$data")
database_after=$(kib "$data/base/$database")
echo "runs: $runs in $seconds s, $compactions compactions"
echo "data directory: $data_before KiB -> $data_after KiB ($((data_after - data_before)) KiB)"
echo "base/$database: $database_before KiB -> $database_after KiB ($((database_after - database_before)) KiB)"
