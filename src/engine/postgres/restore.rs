//! A run's data saved once and put back between orders (DELETE and INSERT, no DDL), and a run
//! made ready for another level, or for another scenario.

use super::cleanup::SCHEMA_COMMENT;
use super::connect::{characteristics_sql, pg_error};
use super::prepared::{end_sessions, scenario_prepares};
use super::reply::answer;
use super::role::literal;
use super::session::{application_name, set_up};
use super::{replica, PgRun};
use crate::engine::{finals_in_turn, snapshot_sql, EngineError};
use crate::level::SessionLevel;
use crate::scenario::{Scenario, Topology};
use crate::timeline::ResultSet;

impl PgRun {
    pub async fn save_initial_state(&mut self) -> Result<(), EngineError> {
        let tables: Vec<String> = self
            .data
            .query(
                "SELECT c.relname::text FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY c.oid",
                &[&self.schema],
            )
            .await
            .map_err(pg_error)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let (save, restore) = snapshot_sql(&tables, '"');
        // The tables' names are the run's schema's, ahead of the catalog's (a table may be
        // called `pg_class`), whatever a final query did to the search path; and the next
        // order's final query reads the run's schema again.
        let path = format!("SET search_path TO {}, pg_catalog; ", self.schema);
        self.data
            .batch_execute(&format!("{path}{save}"))
            .await
            .map_err(pg_error)?;
        // DELETE and INSERT give back the rows, but not a sequence's position, a materialized
        // view's rows, what a trigger or a rule does on the way, nor rows a policy hides; nor a
        // large object the setup made, which a step may have changed.
        let row = self
            .data
            .query_one(
                "SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND (c.relkind IN ('S', 'm') OR c.relrowsecurity \
                 OR EXISTS (SELECT FROM pg_catalog.pg_trigger t \
                            WHERE t.tgrelid = c.oid AND NOT t.tgisinternal) \
                 OR EXISTS (SELECT FROM pg_catalog.pg_rewrite r \
                            WHERE r.ev_class = c.oid AND r.rulename <> '_RETURN'))), \
                 EXISTS (SELECT FROM pg_catalog.pg_largeobject_metadata \
                         WHERE lomowner = CURRENT_USER::regrole)",
                &[&self.schema],
            )
            .await
            .map_err(pg_error)?;
        let (rows_are_all, large_objects): (bool, bool) = (row.get(0), row.get(1));
        self.restores_all = rows_are_all && !large_objects;
        // A large object a step made is the run's role's, and goes at each restore; only where
        // the setup made none, and never as the user, whose own large objects these would be.
        let unlink = match self.role.is_some() && !large_objects {
            true => {
                " SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata \
                 WHERE lomowner = CURRENT_USER::regrole;"
            }
            false => "",
        };
        self.restore = Some(format!("{path}{restore}{unlink}"));
        Ok(())
    }

    /// Puts the data back and gives every session a connection as good as new at `levels`
    /// ([`PgRun::reset_connections`]). Only where the restore gives back everything the setup
    /// made, and no scenario the run served may have defined a custom setting.
    ///
    /// `next` is the scenario the run serves from now on: whether it may define one decides
    /// the relevel after it.
    pub async fn relevel(
        &mut self,
        next: &Scenario,
        levels: &[SessionLevel],
    ) -> Result<bool, EngineError> {
        if self.restore.is_none() || !self.restores_all || self.defines_settings {
            return Ok(false);
        }
        // On a primary with a standby, `next` reads on the standby only where the run has a
        // session's connection there.
        let standby_reads = replica::standby_readers(next);
        if self
            .sessions
            .iter()
            .zip(&standby_reads)
            .any(|(session, reads)| *reads && session.standby.is_none())
        {
            return Ok(false);
        }
        self.restore_data(false).await?;
        self.reset_connections(levels).await?;
        self.defines_settings = may_define_settings(next);
        self.commits_can_wait = super::waits::commits_can_wait(next, self.replica.is_some());
        self.prepares = self.replica.is_none() && scenario_prepares(next);
        Ok(true)
    }

    /// Whether [`PgRun::rebuild`] can serve another scenario with this run: it has a role of
    /// its own (else the setup ran on the control connection, which holds the schema's lock and
    /// cannot be reset), no standby, and no scenario it served may have defined a custom setting.
    pub fn rebuilds(&self) -> bool {
        self.role.is_some() && self.replica.is_none() && !self.defines_settings
    }

