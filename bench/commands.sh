#!/bin/sh
# Whole commands as a user types them, two builds paired round by round (A B A B ...), on the
# same throwaway servers and caches: `matrix --engine postgres` and `check --engine all`.
#
#   sh bench/commands.sh BEFORE AFTER [ROUNDS]
#
# BEFORE and AFTER are two `anomalies` binaries (say, a release build of main in a clone, and
# target/release/anomalies). Prints each command's median wall time per binary, and the median
# of the rounds' ratios BEFORE / AFTER. With PER_ENGINE=1, also `check --engine E` for each
# engine.
set -eu

before=$1
after=$2
rounds=${3:-7}

now_ms() { date +%s%N | cut -c1-13; }

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

bench() {
    label=$1
    shift
    a_times=""
    b_times=""
    ratios=""
    # One untimed round each: both find the caches warm.
    "$before" "$@" >/dev/null 2>&1 || true
    "$after" "$@" >/dev/null 2>&1 || true
    i=0
    while [ "$i" -lt "$rounds" ]; do
        start=$(now_ms)
        "$before" "$@" >/dev/null 2>&1 || true
        a=$(($(now_ms) - start))
        start=$(now_ms)
        "$after" "$@" >/dev/null 2>&1 || true
        b=$(($(now_ms) - start))
        a_times="$a_times $a"
        b_times="$b_times $b"
        ratios="$ratios $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')"
        i=$((i + 1))
    done
    a_med=$(echo "$a_times" | tr ' ' '\n' | grep . | median)
    b_med=$(echo "$b_times" | tr ' ' '\n' | grep . | median)
    r_med=$(echo "$ratios" | tr ' ' '\n' | grep . | median)
    printf '%s: before %s ms, after %s ms (medians of %s rounds); before / after %s (median of the rounds)\n' \
        "$label" "$a_med" "$b_med" "$rounds" "$r_med"
    printf '  before:%s\n  after: %s\n' "$a_times" "$b_times"
}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
bench "matrix --engine postgres" matrix --engine postgres
bench "check --engine all" check --engine all
if [ "${PER_ENGINE:-}" = 1 ]; then
    for engine in postgres mariadb sqlite; do
        bench "check --engine $engine" check --engine "$engine"
    done
fi
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
