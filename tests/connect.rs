//! Connecting to a user's server: a server that never answers or speaks another protocol fails
//! fast with one line, and a bad connection option names itself and what it allows.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::support::{anomalies, stderr, stdout};

/// A listener on a free loopback port, answering each connection with `reply` and closing it,
/// or holding it open without a word when `reply` is `None`.
fn listener(reply: Option<&'static [u8]>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in listener.incoming().flatten() {
            if let Some(reply) = reply {
                // Read the whole start-up packet (its length first), so that closing with
                // unread bytes does not reset the connection before the reply is read.
                let mut length = [0; 4];
                if stream.read_exact(&mut length).is_ok() {
                    let mut rest = vec![0; (u32::from_be_bytes(length) as usize).saturating_sub(4)];
                    let _ = stream.read_exact(&mut rest);
                }
                let _ = stream.write_all(reply);
                // Closed with bytes of the client's unread, the socket would be reset, and the
                // client could meet the reset before the reply (seen under load): end the
                // reply, then read what the client still sends until it closes.
                let _ = stream.shutdown(std::net::Shutdown::Write);
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let _ = std::io::copy(&mut stream, &mut std::io::sink());
                continue;
            }
            held.push(stream);
        }
    });
    port
}

fn run(url: &str, extra: &[&str]) -> (Option<i32>, String, String, Duration) {
    let started = Instant::now();
    let output = anomalies()
        .args(["run", "lost-update", "--url", url])
        .args(extra)
        .output()
        .unwrap();
    (
        output.status.code(),
        stdout(&output),
        stderr(&output),
        started.elapsed(),
    )
}

#[test]
fn a_server_that_never_answers_fails_within_the_connect_timeout() {
    let port = listener(None);
    for (url, extra, bound) in [
        (
            format!("host=127.0.0.1 port={port} user=x dbname=y"),
            vec!["--connect-timeout", "1s"],
            "1s",
        ),
        // The connection string's own timeout wins over the flag's default.
        (
            format!("postgresql://x@127.0.0.1:{port}/y?connect_timeout=1"),
            vec![],
            "1s",
        ),
    ] {
        let (code, out, err, elapsed) = run(&url, &extra);
        assert_eq!(code, Some(2), "{err}");
        assert!(out.is_empty());
        assert_eq!(
            err,
            format!(
                "error: cannot connect to PostgreSQL at 127.0.0.1:{port}/y: no answer within {bound}\n"
            )
        );
        // Not a timing test: a guard against hanging, far above the bound.
        assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    }
}

#[test]
fn a_server_speaking_another_protocol_is_named_as_such() {
    let port = listener(Some(
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    ));
    let (code, _, err, _) = run(&format!("host=127.0.0.1 port={port} user=x dbname=y"), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with(&format!(
            "error: cannot connect to PostgreSQL at 127.0.0.1:{port}/y: the server does not speak \
             PostgreSQL's protocol"
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_bad_connection_option_names_the_option_and_what_it_allows() {
    for (url, expected) in [
        (
            "host=localhost sslmode=bogus",
            "invalid value for option `sslmode` (allowed: disable, prefer, require, verify-ca, verify-full)",
        ),
        (
            "postgresql://u@localhost/db?sslmode=bogus",
            "invalid value for option `sslmode` (allowed: disable, prefer, require, verify-ca, verify-full)",
        ),
        (
            "host=localhost sslmod=require",
            "unknown option `sslmod`; did you mean `sslmode`?",
        ),
    ] {
        let (code, _, err, _) = run(url, &[]);
        assert_eq!(code, Some(2), "{err}");
        assert_eq!(
            err,
            format!("error: --url is not a PostgreSQL connection string: {expected}\n")
        );
    }
}

/// `host=... port=... user=anomalies dbname=postgres` of a server of the test's own, as its
/// four settings.
fn settings(url: &str) -> Vec<(String, String)> {
    url.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_service_names_the_server_and_the_password_file_is_read_as_libpq_reads_it() {
    use std::os::unix::fs::PermissionsExt;
    let server = crate::user_server::UserServer::start();
    let dir = tempfile::tempdir().unwrap();
    let service = dir.path().join("services.conf");
    let mut section = String::from("[scratch]\n");
    for (key, value) in settings(&server.url) {
        section.push_str(&format!("{key}={value}\n"));
    }
    std::fs::write(&service, section).unwrap();
    let run = |passfile: &std::path::Path| {
        anomalies()
            .args([
                "run",
                "lost-update",
                "--url",
                "application_name=service-test",
            ])
            .env("PGSERVICE", "scratch")
            .env("PGSERVICEFILE", &service)
            .env("PGPASSFILE", passfile)
            .env_remove("PGHOST")
            .env_remove("PGPORT")
            .output()
            .unwrap()
    };
    // The service alone reaches the server (the URL names none of host, port, user, dbname).
    let missing = dir.path().join("no-such-passfile");
    let output = run(&missing);
    assert!(output.status.success(), "{}", stderr(&output));
    // A password file that others can read, with a line for this server, is refused as libpq
    // refuses it: the line matched (the host is the server's socket directory).
    let passfile = dir.path().join("pgpass");
    std::fs::write(&passfile, "*:*:postgres:anomalies:hunter2\n").unwrap();
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = run(&passfile);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("can be read by others (mode 0644)") && err.contains("chmod 0600"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    // Private, it is used (the server trusts the socket, so any password passes).
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let output = run(&passfile);
    assert!(output.status.success(), "{}", stderr(&output));
    // A service nobody defines is named.
    let output = anomalies()
        .args(["run", "lost-update", "--url", "application_name=x"])
        .env("PGSERVICE", "nowhere")
        .env("PGSERVICEFILE", &service)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("PGSERVICE names service `nowhere`, which none of"),
        "{}",
        stderr(&output)
    );
}