    /// Makes the run what a fresh run of `next`, a scenario with as many sessions, at `levels`
    /// would be, and says so (`false`, having done nothing, where it cannot promise that:
    /// [`PgRun::rebuilds`]). Every connection is reset as at login (`DISCARD ALL` after the
    /// `ROLLBACK`), everything the run's role owns is dropped (its schema, and whatever else the
    /// scenario made: a large object, say) and the schema made again, empty, under its name;
    /// then `next`'s setup runs while each session is set at its level and named after its
    /// session in `next`. The run keeps its name, its role, its schema's lock and its
    /// connections: no backend starts, none ends.
    pub async fn rebuild(
        &mut self,
        next: &Scenario,
        levels: &[SessionLevel],
    ) -> Result<bool, EngineError> {
        if !self.rebuilds()
            || next.topology != Topology::Single
            || next.sessions.len() != self.sessions.len()
        {
            return Ok(false);
        }
        let Some(role) = self.role.clone() else {
            return Ok(false);
        };
        // Every transaction ends, then every connection is as at login, named for its session
        // in `next` and at its level: nothing of the role's is in use when it is dropped.
        let rollbacks = self
            .sessions
            .iter()
            .map(|s| &s.client)
            .chain([&self.data])
            .map(|client| client.simple_query("ROLLBACK"));
        for result in futures_util::future::join_all(rollbacks).await {
            result.map_err(pg_error)?;
        }
        for (session, named) in self.sessions.iter_mut().zip(&next.sessions) {
            session.name = application_name(&named.name);
        }
        let data = self.data.clone();
        let (reset, discarded) = tokio::join!(
            self.reset_connections(levels),
            data.batch_execute("DISCARD ALL")
        );
        reset?;
        discarded.map_err(pg_error)?;
        // One transaction: the schema is there again, or the run is as it was.
        let schema = &self.schema;
        self.control
            .batch_execute(&format!(
                "DROP OWNED BY {role}; CREATE SCHEMA {schema} AUTHORIZATION {role}; \
                 COMMENT ON SCHEMA {schema} IS '{SCHEMA_COMMENT}'"
            ))
            .await
            .map_err(pg_error)?;
        set_up(&self.data, schema, next, true).await?;
        self.restore = None;
        self.restores_all = false;
        self.defines_settings = may_define_settings(next);
        self.commits_can_wait = super::waits::commits_can_wait(next, false);
        self.prepares = scenario_prepares(next);
        Ok(true)
    }

    /// Gives every session a connection as good as new at `levels`, on the primary and on the
    /// standby: `DISCARD ALL` ends what a session left (its settings, advisory locks, prepared
    /// statements, temporary tables), then the search path and the level are set as at connect.
    /// A custom setting a session defined stays defined, reading `''`.
    async fn reset_connections(&mut self, levels: &[SessionLevel]) -> Result<(), EngineError> {
        for session in &mut self.sessions {
            session.prepared.clear();
        }
        // A standby runs no serializable transaction.
        let connections = self
            .sessions
            .iter()
            .zip(levels)
            .flat_map(|(session, level)| {
                let standby = session
                    .standby
                    .iter()
                    .map(move |(client, _)| (client, replica::on_standby(level), None));
                std::iter::once((&session.client, *level, Some(&session.name))).chain(standby)
            });
        let resets = connections.map(|(client, level, name)| {
            // DISCARD ALL cannot share a query string (an implicit transaction) with the rest;
            // the two go out pipelined, in order. A standby's connection keeps the name it
            // logged in with; a session's on the primary may have been renamed by a rebuild.
            let set = format!(
                "SET search_path TO {}; {}{}",
                self.schema,
                characteristics_sql(&level),
                name.map(|name| format!("; SET application_name TO {}", literal(name)))
                    .unwrap_or_default()
            );
            let client = client.clone();
            async move {
                let discard = client.batch_execute("DISCARD ALL");
                tokio::try_join!(discard, client.batch_execute(&set)).map(|_| ())
            }
        });
        for result in futures_util::future::join_all(resets).await {
            result.map_err(pg_error)?;
        }
        self.levels = levels.to_vec();
        Ok(())
    }

