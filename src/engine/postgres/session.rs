//! A run's connections besides its control connection: one per session, each set up at its
//! level, and the one its setup and final query run on. Where the run has a role of its own,
//! all of them log in as that role.

use std::sync::Arc;

use tokio_postgres::{Client, Config};

use super::cleanup::own_in;
use super::connect::{characteristics_sql, connect, pg_error, setup_failed};
use super::reply::first_value;
use super::tls::Tls;
use super::{PgSession, Sent};
use crate::engine::EngineError;
use crate::level::SessionLevel;
use crate::scenario::Scenario;

/// Connects every session at once. The level is set for the session, not inside the
/// transaction: the scenario's own first statement is the one that takes the snapshot.
pub(super) async fn connect_sessions(
    base: &Config,
    tls: &Tls,
    schema: &str,
    scenario: &Scenario,
    levels: &[SessionLevel],
) -> Result<Vec<PgSession>, EngineError> {
    let connects = scenario
        .sessions
        .iter()
        .zip(levels)
        .map(|(session, level)| async move {
            let name = application_name(&session.name);
            let (client, pid) =
                connect_session(base, tls, schema, &name, level, "the server").await?;
            Ok::<_, EngineError>(PgSession {
                client,
                pid,
                name,
                standby: None,
                in_flight: None,
                prepared: Default::default(),
                on: Sent::Primary { may_wait: true },
            })
        });
    futures_util::future::try_join_all(connects).await
}

/// The `application_name` of a session's connection: `anomalies Alice`.
pub(super) fn application_name(session: &str) -> String {
    format!("anomalies {session}")
}

/// One session's connection, named `name`, in the run's schema at `level`; and its backend's
/// pid.
pub(super) async fn connect_session(
    base: &Config,
    tls: &Tls,
    schema: &str,
    name: &str,
    level: &SessionLevel,
    server: &str,
) -> Result<(Arc<Client>, i32), EngineError> {
    let init = format!(
        "SET search_path TO {schema}; {}; SELECT pg_catalog.pg_backend_pid()",
        characteristics_sql(level)
    );
    let mut config = base.clone();
    config.application_name(name);
    let client = connect(&config, tls, server).await?;
    let pid = backend_pid(&client, &init).await?;
    Ok((Arc::new(client), pid))
}

/// Runs the scenario's setup on `data`, whose search path is the run's schema, and puts the
/// search path back on it after: the setup may have moved it (`SET search_path TO public`), and
/// the final query reads the run's schema whatever the setup did. `role`: the run has one.
pub(super) async fn set_up(
    data: &Client,
    schema: &str,
    scenario: &Scenario,
    role: bool,
) -> Result<(), EngineError> {
    data.batch_execute(&scenario.setup)
        .await
        .map_err(|e| setup_failed(&scenario.setup_at, &e, role))?;
    data.batch_execute(&format!("SET search_path TO {schema}"))
        .await
        .map_err(pg_error)
}

/// The connection of a run's role that its setup and final query run on: one of the tool's
/// own (with its statement timeout), as the role, in the run's schema.
pub(super) async fn connect_data(
    role: &Config,
    tls: &Tls,
    schema: &str,
) -> Result<Client, EngineError> {
    let mut config = own_in(role, schema);
    config.application_name("anomalies (setup)");
    connect(&config, tls, "the server").await
}

/// Runs `sql`, whose last statement returns the backend's pid.
async fn backend_pid(client: &Client, sql: &str) -> Result<i32, EngineError> {
    first_value(&client.simple_query(sql).await.map_err(pg_error)?)
        .and_then(|pid| pid.parse().ok())
        .ok_or_else(|| EngineError::Postgres("no backend pid".into()))
}
