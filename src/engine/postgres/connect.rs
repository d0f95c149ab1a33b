//! Connecting: libpq-style connection strings with the PG* variables, descriptions that never
//! show a password, and error texts that keep their cause.

use std::str::FromStr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, Connection, NoTls};

use super::tls::{self, Tls};

use super::passfile;
use crate::engine::EngineError;
use crate::level::SessionLevel;
use crate::scenario::{Place, Scenario};

/// How long a connection's start-up may take when the connection string says nothing.
pub(super) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects, with the whole start-up bounded by the connect timeout: TCP, the protocol
/// handshake and authentication (tokio-postgres bounds only the TCP part, so a server that
/// accepts and never answers would hang forever).
pub(super) async fn connect(
    config: &Config,
    tls: &Tls,
    target: &str,
) -> Result<Client, EngineError> {
    let bound = connect_bound(config);
    let failed = |reason: String| EngineError::Connect {
        target: target.to_string(),
        reason,
    };
    let started = async {
        match tls.connector() {
            None => config.connect(NoTls).await.map(run_connection),
            Some(connector) => config.connect(connector.clone()).await.map(run_connection),
        }
    };
    tokio::time::timeout(bound, started)
        .await
        .map_err(|_| failed(no_answer(bound)))?
        .map_err(|e| failed(connect_error_text(&e)))
}

/// The client, its connection driven in the background: it ends when the client is dropped,
/// and its errors surface through the client.
fn run_connection<S, T>((client, connection): (Client, Connection<S, T>)) -> Client
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// The bound on a connection's start-up and on the tool's first query.
pub(super) fn connect_bound(config: &Config) -> Duration {
    config
        .get_connect_timeout()
        .copied()
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
}

/// `no answer within 2s`
pub(super) fn no_answer(bound: Duration) -> String {
    format!("no answer within {}", humantime::format_duration(bound))
}

/// Why a connection could not start, in words: a server that answers in another protocol is
/// named as such.
fn connect_error_text(error: &tokio_postgres::Error) -> String {
    let text = error_text(error);
    let garbled = [
        "bytes remaining on stream",
        "unexpected message",
        "invalid message",
    ];
    if error.as_db_error().is_none() && garbled.iter().any(|g| text.contains(g)) {
        return format!(
            "the server does not speak PostgreSQL's protocol (is another service on that port?): {text}"
        );
    }
    text
}

/// What sets a session's transactions up for a run: `SET SESSION CHARACTERISTICS AS
/// TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE`.
pub(super) fn characteristics_sql(level: &SessionLevel) -> String {
    let mut sql = format!(
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {}",
        level.effective.sql()
    );
    if level.read_only {
        sql.push_str(", READ ONLY");
    }
    if level.deferrable {
        sql.push_str(", DEFERRABLE");
    }
    sql
}

/// A session's connection refused because the server has no slot left (53300) says how many
/// the scenario needs and how many the server allows; any other error stays as it is. `role`:
/// the run has a role of its own, whose setup and final query have a connection of their own.
pub(super) async fn out_of_connections(
    admin: &Client,
    error: EngineError,
    scenario: &Scenario,
    role: bool,
) -> EngineError {
    let EngineError::Connect { target, reason } = &error else {
        return error;
    };
    if !reason.contains("(53300)") {
        return error;
    }
    let allowed = admin
        .simple_query("SHOW max_connections")
        .await
        .ok()
        .and_then(|messages| super::reply::first_value(&messages))
        .unwrap_or_else(|| "?".into());
    let (own, more) = match role {
        true => (", a control connection and one for the setup", 2),
        false => (" and a control connection", 1),
    };
    EngineError::Setup(format!(
        "the scenario's {} sessions need {} connections to {target} (one per session{own}), \
         but the server allows max_connections = {allowed}, some of them taken by others; it \
         said: {reason}",
        scenario.sessions.len(),
        scenario.sessions.len() + more
    ))
}