    /// Puts the data back for another order; with `connections`, every connection is reset
    /// too, at the levels it has.
    pub async fn reset(&mut self, connections: bool) -> Result<(), EngineError> {
        self.restore_data(!connections && self.prepares).await?;
        if connections {
            let levels = self.levels.clone();
            self.reset_connections(&levels).await?;
        }
        Ok(())
    }

    /// The final queries' answers, then [`PgRun::reset`], with no wait for a reply in between:
    /// the queries go out first on the data connection and the restore right behind them, while
    /// every session's ROLLBACK goes at once (what a session's open transaction holds hides
    /// nothing committed from a final query, and the restore waits for its row locks to go).
    /// One round trip of waiting in all, where one after the other takes two. With a standby,
    /// one after the other: its replay is resumed and waited for.
    pub async fn finals_then_reset(
        &mut self,
        sqls: &[&str],
        connections: bool,
    ) -> Result<Vec<ResultSet>, EngineError> {
        let Some(restore) = self.restore.as_ref().filter(|_| self.replica.is_none()) else {
            return finals_in_turn(self, sqls, connections).await;
        };
        let mut sent = Vec::with_capacity(sqls.len());
        for sql in sqls {
            sent.push(self.data.simple_query_raw(sql).await);
        }
        let answers = sent.into_iter().map(answer);
        let prepare = !connections && self.prepares;
        let with = futures_util::future::join(
            futures_util::future::join_all(answers),
            self.data.batch_execute(restore),
        );
        let (answers, restored) = end_sessions(&mut self.sessions, prepare, with).await?;
        let answers = (answers.into_iter())
            .map(|answer| self.final_answer(answer))
            .collect::<Result<Vec<_>, _>>()?;
        restored.map_err(pg_error)?;
        if connections {
            let levels = self.levels.clone();
            self.reset_connections(&levels).await?;
        }
        Ok(answers)
    }

    /// Every session's ROLLBACK and the restore, at once: one round trip of waiting. With
    /// `prepare`, the queries due are prepared on the way ([`end_sessions`]).
    async fn restore_data(&mut self, prepare: bool) -> Result<(), EngineError> {
        // The standby replays the restore, and its sessions' transactions end too.
        self.resume_standby().await?;
        let Some(restore) = &self.restore else {
            return Err(EngineError::Setup(
                "reset before the initial state was saved".into(),
            ));
        };
        let restore = self.data.batch_execute(restore);
        end_sessions(&mut self.sessions, prepare, restore)
            .await?
            .map_err(pg_error)?;
        self.standby_caught_up().await
    }
}

/// Whether a scenario's SQL may define a custom setting (`SET app.user = …`,
/// `set_config('app.user', …)`), which `DISCARD ALL` resets to an empty string but cannot
/// undefine: `current_setting('app.user', true)` then reads `''` where a fresh connection reads
/// NULL, so a run that may have one is not kept for another level. Judged from the text, which
/// errs towards a fresh run.
pub(super) fn may_define_settings(scenario: &Scenario) -> bool {
    scenario.sql_texts().any(|text| {
        let text = text.to_lowercase();
        let words: Vec<&str> = text
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .filter(|w| !w.is_empty())
            .collect();
        words.iter().enumerate().any(|(i, word)| {
            let named = |j: usize| words.get(j).is_some_and(|w| w.contains('.'));
            match *word {
                "set_config" | "pg_catalog.set_config" => true,
                "set" => match words.get(i + 1) {
                    Some(&"session") | Some(&"local") => named(i + 2),
                    _ => named(i + 1),
                },
                _ => false,
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::may_define_settings;
    use crate::scenario::Scenario;

    #[test]
    fn a_custom_setting_is_found_in_the_sql() {
        let with = |sql: &str| {
            let mut scenario = Scenario::load("lost-update").unwrap();
            scenario.setup.push_str(sql);
            may_define_settings(&scenario)
        };
        assert!(!with(""));
        assert!(!with(
            "SET search_path TO public; SET LOCAL lock_timeout = 1;"
        ));
        assert!(with("SET app.user = 'alice';"));
        assert!(with("set local app.user to 'alice';"));
        assert!(with("SET SESSION app.user = 1;"));
        assert!(with(
            "SELECT pg_catalog.set_config('app.user', 'x', false);"
        ));
    }
}
