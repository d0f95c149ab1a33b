//! Asking a node whether it has joined: `wsrep_local_state_comment` and `wsrep_cluster_size`,
//! from the node itself, on a runtime of this blocking call's own.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::super::connect::opts_for_socket;
use super::super::server::MariaError;

/// Between two questions to a node that has not synced yet. Joining takes 0.1–0.5 s; a
/// question costs the node well under a millisecond.
const POLL_GAP: Duration = Duration::from_millis(5);

/// What a node says of itself.
#[derive(Debug, Default, PartialEq)]
pub struct NodeState {
    /// `Synced`, `Joining`, `Joined`, `Donor/Desynced`, …
    pub state: String,
    pub cluster_size: usize,
}

/// The question.
const STATE_SQL: &str =
    "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
     WHERE VARIABLE_NAME IN ('WSREP_LOCAL_STATE_COMMENT', 'WSREP_CLUSTER_SIZE')";

/// What `conn`'s node says of itself.
pub async fn state_of(conn: &mut Conn) -> Result<NodeState, mysql_async::Error> {
    let rows: Vec<(String, String)> = conn.query(STATE_SQL).await?;
    let mut state = NodeState::default();
    for (name, value) in rows {
        match name.to_ascii_uppercase().as_str() {
            "WSREP_LOCAL_STATE_COMMENT" => state.state = value,
            "WSREP_CLUSTER_SIZE" => state.cluster_size = value.parse().unwrap_or(0),
            _ => {}
        }
    }
    Ok(state)
}

/// Asks node `node` at `socket` until it says `Synced` in a cluster of `size`, or `deadline`
/// passes: then what it last said (the caller adds the reason from its log). A joiner that has
/// just said it is ready may still close a new connection before its handshake ("Aborted
/// connection … closed normally without authentication", while it drains what its
/// incremental transfer brought), or refuse a question (1047): those are asked again too.
pub(super) fn wait_synced(
    (node, nodes): (usize, usize),
    socket: &Path,
    size: usize,
    deadline: Instant,
) -> Result<Result<(), String>, MariaError> {
    let opts = opts_for_socket(socket);
    on_own_runtime((node, nodes), async move {
        let mut conn: Option<Conn> = None;
        loop {
            let said = match conn.as_mut() {
                Some(open) => state_of(open).await.map_err(|err| {
                    conn = None;
                    format!("cannot say its state ({err})")
                }),
                None => match Conn::new(opts.clone()).await {
                    Ok(open) => {
                        conn = Some(open);
                        continue;
                    }
                    Err(err) => Err(format!("it cannot be connected to ({err})")),
                },
            };
            let last = match said {
                Ok(state) if state.state == "Synced" && state.cluster_size == size => {
                    if let Some(open) = conn {
                        let _ = open.disconnect().await;
                    }
                    return Ok(Ok(()));
                }
                Ok(state) => format!(
                    "it says {:?} in a cluster of {}",
                    state.state, state.cluster_size
                ),
                Err(err) => err,
            };
            if Instant::now() >= deadline {
                if let Some(open) = conn {
                    let _ = open.disconnect().await;
                }
                return Ok(Err(last));
            }
            tokio::time::sleep(POLL_GAP).await;
        }
    })
}

/// Runs `future` to its end on a current-thread runtime in a thread of its own: the caller
/// may itself be a runtime's blocking thread, where a runtime cannot be entered again.
fn on_own_runtime<T: Send>(
    (node, nodes): (usize, usize),
    future: impl Future<Output = Result<T, MariaError>> + Send,
) -> Result<T, MariaError> {
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| MariaError::GaleraNode {
                    node,
                    nodes,
                    reason: format!("cannot make a runtime to ask it: {err}"),
                })?;
            runtime.block_on(future)
        });
        thread.join().unwrap_or_else(|_| {
            Err(MariaError::GaleraNode {
                node,
                nodes,
                reason: "asking it panicked".into(),
            })
        })
    })
}
