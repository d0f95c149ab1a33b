//! A run's own login role: where the connecting user may create roles, each run's scenario SQL
//! (setup, steps, final query) runs as a role made for that run alone. It owns the run's schema
//! and nothing else, holds no other privilege, and is dropped with the schema. Where the user may
//! not, or such a role cannot log in, runs fall back to the user's own privileges, and the
//! engine says why.

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config};

use super::cleanup::{claim_schema, drop_schema, end_backends, own, unlock};
use super::cleanup::{CLOSE_TIMEOUT, SCHEMA_COMMENT};
use super::connect::{connect, error_text, pg_error};
use super::tls::Tls;
use crate::engine::EngineError;

/// What a failure for want of a privilege adds when the scenario runs as a role of its own.
pub(super) const CONFINED: &str =
    "the scenario runs as a role of its own, which may reach only the run's schema";

/// Whose privileges a run's scenario SQL has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Confinement {
    /// A login role of the run's own; `grant`: the user is no superuser, so it grants itself
    /// membership in the role, which lets it make the role's schema and clean up after it.
    Role { grant: bool },
    /// The user's own: why not a role (`who may not create roles`).
    User { why: String },
}

/// A run's role: its name (the run's schema's) and its password, made for the run and never
/// shown (`Debug` leaves it out).
pub(super) struct RunRole {
    pub(super) name: String,
    password: String,
    salt: [u8; 16],
}

impl std::fmt::Debug for RunRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunRole")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl RunRole {
    /// A role named `name`, with a random password of 32 letters and digits (190 bits, from
    /// the operating system's generator, each letter or digit as likely as any other).
    pub(super) fn new(name: &str) -> Result<RunRole, EngineError> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let random = |bytes: &mut [u8]| {
            getrandom::fill(bytes)
                .map_err(|e| EngineError::Setup(format!("no random password for the run: {e}")))
        };
        let mut password = String::new();
        while password.len() < 32 {
            let mut bytes = [0u8; 64];
            random(&mut bytes)?;
            // Bytes from 248 (4 × 62) up are passed over, so that `% 62` favours none.
            let fair = bytes.iter().map(|b| usize::from(*b)).filter(|b| *b < 248);
            let wanted = 32 - password.len();
            password.extend(
                fair.map(|b| ALPHABET[b % ALPHABET.len()] as char)
                    .take(wanted),
            );
        }
        let mut salt = [0u8; 16];
        random(&mut salt)?;
        Ok(RunRole {
            name: name.to_string(),
            password,
            salt,
        })
    }

    /// The user's connection settings, logging in as the role instead.
    pub(super) fn config(&self, base: &Config) -> Config {
        let mut config = base.clone();
        config.user(&self.name).password(&self.password);
        config
    }

    /// Makes the role and the run's schema, which it owns, in one transaction: `CREATE ROLE`
    /// with the password's SCRAM verifier (the password itself is never sent, so it is in no
    /// server log), the comment that lets a later run's sweep find it, the user's membership
    /// (`grant`), the schema and its comment.
    pub(super) fn create_sql(&self, database: &str, grant: bool, schema: bool) -> String {
        let name = &self.name;
        let verifier = scram_verifier(&self.password, &self.salt);
        let mut sql = format!(
            "CREATE ROLE {name} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION \
             NOBYPASSRLS PASSWORD '{verifier}'; COMMENT ON ROLE {name} IS {};",
            literal(&role_comment(database))
        );
        if grant {
            sql.push_str(&format!(" GRANT {name} TO CURRENT_USER;"));
        }
        if schema {
            sql.push_str(&format!(
                " CREATE SCHEMA {name} AUTHORIZATION {name}; \
                 COMMENT ON SCHEMA {name} IS '{SCHEMA_COMMENT}';"
            ));
        }
        sql
    }
}

