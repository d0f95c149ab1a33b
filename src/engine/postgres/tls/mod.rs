//! TLS as libpq does it: `sslmode` (disable, prefer, require, verify-ca, verify-full) with
//! `sslrootcert`, `sslcert` and `sslkey`, from the connection string or the PGSSL* variables.
//! tokio-postgres knows only disable, prefer and require, so these options are taken out of
//! the string before it parses the rest (`parse.rs`); rustls does the handshake (`config.rs`).
//!
//! As in libpq: prefer (the default) tries TLS and falls back to plain text when the server
//! refuses it; require encrypts without checking the certificate, unless a root certificate
//! file exists (`sslrootcert`, or `~/.postgresql/root.crt`), when it checks as verify-ca does;
//! verify-ca checks the chain to the roots; verify-full also checks the host name.
//! `sslrootcert=system` takes the system's roots and needs verify-full (its default). A client
//! certificate (`sslcert`, or `~/.postgresql/postgresql.crt`) is sent when its file exists.
//! Unix sockets never use TLS.

use std::fmt;
use std::path::{Path, PathBuf};

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::Config;
use tokio_postgres_rustls::MakeRustlsConnect;

mod config;
mod parse;

/// The values `sslmode` allows.
pub(super) const MODES: &str = "disable, prefer, require, verify-ca, verify-full";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// What the connection string and the PGSSL* variables say; `None` where neither does.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct TlsOptions {
    pub mode: Option<Mode>,
    pub root_cert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// What a connection does once the defaults and the files are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    pub mode: Mode,
    pub roots: Roots,
    /// The client certificate and its key.
    pub client: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Roots {
    None,
    File(PathBuf),
    System,
}

/// How a connection starts: plain, or through rustls.
#[derive(Clone)]
pub(super) struct Tls {
    connector: Option<MakeRustlsConnect>,
}

impl Tls {
    /// No TLS: the throwaway cluster, on its private socket.
    pub(super) fn none() -> Tls {
        Tls { connector: None }
    }

    pub(super) fn connector(&self) -> Option<&MakeRustlsConnect> {
        self.connector.as_ref()
    }
}

/// Takes the TLS options out of a connection string, filling what it leaves out from the
/// PGSSL* variables: the rest of the string, and the options.
pub(super) fn take_options(
    url: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(String, TlsOptions), String> {
    let (rest, pairs) = parse::split(url)?;
    let mut options = TlsOptions::default();
    for (key, value) in pairs {
        set(&mut options, &key, value)
            .map_err(|BadMode| format!("invalid value for option `{key}` (allowed: {MODES})"))?;
    }
    for (variable, key) in [
        ("PGSSLMODE", "sslmode"),
        ("PGSSLROOTCERT", "sslrootcert"),
        ("PGSSLCERT", "sslcert"),
        ("PGSSLKEY", "sslkey"),
    ] {
        let Some(value) = env(variable).filter(|value| !value.is_empty()) else {
            continue;
        };
        let mut from_env = TlsOptions::default();
        set(&mut from_env, key, value)
            .map_err(|BadMode| format!("invalid value for {variable} (allowed: {MODES})"))?;
        options = fill(options, from_env);
    }
    Ok((rest, options))
}

/// Sets up TLS for a configuration: its `ssl_mode` for tokio-postgres, and the connector.
pub(super) fn setup(config: &mut Config, options: &TlsOptions) -> Result<Tls, String> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let unix_only = config
        .get_hosts()
        .iter()
        .all(|h| matches!(h, Host::Unix(_)));
    let plan = resolve(options, home.as_deref(), |path| path.is_file())?;
    let mode = if unix_only { Mode::Disable } else { plan.mode };
    config.ssl_mode(match mode {
        Mode::Disable => SslMode::Disable,
        Mode::Prefer => SslMode::Prefer,
        Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
    });
    if mode == Mode::Disable {
        return Ok(Tls::none());
    }
    let client_config = config::client_config(&plan)?;
    Ok(Tls {
        connector: Some(MakeRustlsConnect::new(client_config)),
    })
}

/// Applies libpq's defaults and rules to the options; `exists` says whether a file is there.
pub(super) fn resolve(
    options: &TlsOptions,
    home: Option<&Path>,
    exists: impl Fn(&Path) -> bool,
) -> Result<Plan, String> {
    let default_file = |name: &str| {
        home.map(|home| home.join(".postgresql").join(name))
            .unwrap_or_default()
    };
    let root = options
        .root_cert
        .as_ref()
        .map_or_else(|| default_file("root.crt"), PathBuf::from);
    let (mode, roots) = if options.root_cert.as_deref() == Some("system") {
        let mode = options.mode.unwrap_or(Mode::VerifyFull);
        if mode != Mode::VerifyFull {
            return Err(format!(
                "weak sslmode `{mode}` may not be used with sslrootcert=system (use verify-full)"
            ));
        }
        (mode, Roots::System)
    } else {
        let mode = options.mode.unwrap_or(Mode::Prefer);
        let has_root = exists(&root);
        match mode {
            Mode::VerifyCa | Mode::VerifyFull if !has_root => {
                return Err(format!(
                    "root certificate file \"{}\" does not exist: give one with sslrootcert, \
                     use the system's roots with sslrootcert=system, or use sslmode=require, \
                     which does not check the server's certificate",
                    root.display()
                ))
            }
            Mode::VerifyCa | Mode::VerifyFull => (mode, Roots::File(root)),
            Mode::Require if has_root => (Mode::VerifyCa, Roots::File(root)),
            _ => (mode, Roots::None),
        }
    };
    let cert = options
        .cert
        .as_ref()
        .map_or_else(|| default_file("postgresql.crt"), PathBuf::from);
    let key = options
        .key
        .as_ref()
        .map_or_else(|| default_file("postgresql.key"), PathBuf::from);
    let client = match exists(&cert) {
        true if !exists(&key) => {
            return Err(format!(
                "certificate present, but not private key file \"{}\"",
                key.display()
            ))
        }
        true => Some((cert, key)),
        false => None,
    };
    Ok(Plan {
        mode,
        roots,
        client,
    })
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        })
    }
}

/// An `sslmode` that is none of [`MODES`].
struct BadMode;

fn parse_mode(value: &str) -> Result<Mode, BadMode> {
    match value {
        "disable" => Ok(Mode::Disable),
        "prefer" => Ok(Mode::Prefer),
        "require" => Ok(Mode::Require),
        "verify-ca" => Ok(Mode::VerifyCa),
        "verify-full" => Ok(Mode::VerifyFull),
        _ => Err(BadMode),
    }
}

/// One option; a later one wins, as in libpq.
fn set(options: &mut TlsOptions, key: &str, value: String) -> Result<(), BadMode> {
    match key {
        "sslmode" => options.mode = Some(parse_mode(&value)?),
        "sslrootcert" => options.root_cert = Some(value),
        "sslcert" => options.cert = Some(value),
        _ => options.key = Some(value),
    }
    Ok(())
}

/// `options`, with its gaps filled from `defaults`.
fn fill(options: TlsOptions, defaults: TlsOptions) -> TlsOptions {
    TlsOptions {
        mode: options.mode.or(defaults.mode),
        root_cert: options.root_cert.or(defaults.root_cert),
        cert: options.cert.or(defaults.cert),
        key: options.key.or(defaults.key),
    }
}

#[cfg(test)]
mod tests;
