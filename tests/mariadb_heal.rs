//! A damaged MariaDB cache slot heals itself: each kind of damage to a cached slot, then a start
//! that succeeds with a one-line notice of what was wrong (and whose stored procedures work),
//! then a start with no notice. Every case works on a copy of one cache initialised once, in a
//! private cache directory; modelled on `cache.rs`, PostgreSQL's.

use std::fs;
use std::path::Path;

use anomalies::engine::mariadb::server::MariaServer;

use crate::damage::{chmod, copy_tree, dead_pid, empty, engine_dir, make_foreign, remove};
use crate::damage::{heal_each, truncate, write};
use crate::mariadb_server::{procedures_work, start};
use crate::support::{open_tempdir, processes_mentioning};

/// One kind of damage: what it does to `slot-0/`, and words the notice must contain (`None`:
/// nothing worth a notice, the start just works).
struct Damage {
    name: &'static str,
    apply: fn(&Path),
    says: Option<&'static str>,
}

const DAMAGES: &[Damage] = &[
    Damage {
        name: "deleted ibdata1",
        apply: |slot| remove(&slot.join("data/ibdata1")),
        says: Some("(ibdata1 is missing)"),
    },
    Damage {
        name: "truncated ibdata1",
        apply: |slot| truncate(&slot.join("data/ibdata1"), 100),
        says: Some("(ibdata1 is 100 bytes, less than the "),
    },
    Damage {
        name: "zeroed first page of ibdata1",
        apply: |slot| overwrite(&slot.join("data/ibdata1"), &[0; 16384]),
        says: Some("(its server would not start: InnoDB: "),
    },
    Damage {
        name: "ibdata1 owned by another user (unreadable when not root)",
        apply: |slot| make_foreign(&slot.join("data/ibdata1")),
        says: Some("(its server would not start: "),
    },
    Damage {
        name: "deleted ib_logfile0",
        apply: |slot| remove(&slot.join("data/ib_logfile0")),
        says: Some("(ib_logfile0 is missing)"),
    },
    Damage {
        name: "garbage in aria_log_control",
        apply: |slot| overwrite(&slot.join("data/aria_log_control"), &[b'x'; 52]),
        says: Some("(its server would not start: "),
    },
    Damage {
        name: "truncated aria_log_control",
        apply: |slot| write(&slot.join("data/aria_log_control"), b"garbage\n"),
        says: Some("(aria_log_control is 8 bytes, less than the 52 mariadb-install-db made)"),
    },
    Damage {
        name: "truncated mysql/proc.MAI",
        apply: |slot| truncate(&slot.join("data/mysql/proc.MAI"), 0),
        says: Some("(mysql/proc.MAI is 0 bytes, less than the "),
    },
    Damage {
        name: "truncated mysql/proc.frm",
        apply: |slot| truncate(&slot.join("data/mysql/proc.frm"), 10),
        says: Some("(mysql/proc.frm differs from what mariadb-install-db wrote)"),
    },
    Damage {
        name: "garbage in mysql/global_priv.MAD",
        apply: |slot| write(&slot.join("data/mysql/global_priv.MAD"), b"garbage"),
        says: Some("(mysql/global_priv.MAD is 7 bytes, less than the "),
    },
    Damage {
        name: "deleted mysql/",
        apply: |slot| remove(&slot.join("data/mysql")),
        says: Some("(mysql/column_stats.MAD is missing)"),
    },
    Damage {
        name: "deleted mysql_upgrade_info",
        apply: |slot| remove(&slot.join("data/mysql_upgrade_info")),
        says: Some("(mysql_upgrade_info is missing)"),
    },
    Damage {
        name: "read-only data directory",
        apply: |slot| chmod(&slot.join("data"), 0o500),
        says: Some("(its data directory has mode 0500, not 0700)"),
    },
    Damage {
        name: "stale pid file of a dead process",
        apply: |slot| {
            write(
                &slot.join("run/mariadbd.pid"),
                format!("{}\n", dead_pid()).as_bytes(),
            )
        },
        says: Some("mariadbd.pid named pid "),
    },
    Damage {
        name: "pid file of a live process that is not the server (this test)",
        apply: |slot| {
            let pid = std::process::id();
            write(
                &slot.join("run/mariadbd.pid"),
                format!("{pid}\n").as_bytes(),
            )
        },
        says: Some("mariadbd.pid named pid "),
    },
    Damage {
        name: "stale socket file (ours, which the server's user could not replace)",
        apply: |slot| {
            let socket = slot.join("run/mariadbd.sock");
            std::os::unix::net::UnixListener::bind(&socket).unwrap();
        },
        says: None,
    },
    Damage {
        name: "no manifest",
        apply: |slot| remove(&slot.join("manifest")),
        says: None,
    },
    Damage {
        name: "the slot is a file",
        apply: |slot| {
            remove(slot);
            write(slot, b"not a slot\n");
        },
        says: Some("slot-0 was not a directory, so it was replaced"),
    },
    Damage {
        name: "an empty slot directory",
        apply: empty,
        says: Some("(there is no data directory)"),
    },
];

#[test]
fn every_kind_of_damage_to_a_cached_mariadb_slot_heals_on_the_next_start() {
    let template = open_tempdir();
    start(Some(template.path())).stop().unwrap();
    let failures = heal_each(template.path(), DAMAGES, |damage| damage.name, heals);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(processes_mentioning(template.path()), Vec::<String>::new());
}

/// Damages a copy of `template`, then checks that a start heals it with one notice (or none,
/// when nothing is worth one) and working procedures, and that the start after it is clean.
fn heals(template: &Path, damage: &Damage) -> Result<(), String> {
    let cache = open_tempdir();
    copy_tree(&engine_dir(template, "mariadb-"), cache.path());
    let slot = engine_dir(cache.path(), "mariadb-").join("slot-0");
    (damage.apply)(&slot);
    let result = check_heals(cache.path(), damage);
    let left = processes_mentioning(cache.path());
    if !left.is_empty() {
        return Err(format!("processes left: {left:?}"));
    }
    result
}

fn check_heals(cache: &Path, damage: &Damage) -> Result<(), String> {
    let healing =
        MariaServer::start_in(None, cache).map_err(|err| format!("the start failed: {err}"))?;
    let notice = healing.notice().map(str::to_string);
    match (&notice, damage.says) {
        (None, None) => {}
        (Some(notice), Some(says)) if notice.lines().count() == 1 && notice.contains(says) => {}
        _ => {
            return Err(format!(
                "expected a notice saying {:?}, got {notice:?}",
                damage.says
            ))
        }
    }
    procedures_work(healing.socket());
    healing
        .stop()
        .map_err(|err| format!("the healed server did not stop: {err}"))?;
    let clean = MariaServer::start_in(None, cache)
        .map_err(|err| format!("the next start failed: {err}"))?;
    if let Some(notice) = clean.notice() {
        return Err(format!("the start after it was not clean: {notice}"));
    }
    clean
        .stop()
        .map_err(|err| format!("the next server did not stop: {err}"))
}

/// Writes `bytes` over the start of `path`, keeping its length.
fn overwrite(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut file = fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}