/// The setup SQL failed: where, and what the server said; a privilege it lacked, when the
/// scenario runs as a role of its own, says so.
pub(super) fn setup_failed(at: &Place, error: &tokio_postgres::Error, role: bool) -> EngineError {
    let hint = match error.code() {
        Some(code) if role && *code == SqlState::INSUFFICIENT_PRIVILEGE => {
            format!("; {}", super::role::CONFINED)
        }
        _ => String::new(),
    };
    EngineError::Setup(format!(
        "{at}: the setup SQL failed on PostgreSQL: {}{hint}",
        error_text(error)
    ))
}

/// The configuration and TLS set-up a `--url` asks for: the TLS options are taken out of the
/// string (tokio-postgres knows only some of them) before the rest is parsed.
pub(super) fn config_and_tls(url: &str, timeout: Duration) -> Result<(Config, Tls), EngineError> {
    let not_a_url =
        |e: String| EngineError::Setup(format!("--url is not a PostgreSQL connection string: {e}"));
    let env = |name: &str| std::env::var(name).ok();
    let (url, options) = tls::take_options(url, env).map_err(not_a_url)?;
    let mut config = config_from_url(&url, timeout)?;
    let tls = tls::setup(&mut config, &options)
        .map_err(|e| EngineError::Setup(format!("cannot set up TLS: {e}")))?;
    Ok((config, tls))
}

/// Builds a configuration from a URL (or key=value string) and the PG* variables, as libpq does.
pub(super) fn config_from_url(url: &str, timeout: Duration) -> Result<Config, EngineError> {
    let mut config = Config::from_str(url).map_err(|e| {
        EngineError::Setup(format!(
            "--url is not a PostgreSQL connection string: {}",
            option_error(&e)
        ))
    })?;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    // A service's settings come before the PG* variables, as in libpq.
    if let Some(name) = env("PGSERVICE") {
        fill_from(&mut config, &passfile::service(&name)?);
    }
    if config.get_hosts().is_empty() {
        match env("PGHOST") {
            Some(host) => {
                config.host(&host);
            }
            None => {
                config.host("localhost");
            }
        }
    }
    if config.get_ports().is_empty() {
        if let Some(port) = env("PGPORT").and_then(|p| p.parse().ok()) {
            config.port(port);
        }
    }
    if config.get_user().is_none() {
        if let Some(user) = env("PGUSER").or_else(|| env("USER")) {
            config.user(&user);
        }
    }
    if config.get_password().is_none() {
        if let Some(password) = env("PGPASSWORD") {
            config.password(password);
        }
    }
    if config.get_dbname().is_none() {
        if let Some(dbname) = env("PGDATABASE") {
            config.dbname(&dbname);
        }
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(timeout);
    }
    if config.get_password().is_none() {
        if let Some(file) = passfile::password_file() {
            if let Some(password) = passfile::password(&file, &wanted(&config))? {
                config.password(password);
            }
        }
    }
    Ok(config)
}

/// What a password file line is matched against: the first host and port, the database (the
/// user's name when none is given) and the user.
fn wanted(config: &Config) -> passfile::Wanted<'_> {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.as_str(),
        Some(Host::Unix(path)) => path.to_str().unwrap_or_default(),
        None => "localhost",
    };
    let user = config.get_user().unwrap_or_default();
    passfile::Wanted {
        host,
        port: config.get_ports().first().copied().unwrap_or(5432),
        dbname: config.get_dbname().unwrap_or(user),
        user,
    }
}

/// Fills what `config` leaves out from `service`'s settings.
fn fill_from(config: &mut Config, service: &Config) {
    if config.get_hosts().is_empty() {
        for host in service.get_hosts() {
            match host {
                Host::Tcp(name) => config.host(name),
                Host::Unix(path) => config.host_path(path),
            };
        }
    }
    if config.get_ports().is_empty() {
        for port in service.get_ports() {
            config.port(*port);
        }
    }
    if let (None, Some(user)) = (config.get_user(), service.get_user()) {
        config.user(user);
    }
    if let (None, Some(password)) = (config.get_password(), service.get_password()) {
        config.password(password);
    }
    if let (None, Some(dbname)) = (config.get_dbname(), service.get_dbname()) {
        config.dbname(dbname);
    }
    if let (None, Some(timeout)) = (config.get_connect_timeout(), service.get_connect_timeout()) {
        config.connect_timeout(*timeout);
    }
    if let (None, Some(options)) = (config.get_options(), service.get_options()) {
        config.options(options);
    }
}

