//! TLS as libpq does it, against a private server on 127.0.0.1 with `ssl=on` and certificates
//! each test makes with the `openssl` CLI: require and prefer encrypt (the server accepts only
//! `hostssl`), verify-full checks the CA and the host name, a client certificate logs in, and
//! each refusal is one line with exit 2. A server without TLS is reached by prefer, refused by
//! require. Every server is stopped, and its directory removed, at the end of its test.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anomalies::engine::cluster::find_bindir;
use nix::unistd::{Uid, User};

use crate::support::{anomalies, open_tempdir, processes_mentioning, stderr};

/// `openssl req` and `x509` sections: a CA, a server certificate for localhost and 127.0.0.1
/// only, and a client certificate.
const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
[client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
";

/// A PostgreSQL server of the test's own, on 127.0.0.1 and .2 and a free port; `hostssl` only
/// when TLS is on, database `template1` asking for a client certificate (or the test's own
/// `pg_hba.conf`).
pub(crate) struct Server {
    dir: tempfile::TempDir,
    pg_ctl: PathBuf,
    data: PathBuf,
    owner: Option<User>,
    pub(crate) port: u16,
    running: bool,
}

impl Server {
    fn start(ssl: bool) -> Server {
        Server::start_with(ssl, None)
    }

    /// A server whose `pg_hba.conf` is `hba`, when given.
    pub(crate) fn start_with(ssl: bool, hba: Option<&str>) -> Server {
        let bindir = find_bindir()
            .expect("PostgreSQL server binaries are not installed (apt-get install postgresql)");
        let dir = open_tempdir();
        let owner = Uid::effective().is_root().then(|| {
            User::from_name("postgres")
                .expect("the user database")
                .expect("running as root needs a `postgres` user to run the server")
        });
        make_certificates(dir.path());
        let home = dir.path().join("server");
        std::fs::create_dir(&home).unwrap();
        give(&home, owner.as_ref());
        let data = home.join("data");
        let mut server = Server {
            pg_ctl: bindir.join("pg_ctl"),
            data,
            owner,
            port: free_port(),
            running: false,
            dir,
        };
        let initdb = bindir.join("initdb");
        let data = server.data.to_str().unwrap().to_string();
        server.run(
            &initdb,
            &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync"],
        );
        for (file, name) in [("server.crt", "server.crt"), ("server.key", "server.key")] {
            let target = server.data.join(name);
            std::fs::copy(server.dir.path().join(file), &target).unwrap();
            give(&target, server.owner.as_ref());
        }
        let target = server.data.join("ca.crt");
        std::fs::copy(server.dir.path().join("ca.crt"), &target).unwrap();
        give(&target, server.owner.as_ref());
        server.configure(ssl);
        if let Some(hba) = hba {
            std::fs::write(server.data.join("pg_hba.conf"), hba).unwrap();
        }
        let log = home.join("log").to_str().unwrap().to_string();
        server.run(
            &server.pg_ctl,
            &["start", "-D", &data, "-l", &log, "-w", "-t", "60"],
        );
        server.running = true;
        server
    }

    fn configure(&self, ssl: bool) {
        let settings = format!(
            "listen_addresses = '127.0.0.1,127.0.0.2'\nport = {}\n\
             unix_socket_directories = ''\nfsync = off\nssl = {}\n\
             ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'ca.crt'\n",
            self.port,
            if ssl { "on" } else { "off" }
        );
        let conf = self.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&settings);
        std::fs::write(&conf, text).unwrap();
        let hba = if ssl {
            "hostssl template1 all 127.0.0.0/8 cert\nhostssl all all 127.0.0.0/8 trust\n"
        } else {
            "host all all 127.0.0.0/8 trust\n"
        };
        std::fs::write(self.data.join("pg_hba.conf"), hba).unwrap();
    }

    /// Writes `hba` as the server's `pg_hba.conf` and has the server read it again: returns
    /// once its log says it has (the postmaster reads `pg_hba.conf` as it handles the signal).
    pub(crate) fn set_hba(&self, hba: &str) {
        let log = self.data.parent().unwrap().join("log");
        let reloads = || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .matches("reloading configuration files")
                .count()
        };
        let before = reloads();
        std::fs::write(self.data.join("pg_hba.conf"), hba).unwrap();
        let data = self.data.to_str().unwrap().to_string();
        self.run(&self.pg_ctl, &["reload", "-D", &data]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while reloads() == before {
            assert!(
                std::time::Instant::now() < deadline,
                "the server never reloaded"
            );
        }
    }

    /// Runs a server binary as the server's user; it must succeed.
    fn run(&self, program: &Path, args: &[&str]) {
        let mut command = Command::new(program);
        command.args(args).current_dir(self.dir.path());
        if let Some(owner) = &self.owner {
            command.uid(owner.uid.as_raw()).gid(owner.gid.as_raw());
        }
        let output = command.output().expect("a server binary runs");
        let log = std::fs::read_to_string(self.data.parent().unwrap().join("log"));
        assert!(
            output.status.success(),
            "{} {args:?}: {}{}\n{log:?}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A file the test made: `ca.crt`, `other-ca.crt`, `client.crt`, `client.key`.
    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    /// `host=… port=… user=postgres dbname=postgres` and `extra`.
    pub(crate) fn url(&self, host: &str, extra: &str) -> String {
        format!("host={host} port={} user=postgres {extra}", self.port)
    }

    /// Stops the server and removes its directory; no process of it is left.
    pub(crate) fn stop(mut self) {
        self.halt();
        let path = self.dir.path().to_path_buf();
        assert_eq!(processes_mentioning(&path), Vec::<String>::new());
        drop(self);
        assert!(!path.exists(), "{} is left behind", path.display());
    }

    fn halt(&mut self) {
        if std::mem::take(&mut self.running) {
            let data = self.data.to_str().unwrap().to_string();
            self.run(&self.pg_ctl, &["stop", "-D", &data, "-m", "fast", "-w"]);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.halt();
    }
}

/// CA, server and client certificates, and a second CA that signed nothing, in `dir`.
fn make_certificates(dir: &Path) {
    std::fs::write(dir.join("openssl.cnf"), OPENSSL_CONFIG).unwrap();
    let key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -config openssl.cnf";
    for ca in ["ca", "other-ca"] {
        openssl(
            dir,
            &format!("req -x509 {key} -extensions ca -keyout {ca}.key -out {ca}.crt -days 2 -subj /CN={ca}"),
        );
    }
    for (name, subject) in [("server", "localhost"), ("client", "postgres")] {
        openssl(
            dir,
            &format!("req -new {key} -keyout {name}.key -out {name}.csr -subj /CN={subject}"),
        );
        openssl(
            dir,
            &format!(
                "x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
                 -extfile openssl.cnf -extensions {name} -out {name}.crt"
            ),
        );
    }
}

fn openssl(dir: &Path, args: &str) {
    let output = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .expect("the openssl CLI runs (apt-get install openssl)");
    assert!(
        output.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Gives a path to the server's user, readable by it alone.
fn give(path: &Path, owner: Option<&User>) {
    use std::os::unix::fs::PermissionsExt;
    let mode = if path.is_dir() { 0o700 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    if let Some(owner) = owner {
        nix::unistd::chown(path, Some(owner.uid), Some(owner.gid)).unwrap();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `anomalies run lost-update --url URL`, with HOME in the test's directory (so no
/// `~/.postgresql` of the machine counts), the PGSSL* variables `env` and no others: the exit
/// code and stderr.
fn run(server: &Server, url: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = anomalies();
    command
        .args(["run", "lost-update", "--url", url])
        .env("HOME", server.dir.path())
        .envs(env.iter().copied());
    for variable in [
        "PGSSLMODE",
        "PGSSLROOTCERT",
        "PGSSLCERT",
        "PGSSLKEY",
        "PGPASSWORD",
    ] {
        if !env.iter().any(|(name, _)| *name == variable) {
            command.env_remove(variable);
        }
    }
    let output = command.output().unwrap();
    (output.status.code(), stderr(&output))
}

fn connects(server: &Server, url: &str, env: &[(&str, &str)]) {
    let (code, err) = run(server, url, env);
    assert_eq!(code, Some(0), "{url}: {err}");
}

/// The run fails with exit 2 and one line that contains `expected`.
fn refused(server: &Server, url: &str, expected: &str) {
    let (code, err) = run(server, url, &[]);
    assert_eq!(code, Some(2), "{url}: {err}");
    assert_eq!(err.lines().count(), 1, "{url}: {err}");
    assert!(err.contains(expected), "{url}: {err}");
}

#[test]
fn require_prefer_verify_full_and_a_client_certificate_connect_over_tls() {
    let server = Server::start(true);
    let ca = server.file("ca.crt");
    connects(
        &server,
        &server.url("127.0.0.1", "dbname=postgres sslmode=require"),
        &[],
    );
    // prefer is the default; the server takes only hostssl, so TLS was used.
    connects(&server, &server.url("127.0.0.1", "dbname=postgres"), &[]);
    connects(
        &server,
        &server.url("127.0.0.1", "dbname=postgres sslmode=prefer"),
        &[],
    );
    for host in ["127.0.0.1", "localhost"] {
        let url = server.url(
            host,
            &format!("dbname=postgres sslmode=verify-full sslrootcert={ca}"),
        );
        connects(&server, &url, &[]);
    }
    let url = format!(
        "postgresql://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={}",
        server.port,
        ca.replace('/', "%2F")
    );
    connects(&server, &url, &[]);
    let env = [("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", ca.as_str())];
    connects(&server, &server.url("localhost", "dbname=postgres"), &env);
    // verify-ca checks the chain, not the name: 127.0.0.2 is not in the certificate.
    let url = server.url(
        "127.0.0.2",
        &format!("dbname=postgres sslmode=verify-ca sslrootcert={ca}"),
    );
    connects(&server, &url, &[]);
    // template1 asks for a client certificate whose CN is the user.
    let key = server.file("client.key");
    let cert = server.file("client.crt");
    let url = server.url(
        "127.0.0.1",
        &format!("dbname=template1 sslmode=require sslcert={cert} sslkey={key}"),
    );
    connects(&server, &url, &[]);
    server.stop();
}

#[test]
fn a_wrong_ca_a_wrong_host_no_client_certificate_and_disable_fail_in_one_line() {
    let server = Server::start(true);
    let ca = server.file("ca.crt");
    let other = server.file("other-ca.crt");
    let url = server.url(
        "127.0.0.1",
        &format!("sslmode=verify-full sslrootcert={other}"),
    );
    refused(&server, &url, "invalid peer certificate: UnknownIssuer");
    // As in libpq, require with a root certificate file checks the chain.
    let url = server.url(
        "127.0.0.1",
        &format!("dbname=postgres sslmode=require sslrootcert={other}"),
    );
    refused(&server, &url, "invalid peer certificate: UnknownIssuer");
    let url = server.url(
        "127.0.0.2",
        &format!("sslmode=verify-full sslrootcert={ca}"),
    );
    refused(
        &server,
        &url,
        "certificate not valid for name \"127.0.0.2\"",
    );
    let url = server.url("127.0.0.1", "dbname=postgres sslmode=verify-full");
    refused(&server, &url, "root certificate file");
    refused(
        &server,
        &server.url("127.0.0.1", "dbname=template1 sslmode=require"),
        "connection requires a valid client certificate (28000)",
    );
    refused(
        &server,
        &server.url("127.0.0.1", "dbname=postgres sslmode=disable"),
        "no pg_hba.conf entry for host \"127.0.0.1\", user \"postgres\", database \"postgres\", no encryption (28000)",
    );
    server.stop();
}

#[test]
fn prefer_falls_back_to_plain_text_and_require_refuses_a_server_without_tls() {
    let server = Server::start(false);
    connects(&server, &server.url("127.0.0.1", "dbname=postgres"), &[]);
    connects(
        &server,
        &server.url("127.0.0.1", "dbname=postgres sslmode=prefer"),
        &[],
    );
    connects(
        &server,
        &server.url("127.0.0.1", "dbname=postgres sslmode=disable"),
        &[],
    );
    refused(
        &server,
        &server.url("127.0.0.1", "dbname=postgres sslmode=require"),
        "server does not support TLS",
    );
    server.stop();
}
