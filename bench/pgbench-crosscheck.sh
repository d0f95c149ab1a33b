#!/bin/sh
# Cross-checks one cell of `anomalies bench` against pgbench (issue 12, item 6): the atomic
# strategy at 16 workers on 5 hot accounts, on the same server, in one run. pgbench runs the
# same statement (the guarded UPDATE and its ledger row in one writable CTE, simple protocol,
# one client thread like the bench's) on the same tables, for the same time.
#
#   cargo build --release && sh bench/pgbench-crosscheck.sh              # a server of its own
#   sh bench/pgbench-crosscheck.sh 'postgresql://me@db/scratch'          # a server of yours
#   DURATION=5 ROUNDS=3 WORKERS=16 HOT=5 sh bench/pgbench-crosscheck.sh   # the defaults
#
# Without a URL it starts a private PostgreSQL (initdb in a temporary directory, a unix socket
# only, as the `postgres` user when run as root, with the throwaway cluster's settings) and
# removes it at the end. On a URL it makes
# one schema, `anomalies_crosscheck`, and drops it at the end; the bench cleans up after itself.
# The two alternate for ROUNDS rounds; the median ratio within ±25 % is what the issue asks
# for, and the exit code is 1 outside it. The load average is printed before and after.
set -eu

ANOMALIES=${ANOMALIES:-target/release/anomalies}
BINDIR=${BINDIR:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}
DURATION=${DURATION:-5}
WORKERS=${WORKERS:-16}
HOT=${HOT:-5}
ROUNDS=${ROUNDS:-3}
url=${1:-}
# The private server gets the throwaway cluster's settings (src/engine/cluster/server.rs), so
# its figure compares with `anomalies bench` on the throwaway cluster.
SETTINGS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off \
    -c deadlock_timeout=50ms -c shared_buffers=16MB"
export PGOPTIONS='-c client_min_messages=warning'

work=$(mktemp -d)
chmod 755 "$work"
cleanup() {
    if [ -n "${schema_made:-}" ]; then
        "$BINDIR/psql" -q "$url" -c 'DROP SCHEMA IF EXISTS anomalies_crosscheck CASCADE' || true
    fi
    if [ -f "$work/data/postmaster.pid" ]; then
        as_server "$BINDIR/pg_ctl" -D "$work/data" -m fast -w stop >/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
as_server() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

if [ -z "$url" ]; then
    if [ "$(id -u)" = 0 ]; then chown postgres "$work"; fi
    as_server "$BINDIR/initdb" -D "$work/data" -U postgres --auth=trust >/dev/null
    as_server "$BINDIR/pg_ctl" -D "$work/data" -w -l "$work/log" \
        -o "-c listen_addresses='' -c unix_socket_directories=$work -c max_connections=100 $SETTINGS" \
        start >/dev/null
    url="postgresql:///postgres?host=$work&user=postgres"
fi

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores, shared by the clients and the server"

# pgbench's tables: the bench's, in a schema of its own.
"$BINDIR/psql" -q -v ON_ERROR_STOP=1 "$url" <<SQL
DROP SCHEMA IF EXISTS anomalies_crosscheck CASCADE;
CREATE SCHEMA anomalies_crosscheck;
SET search_path TO anomalies_crosscheck;
CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance BIGINT NOT NULL, lim BIGINT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0);
CREATE TABLE ledger (id bigserial PRIMARY KEY, account INTEGER NOT NULL, amount BIGINT NOT NULL);
INSERT INTO accounts (id, balance, lim) SELECT n, 1000, 500 FROM generate_series(1, $HOT) AS g(n);
SQL
schema_made=1
cat > "$work/atomic.sql" <<SQL
\set a random(1, $HOT)
\set amount random(1, 100)
\set d (2 * random(0, 1) - 1) * :amount
WITH u AS (UPDATE accounts SET balance = balance + :d WHERE id = :a AND balance + :d >= -lim RETURNING 1), l AS (INSERT INTO ledger (account, amount) SELECT :a, :d FROM u RETURNING 1) SELECT count(*) AS done FROM l;
SQL
pgbench() {
    PGOPTIONS="$PGOPTIONS -c search_path=anomalies_crosscheck" "$BINDIR/pgbench" -n -M simple \
        -j 1 -c "$WORKERS" -f "$work/atomic.sql" "$@" "$url"
}

# Rounds alternate the two, so that a burst of load on a shared machine falls on both.
round=1
: >"$work/ratios"
while [ "$round" -le "$ROUNDS" ]; do
    # The bench: its own schema, fresh tables, a 1 s warm-up, then DURATION seconds.
    bench_tps=$("$ANOMALIES" bench --url "$url" --strategies atomic --workers "$WORKERS" \
        --hot "$HOT" --warmup 1s --duration "${DURATION}s" --format csv |
        awk -F, 'NR == 2 { print $12 }')
    # pgbench: fresh balances, the same 1 s warm-up, then DURATION seconds. It counts every
    # transaction, refused debits too; its committed payments are the ledger's rows.
    "$BINDIR/psql" -q "$url" -c "UPDATE anomalies_crosscheck.accounts SET balance = 1000"
    pgbench -T 1 >/dev/null
    "$BINDIR/psql" -q "$url" -c 'TRUNCATE anomalies_crosscheck.ledger'
    pgbench -T "$DURATION" >"$work/pgbench.out"
    all=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$work/pgbench.out")
    processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' \
        "$work/pgbench.out")
    committed=$("$BINDIR/psql" -Atq "$url" -c 'SELECT count(*) FROM anomalies_crosscheck.ledger')
    pgbench_tps=$(echo "$all $committed $processed" | awk '{ printf "%.1f", $1 * $2 / $3 }')
    echo "$bench_tps $pgbench_tps" | awk -v r="$round" -v all="$all" '{
        printf "round %d: anomalies bench %.0f committed/s; pgbench %.0f committed/s (%.0f transactions/s); ratio %.2f\n", r, $1, $2, all, $1 / $2
    }'
    echo "$bench_tps $pgbench_tps" | awk '{ print $1 / $2 }' >>"$work/ratios"
    round=$((round + 1))
done

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
median=$(sort -n "$work/ratios" | awk '{ r[NR] = $1 } END { print (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2 }')
echo "atomic, $WORKERS workers, $HOT hot, ${DURATION}s a run: median bench / pgbench $median"
echo "$median" | awk '{
    within = ($1 >= 0.75 && $1 <= 1.25)
    print within ? "within ±25 %" : "outside ±25 %"
    exit within ? 0 : 1
}'
