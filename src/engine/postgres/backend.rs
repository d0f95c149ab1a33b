//! PostgreSQL behind the engine seam: which server to reach (a URL, or a throwaway cluster
//! from installed binaries), and the seam's methods.

use async_trait::async_trait;
use tokio::time::Instant;

use super::{PgEngine, PgRun};
use crate::engine::cluster;
use crate::engine::probe::First;
use crate::engine::Settled;
use crate::engine::{Backend, BackendRun, ConnectOptions, Connected, EngineError, EngineInfo};
use crate::level::{Level, SessionLevel};
use crate::scenario::{Node, ReplicaAction, Scenario, Topology, PRIMARY};
use crate::timeline::ResultSet;

/// The server the URL names, else a throwaway cluster; [`EngineError::NoServer`] when there is
/// no URL and the search found no server binaries; an error when `--pg-bindir` has none.
pub(in crate::engine) async fn open(options: &ConnectOptions) -> Result<Connected, EngineError> {
    if let Some(url) = &options.url {
        let mut engine = PgEngine::connect_url(url, options.connect_timeout).await?;
        if let Some(standby) = &options.standby_url {
            let standby = super::replica::connect_users_standby(standby, options.connect_timeout);
            engine.standby = Some(standby.await?);
        }
        return Ok((Box::new(engine), None));
    }
    let bindir = match &options.pg_bindir {
        Some(dir) => cluster::has_server(dir).then(|| dir.clone()),
        None => cluster::find_bindir(),
    };
    let Some(bindir) = bindir else {
        return Err(no_server(options));
    };
    let standby = options.topology == Topology::PrimaryStandby;
    let engine = PgEngine::throwaway(&bindir, standby).await?;
    let notice = engine.cluster_notice();
    Ok((Box::new(engine), notice))
}

/// No server binaries. Only a search that found nothing lets `auto` fall back to SQLite: a
/// directory the user named is what they meant to run on.
fn no_server(options: &ConnectOptions) -> EngineError {
    let looked = match &options.pg_bindir {
        Some(dir) => format!("no PostgreSQL server binaries in {}", dir.display()),
        None => "no PostgreSQL server binaries found (looked on PATH, through pg_config and \
                 under /usr/lib/postgresql/*/bin)"
            .to_string(),
    };
    match (options.choice, &options.pg_bindir) {
        (crate::engine::Choice::Auto, None) => EngineError::NoServer(looked),
        _ => EngineError::Setup(format!(
            "{looked}: install the PostgreSQL server (apt-get install postgresql), point \
             --pg-bindir at its binaries, or pass --url"
        )),
    }
}

#[async_trait(?Send)]
impl Backend for PgEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn users_server(&self) -> Option<String> {
        PgEngine::users_server(self)
    }

    fn cannot_run(&self, topology: Topology) -> Option<String> {
        match (topology, &self.standby) {
            (Topology::Single, _) | (Topology::PrimaryStandby, Some(_)) => None,
            (Topology::PrimaryStandby, None) => Some(
                "it needs a primary with a hot standby: without --url the tool starts both; with \
                 --url, name the standby too (--url standby=URL)"
                    .into(),
            ),
            (Topology::MultiMaster(_), _) => Some(
                "it needs a multi-master cluster (MariaDB Galera): run it with --engine galera"
                    .into(),
            ),
        }
    }

    fn detail_at(&self, scenario: &Scenario, levels: &[SessionLevel]) -> String {
        let standby_reads = scenario
            .sessions
            .iter()
            .zip(levels)
            .any(|(session, level)| {
                level.effective == Level::Serializable
                    && session
                        .steps
                        .iter()
                        .any(|step| scenario.topology.is_standby(step.node))
            });
        match standby_reads {
            true => "; the standby runs serializable as repeatable read (a hot standby has no \
                     serializable transactions)"
                .into(),
            false => String::new(),
        }
    }

    /// PostgreSQL runs READ UNCOMMITTED as READ COMMITTED.
    fn effective_level(&self, level: Level) -> Level {
        match level {
            Level::ReadUncommitted => Level::ReadCommitted,
            level => level,
        }
    }

    async fn prepare(
        &self,
        scenario: &Scenario,
        levels: &[SessionLevel],
    ) -> Result<Box<dyn BackendRun>, EngineError> {
        Ok(Box::new(PgEngine::prepare(self, scenario, levels).await?))
    }

    async fn close(self: Box<Self>) -> Result<(), EngineError> {
        PgEngine::close(*self).await
    }
}

