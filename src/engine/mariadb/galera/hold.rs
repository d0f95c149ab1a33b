//! Holding a node's appliers: making node K apply none of the write sets other nodes commit
//! until it is released, so that a scenario can read stale data there on purpose.
//!
//! The mechanism is one statement on a connection of its own to node K:
//! [`HOLD_APPLIERS`], `FLUSH TABLES WITH READ LOCK`. On a Galera node MariaDB does more than
//! take the global read lock: it desyncs the node and pauses its provider (the node says
//! `Donor/Desynced`), so that
//!
//! - the node's applier stops at the next write set (`wsrep_last_committed` stays put, the
//!   others queue up in `wsrep_local_recv_queue`: 19 of 20 in the tests);
//! - flow control is not raised for it, so commits on the other nodes return at once (20 in a
//!   row in the tests, past the default `gcs.fc_limit` of 16);
//! - reads on K with `wsrep_sync_wait = 0` see the old values every time.
//!
//! [`RELEASE_APPLIERS`], `UNLOCK TABLES`, resumes the provider and resyncs the node; so does
//! the connection's end, even an abrupt one, which is why no `SET GLOBAL wsrep_desync = ON`
//! is added: that global setting outlives the connection that set it and left the node
//! `Donor/Desynced` after the holder died (tried: FTWRL's own desync was undone, ours stayed).
//!
//! A read on a held node with `wsrep_sync_wait = 1` waits for the node to catch up, which it
//! cannot while held: it waits until the release, or fails with error 1205 (lock wait timeout)
//! after the provider's `repl.causal_read_timeout` (30 s by default). While it waits the
//! server shows it in PROCESSLIST with its statement and the state `starting`, `COMMAND =
//! Query`: nothing that says it waits for the cluster; [`sync_waiting`] finds it by that.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// Holds the appliers of the node this connection is to (see the module's doc).
pub const HOLD_APPLIERS: &str = "FLUSH TABLES WITH READ LOCK";

/// Releases what [`HOLD_APPLIERS`] held, on the same connection.
pub const RELEASE_APPLIERS: &str = "UNLOCK TABLES";

/// The position of the last write set the node applied, and the number of write sets it
/// received but has not applied.
pub const APPLIED_SQL: &str = "SELECT \
     (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
       WHERE VARIABLE_NAME = 'WSREP_LAST_COMMITTED'), \
     (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
       WHERE VARIABLE_NAME = 'WSREP_LOCAL_RECV_QUEUE')";

/// Holds the appliers of `conn`'s node until [`release_appliers`] on the same connection (or
/// its end).
pub async fn hold_appliers(conn: &mut Conn) -> Result<(), mysql_async::Error> {
    conn.query_drop(HOLD_APPLIERS).await
}

/// Lets `conn`'s node apply again what it was held from.
pub async fn release_appliers(conn: &mut Conn) -> Result<(), mysql_async::Error> {
    conn.query_drop(RELEASE_APPLIERS).await
}

/// `(wsrep_last_committed, wsrep_local_recv_queue)` of `conn`'s node.
pub async fn applied(conn: &mut Conn) -> Result<(u64, u64), mysql_async::Error> {
    let row: Option<(String, String)> = conn.query_first(APPLIED_SQL).await?;
    let number = |text: &str| text.trim().parse().unwrap_or(0);
    Ok(row.map_or((0, 0), |(last, queue)| (number(&last), number(&queue))))
}

/// The connections of `conn`'s node that run `statement` (their id): a read with
/// `wsrep_sync_wait` on a held node shows as a `Query` whose state is `starting`.
pub async fn sync_waiting(
    conn: &mut Conn,
    statement: &str,
) -> Result<Vec<u64>, mysql_async::Error> {
    conn.exec(
        "SELECT ID FROM information_schema.PROCESSLIST \
         WHERE COMMAND = 'Query' AND STATE = 'starting' AND INFO = ?",
        (statement,),
    )
    .await
}
