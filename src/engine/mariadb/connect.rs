//! Where a MariaDB or MySQL server is: a `mysql://` or `mariadb://` URL, or a throwaway
//! server's socket; a bounded connection; a description of the target with no password in it.

use std::time::Duration;

use mysql_async::{Conn, Opts, OptsBuilder};

use crate::engine::EngineError;

/// Whether a URL names MariaDB or MySQL.
pub(in crate::engine) fn claims_url(url: &str) -> bool {
    let scheme = url
        .split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    matches!(scheme.as_deref(), Some("mysql" | "mariadb"))
}

/// The options a `mysql://` or `mariadb://` URL gives.
pub(super) fn opts_from_url(url: &str) -> Result<Opts, EngineError> {
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .filter(|_| claims_url(url))
        .ok_or_else(|| {
            EngineError::Setup("--url for MariaDB must start with mysql:// or mariadb://".into())
        })?;
    // The driver knows only the mysql scheme; both name the same protocol.
    Opts::from_url(&format!("mysql://{rest}")).map_err(|e| {
        // The driver's error never includes the URL, so no password can leak through it.
        EngineError::Setup(format!("--url is not a MariaDB connection URL: {e}"))
    })
}

/// The options for a throwaway server's unix socket (its grant tables are skipped: any user).
pub(super) fn opts_for_socket(socket: &std::path::Path) -> Opts {
    OptsBuilder::default()
        .socket(Some(socket.to_string_lossy().into_owned()))
        .user(Some("root"))
        .prefer_socket(true)
        .into()
}

/// `db.internal:3306/app` or the socket's path: never the password.
pub(super) fn describe(opts: &Opts) -> String {
    if let Some(socket) = opts.socket() {
        return socket.to_string();
    }
    let db = opts
        .db_name()
        .map(|db| format!("/{db}"))
        .unwrap_or_default();
    format!("{}:{}{db}", opts.ip_or_hostname(), opts.tcp_port())
}

/// Connects within `timeout`: TCP, the handshake and authentication together.
pub(super) async fn connect(
    opts: &Opts,
    timeout: Duration,
    target: &str,
) -> Result<Conn, EngineError> {
    let failed = |reason: String| EngineError::MariadbConnect {
        target: target.to_string(),
        reason,
    };
    match tokio::time::timeout(timeout, Conn::new(opts.clone())).await {
        Err(_) => Err(failed(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        ))),
        Ok(Err(e)) => Err(failed(error_text(&e))),
        Ok(Ok(conn)) => Ok(conn),
    }
}

/// A driver error in one line, the server's code first when it has one.
pub(super) fn error_text(error: &mysql_async::Error) -> String {
    let text = match error {
        mysql_async::Error::Server(e) => format!("{} ({})", e.message, e.code),
        mysql_async::Error::Io(e) => format!("{e}"),
        mysql_async::Error::Driver(e) => format!("{e}"),
        other => other.to_string(),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_schemes_are_claimed_and_nothing_else() {
        assert!(claims_url("mysql://u@h/db"));
        assert!(claims_url("MariaDB://u@h/db"));
        assert!(!claims_url("postgresql://u@h/db"));
        assert!(!claims_url("host=h user=u"));
    }

    #[test]
    fn the_description_has_no_password() {
        let opts = opts_from_url("mariadb://app:secret@db.internal:3307/app").unwrap();
        assert_eq!(describe(&opts), "db.internal:3307/app");
        assert_eq!(opts.pass(), Some("secret"));
    }

    #[test]
    fn a_bad_url_is_named_as_such() {
        let error = opts_from_url("mysql://app:secret@db:notaport/app").unwrap_err();
        assert!(error
            .to_string()
            .starts_with("--url is not a MariaDB connection URL"));
        assert!(!error.to_string().contains("secret"));
    }
}