/// The SCRAM-SHA-256 verifier of `password` (RFC 5802 and 7677), as PostgreSQL stores it:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, so the password itself is never
/// sent. One iteration: iterations stretch a password that could be guessed, and 190 random
/// bits cannot be. The 4096 that libpq uses cost 65 ms a run in a debug build, and as much
/// again at each session's login where the server asks for SCRAM.
fn scram_verifier(password: &str, salt: &[u8; 16]) -> String {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::{Digest, Sha256};
    let hmac = |key: &[u8], parts: &[&[u8]]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any size");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes()
    };
    // Hi(password, salt, 1) is its first round alone, HMAC(password, salt || INT(1)); the
    // password is letters and digits, which SASLprep leaves as they are.
    let salted = hmac(password.as_bytes(), &[salt, &1u32.to_be_bytes()]);
    let client_key = hmac(&salted, &[b"Client Key"]);
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, &[b"Server Key"]);
    format!(
        "SCRAM-SHA-256$1:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
}

/// The comment on every run's role: it names the database whose advisory locks say whether
/// the run lives (roles belong to the whole server, advisory locks to one database).
pub(super) fn role_comment(database: &str) -> String {
    format!("made by anomalies for one run in database {database}; dropped when the run ends")
}

/// `text` as an SQL string literal, as PostgreSQL's `quote_literal` writes it.
pub(super) fn literal(text: &str) -> String {
    let quoted = text.replace('\'', "''");
    if text.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// Whether runs on a user's server get roles of their own: the user must be a superuser or
/// have CREATEROLE, must have the privileges of a role it made (its membership must inherit:
/// it cleans up as the role's member), and the role must be able to log in where the user
/// does (`pg_hba.conf` may refuse it; `peer` does). A probe role, made and dropped here under
/// the same lock and comment as a run's, tries all that.
pub(super) async fn confinement(
    admin: &Client,
    config: &Config,
    tls: &Tls,
    database: &str,
) -> Result<Confinement, EngineError> {
    let row = admin
        .query_one(
            "SELECT rolsuper, rolcreaterole, rolinherit FROM pg_catalog.pg_roles \
             WHERE rolname = CURRENT_USER",
            &[],
        )
        .await
        .map_err(pg_error)?;
    let (superuser, createrole, inherit): (bool, bool, bool) = (row.get(0), row.get(1), row.get(2));
    if !superuser && !createrole {
        return Ok(Confinement::User {
            why: "who may not create roles".into(),
        });
    }
    if !superuser && !inherit {
        return Ok(Confinement::User {
            why: NOINHERIT.into(),
        });
    }
    let grant = !superuser;
    let (name, maker) = claim_schema(admin, "probe").await?;
    let mut guard = ProbeGuard {
        config: own(config),
        tls: tls.clone(),
        maker,
        name: name.clone(),
        armed: true,
    };
    let probed = probe(admin, config, tls, database, &name, grant).await;
    // The probe role owns nothing: no DROP OWNED, which needs its privileges.
    let dropped = admin
        .batch_execute(&format!("DROP ROLE IF EXISTS {name}"))
        .await
        .map_err(pg_error);
    guard.armed = dropped.is_err();
    unlock(admin, &name).await?;
    let confinement = probed?;
    dropped?;
    Ok(confinement)
}

/// Drops the probe role when the probe does not finish: the command was interrupted while it
/// connected, so no engine is left to clean up. On a thread of its own, over a connection of
/// its own (the future that made the role is gone, and the runtime may be stopping), it ends
/// the backend that made the role and any logged in as it, and waits until they are gone (a
/// `CREATE ROLE` still in flight has committed or rolled back by then), then drops the role.
/// Bounded by the
/// connect timeout and [`CLOSE_TIMEOUT`].
struct ProbeGuard {
    config: Config,
    tls: Tls,
    maker: i32,
    name: String,
    armed: bool,
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (config, tls, maker) = (self.config.clone(), self.tls.clone(), self.maker);
        let name = std::mem::take(&mut self.name);
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let work = async {
                    let client = connect(&config, &tls, "the server").await.ok()?;
                    end_backends(&client, &[maker], Some(&name)).await.ok()?;
                    let drop = format!("DROP ROLE IF EXISTS {name}");
                    client.batch_execute(&drop).await.ok()
                };
                tokio::time::timeout(CLOSE_TIMEOUT, work)
                    .await
                    .ok()
                    .flatten()
            })
        });
        let _ = cleanup.join();
    }
}