/// `host:port/dbname`, never the password.
pub(super) fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let dbname = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{dbname}")
}

pub(super) fn pg_error(error: tokio_postgres::Error) -> EngineError {
    EngineError::Postgres(error_text(&error))
}

/// The options a connection string may set, with the values some of them allow.
const OPTIONS: &[(&str, &str)] = &[
    ("host", ""),
    ("hostaddr", ""),
    ("port", ""),
    ("user", ""),
    ("password", ""),
    ("dbname", ""),
    ("options", ""),
    ("application_name", ""),
    ("sslmode", tls::MODES),
    ("sslrootcert", ""),
    ("sslcert", ""),
    ("sslkey", ""),
    ("sslnegotiation", "postgres, direct"),
    ("connect_timeout", "seconds"),
    ("tcp_user_timeout", "seconds"),
    ("keepalives", "0, 1"),
    ("keepalives_idle", "seconds"),
    ("keepalives_interval", "seconds"),
    ("keepalives_retries", "a count"),
    ("target_session_attrs", "any, read-write"),
    ("channel_binding", "disable, prefer, require"),
    ("load_balance_hosts", "disable, random"),
];

/// A bad connection string, naming the option and what it allows: `invalid value for option
/// `channel_binding` (allowed: disable, prefer, require)`, `unknown option `sslmod`; did you
/// mean `sslmode`?`.
fn option_error(error: &tokio_postgres::Error) -> String {
    let Some(source) = std::error::Error::source(error) else {
        return error.to_string();
    };
    let text = source.to_string();
    let named = text.split('`').nth(1).unwrap_or_default();
    if text.starts_with("unknown option") {
        let names: Vec<&str> = OPTIONS.iter().map(|(name, _)| *name).collect();
        return match crate::scenario::did_you_mean(named, &names) {
            Some(closest) => format!("{text}; did you mean `{closest}`?"),
            None => format!("{text}; known: {}", names.join(", ")),
        };
    }
    match OPTIONS.iter().find(|(name, _)| *name == named) {
        Some((_, allowed)) if !allowed.is_empty() => format!("{text} (allowed: {allowed})"),
        _ => text,
    }
}

/// The error with its cause: tokio-postgres's own text stops at "error connecting to server".
pub(super) fn error_text(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    match std::error::Error::source(error) {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::level::Level;

    fn check(url: &str, expected: &str) {
        let config = config_from_url(url, Duration::from_secs(1)).unwrap();
        assert_eq!(describe(&config), expected);
    }

    #[test]
    fn a_session_is_set_up_at_its_effective_level_with_its_characteristics() {
        let level = |read_only, deferrable| SessionLevel {
            requested: Level::Serializable,
            effective: Level::Serializable,
            pinned: true,
            read_only,
            deferrable,
        };
        assert_eq!(
            characteristics_sql(&level(true, true)),
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE"
        );
        let read_uncommitted = SessionLevel {
            requested: Level::ReadUncommitted,
            effective: Level::ReadCommitted,
            ..level(false, false)
        };
        assert_eq!(
            characteristics_sql(&read_uncommitted),
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED"
        );
    }

    #[test]
    fn descriptions_name_host_port_and_database_never_the_password() {
        check(
            "postgresql://alice:s3cret@db.example:6543/bank",
            "db.example:6543/bank",
        );
        check(
            "host=/run/pg port=5433 user=john password=s3cret dbname=ledger",
            "/run/pg:5433/ledger",
        );
    }

    #[test]
    fn a_url_that_is_not_one_is_a_setup_error() {
        let error = config_from_url("postgresql://[::1", Duration::from_secs(1)).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("--url is not a PostgreSQL connection string"),
            "{error}"
        );
    }
}
