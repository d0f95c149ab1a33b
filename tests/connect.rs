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
                let mut buffer = [0; 64];
                let _ = stream.read(&mut buffer);
                let _ = stream.write_all(reply);
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