const NOINHERIT: &str = "who does not inherit its roles' privileges (NOINHERIT), which cleaning \
                         up after a role of the run's own needs";

async fn probe(
    admin: &Client,
    config: &Config,
    tls: &Tls,
    database: &str,
    name: &str,
    grant: bool,
) -> Result<Confinement, EngineError> {
    let role = RunRole::new(name)?;
    if let Err(e) = admin
        .batch_execute(&role.create_sql(database, grant, false))
        .await
    {
        return Ok(Confinement::User {
            why: format!("as it could not create a role ({})", error_text(&e)),
        });
    }
    let inherits: bool = admin
        .query_one("SELECT pg_catalog.pg_has_role($1, 'USAGE')", &[&name])
        .await
        .map_err(pg_error)?
        .get(0);
    if !inherits {
        return Ok(Confinement::User {
            why: NOINHERIT.into(),
        });
    }
    match connect(&role.config(config), tls, "the server").await {
        Ok(client) => {
            drop(client);
            Ok(Confinement::Role { grant })
        }
        Err(EngineError::Connect { reason, .. }) => Ok(Confinement::User {
            why: format!("as a role made for the run could not log in ({reason})"),
        }),
        Err(e) => Err(e),
    }
}

/// Drops a run's role, its schema (named the same) and all else it owns in this database (a
/// table in `public` where PUBLIC may create there, a large object), and revokes what was
/// granted to it, in one transaction. A role already gone is no error (a sweep and `close` may
/// race); its schema is dropped then all the same.
pub(super) async fn drop_role(client: &Client, name: &str) -> Result<(), EngineError> {
    match client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; DROP OWNED BY {name} CASCADE; \
             DROP ROLE IF EXISTS {name}"
        ))
        .await
    {
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => drop_schema(client, name).await,
        result => result.map_err(pg_error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PENCIL_ONE_ITERATION: &str = "SCRAM-SHA-256$1:W22ZaJ0SNY7soEsUEjb6gQ==$\
        bzcn5wYzlcMpEXczzDM1iuyLhni5BVbqsm82vjMHWXI=:fg/vS0Y425LcbLGWSqdzrFlRn9451QblzgpwLQYoXCI=";

    #[test]
    fn a_verifier_is_pbkdf2_of_the_password_as_rfc_7677_computes_it() {
        // RFC 7677's example password and salt, at one iteration, as Python computes it:
        // `sp = hashlib.pbkdf2_hmac('sha256', b'pencil', salt, 1)`, StoredKey
        // `sha256(hmac(sp, b'Client Key'))`, ServerKey `hmac(sp, b'Server Key')`.
        let salt: [u8; 16] = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            "W22ZaJ0SNY7soEsUEjb6gQ==",
        )
        .unwrap()
        .try_into()
        .unwrap();
        assert_eq!(scram_verifier("pencil", &salt), PENCIL_ONE_ITERATION);
    }

    #[test]
    fn a_literal_doubles_quotes_and_escapes_backslashes() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal(r"a\b'c"), r"E'a\\b''c'");
    }

    #[test]
    fn the_password_is_never_shown_and_differs_per_role() {
        let one = RunRole::new("anomalies_1_0_x").unwrap();
        let two = RunRole::new("anomalies_1_1_x").unwrap();
        assert_eq!(one.password.len(), 32);
        assert!(one.password.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(one.password, two.password);
        let shown = format!("{one:?}");
        assert!(!shown.contains(&one.password), "{shown}");
        let config = one.config(&Config::new());
        assert!(!format!("{config:?}").contains(&one.password));
        // The SQL carries the verifier, not the password.
        let sql = one.create_sql("postgres", true, true);
        assert!(!sql.contains(&one.password), "{sql}");
        assert!(sql.contains("PASSWORD 'SCRAM-SHA-256$1:"), "{sql}");
    }
}