#[async_trait(?Send)]
impl BackendRun for PgRun {
    fn send(&mut self, session: usize, sql: &str) {
        PgRun::send(self, session, sql, false)
    }

    fn send_to(&mut self, session: usize, node: Node, sql: &str) {
        PgRun::send(self, session, sql, node != PRIMARY)
    }

    fn send_replica(&mut self, session: usize, action: ReplicaAction) -> Result<(), EngineError> {
        PgRun::send_replica(self, session, action)
    }

    async fn settle(&mut self, session: usize, deadline: Instant) -> Result<Settled, EngineError> {
        PgRun::settle(self, session, deadline, First::HeadStart).await
    }

    async fn recheck(&mut self, session: usize, deadline: Instant) -> Result<Settled, EngineError> {
        PgRun::settle(self, session, deadline, First::Now).await
    }

    async fn wait_any(
        &mut self,
        waiting: &[usize],
        deadline: Instant,
    ) -> Result<Option<(usize, Settled)>, EngineError> {
        PgRun::wait_any(self, waiting, deadline).await
    }

    async fn cancel(&mut self, session: usize) -> Result<(), EngineError> {
        PgRun::cancel(self, session).await
    }

    async fn rollback(&mut self, session: usize) -> Result<(), EngineError> {
        PgRun::rollback(self, session).await
    }

    async fn save_initial_state(&mut self) -> Result<(), EngineError> {
        PgRun::save_initial_state(self).await
    }

    async fn reset(&mut self, connections: bool) -> Result<(), EngineError> {
        PgRun::reset(self, connections).await
    }

    async fn final_query(&mut self, sql: &str) -> Result<ResultSet, EngineError> {
        PgRun::final_query(self, sql).await
    }

    async fn finals_then_reset(
        &mut self,
        sqls: &[&str],
        connections: bool,
    ) -> Result<Vec<ResultSet>, EngineError> {
        PgRun::finals_then_reset(self, sqls, connections).await
    }

    async fn finish(self: Box<Self>) -> Result<(), EngineError> {
        PgRun::finish(*self).await
    }

    async fn relevel(
        &mut self,
        next: &Scenario,
        levels: &[SessionLevel],
    ) -> Result<bool, EngineError> {
        PgRun::relevel(self, next, levels).await
    }

    fn relevels(&self) -> bool {
        true
    }

    async fn rebuild(
        &mut self,
        next: &Scenario,
        levels: &[SessionLevel],
    ) -> Result<bool, EngineError> {
        PgRun::rebuild(self, next, levels).await
    }

    fn rebuilds(&self) -> bool {
        PgRun::rebuilds(self)
    }

    fn questions(&self) -> u64 {
        self.ticker.asked()
    }

    fn bench_workers(&mut self) -> Result<Vec<crate::engine::bench::Worker>, EngineError> {
        Ok(super::bench::workers(self))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::engine::Choice;

    fn options(choice: Choice, pg_bindir: Option<&str>) -> ConnectOptions {
        ConnectOptions {
            choice,
            url: None,
            standby_url: None,
            node_urls: Vec::new(),
            connect_timeout: Duration::from_secs(1),
            pg_bindir: pg_bindir.map(PathBuf::from),
            mariadb_bindir: None,
            redis_url: None,
            topology: Default::default(),
        }
    }

    #[test]
    fn only_a_search_that_found_nothing_falls_back_to_sqlite() {
        assert!(matches!(
            no_server(&options(Choice::Auto, None)),
            EngineError::NoServer(_)
        ));
        let named = no_server(&options(Choice::Auto, Some("/empty")));
        assert!(
            matches!(&named, EngineError::Setup(m) if m.starts_with("no PostgreSQL server binaries in /empty: ")),
            "{named:?}"
        );
        let asked = no_server(&options(
            Choice::Only(crate::scenario::EngineKind::Postgres),
            None,
        ));
        assert!(matches!(asked, EngineError::Setup(_)), "{asked:?}");
    }
}
