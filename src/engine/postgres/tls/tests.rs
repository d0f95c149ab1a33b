use std::path::{Path, PathBuf};

use super::*;

fn options(url: &str, env: &[(&str, &str)]) -> Result<(String, TlsOptions), String> {
    take_options(url, |name| {
        env.iter()
            .find(|(variable, _)| *variable == name)
            .map(|(_, value)| value.to_string())
    })
}

/// The plan for a string, with `files` the files that exist and HOME `/home/me`.
fn plan(url: &str, files: &[&str]) -> Result<Plan, String> {
    let (_, options) = options(url, &[])?;
    resolve(&options, Some(Path::new("/home/me")), |path| {
        files.iter().any(|file| Path::new(file) == path)
    })
}

fn file(path: &str) -> Roots {
    Roots::File(PathBuf::from(path))
}

#[test]
fn the_string_wins_over_the_variables_which_fill_its_gaps() {
    let (rest, taken) = options(
        "host=db sslmode=verify-full",
        &[("PGSSLMODE", "disable"), ("PGSSLROOTCERT", "/ca.pem")],
    )
    .unwrap();
    assert_eq!(rest, "host=db");
    assert_eq!(taken.mode, Some(Mode::VerifyFull));
    assert_eq!(taken.root_cert.as_deref(), Some("/ca.pem"));
}

#[test]
fn a_bad_sslmode_names_the_option_and_every_allowed_value() {
    assert_eq!(
        options("host=db sslmode=bogus", &[]).unwrap_err(),
        "invalid value for option `sslmode` (allowed: disable, prefer, require, verify-ca, verify-full)"
    );
    assert_eq!(
        options("host=db", &[("PGSSLMODE", "verify")]).unwrap_err(),
        "invalid value for PGSSLMODE (allowed: disable, prefer, require, verify-ca, verify-full)"
    );
}

#[test]
fn prefer_is_the_default_and_checks_nothing() {
    let plan = plan("host=db", &[]).unwrap();
    assert_eq!(
        (plan.mode, plan.roots, plan.client),
        (Mode::Prefer, Roots::None, None)
    );
}

#[test]
fn require_checks_the_chain_when_a_root_file_exists() {
    let unchecked = plan("sslmode=require sslrootcert=/none.pem", &[]).unwrap();
    assert_eq!(
        (unchecked.mode, unchecked.roots),
        (Mode::Require, Roots::None)
    );
    let given = plan("sslmode=require sslrootcert=/ca.pem", &["/ca.pem"]).unwrap();
    assert_eq!((given.mode, given.roots), (Mode::VerifyCa, file("/ca.pem")));
    let default = plan("sslmode=require", &["/home/me/.postgresql/root.crt"]).unwrap();
    assert_eq!(default.roots, file("/home/me/.postgresql/root.crt"));
}

#[test]
fn verifying_needs_a_root_file() {
    let error = plan("sslmode=verify-full", &[]).unwrap_err();
    assert!(
        error.starts_with("root certificate file \"/home/me/.postgresql/root.crt\" does not exist"),
        "{error}"
    );
    let full = plan("sslmode=verify-full sslrootcert=/ca.pem", &["/ca.pem"]).unwrap();
    assert_eq!((full.mode, full.roots), (Mode::VerifyFull, file("/ca.pem")));
}

#[test]
fn system_roots_mean_verify_full() {
    let system = plan("sslrootcert=system", &[]).unwrap();
    assert_eq!(
        (system.mode, system.roots),
        (Mode::VerifyFull, Roots::System)
    );
    assert_eq!(
        plan("sslrootcert=system sslmode=require", &[]).unwrap_err(),
        "weak sslmode `require` may not be used with sslrootcert=system (use verify-full)"
    );
}

#[test]
fn a_client_certificate_is_sent_when_it_exists_and_needs_its_key() {
    let sent = plan("sslcert=/c.pem sslkey=/k.pem", &["/c.pem", "/k.pem"]).unwrap();
    assert_eq!(
        sent.client,
        Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem")))
    );
    assert_eq!(plan("sslcert=/c.pem", &[]).unwrap().client, None);
    assert_eq!(
        plan("sslcert=/c.pem", &["/c.pem"]).unwrap_err(),
        "certificate present, but not private key file \"/home/me/.postgresql/postgresql.key\""
    );
}
