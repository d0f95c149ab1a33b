//! A damaged cache heals itself: each kind of damage to a cached slot of the throwaway cluster,
//! then a run that exits 0 with a one-line notice of what was wrong, then a run with no notice.
//! Every case works on a copy of one cache initialised once, in a private cache directory.

use std::fs;
use std::path::Path;

use crate::damage::{chmod, copy_tree, dead_pid, empty, engine_dir, make_foreign, remove};
use crate::damage::{heal_each, truncate, write};
use crate::support::{anomalies, open_tempdir, processes_mentioning, stderr};

/// One kind of damage: what it does to `slot-0/`, and words the notice must contain.
struct Damage {
    name: &'static str,
    apply: fn(&Path),
    says: &'static str,
}

const DAMAGES: &[Damage] = &[
    Damage {
        name: "truncated PG_VERSION",
        apply: |slot| write(&slot.join("data/PG_VERSION"), b""),
        says: "(PG_VERSION is empty)",
    },
    Damage {
        name: "garbage in PG_VERSION",
        apply: |slot| write(&slot.join("data/PG_VERSION"), b"banana\n"),
        says: "(PG_VERSION says \"banana\", not ",
    },
    Damage {
        name: "truncated global/pg_control",
        apply: |slot| truncate(&slot.join("data/global/pg_control"), 100),
        says: "(global/pg_control is 100 bytes, not 8192)",
    },
    Damage {
        name: "zeroed global/pg_control",
        apply: |slot| write(&slot.join("data/global/pg_control"), &[0; 8192]),
        says: "(its server would not start: FATAL: ",
    },
    Damage {
        name: "deleted global/pg_control",
        apply: |slot| remove(&slot.join("data/global/pg_control")),
        says: "(global/pg_control is missing)",
    },
    Damage {
        name: "deleted global/",
        apply: |slot| remove(&slot.join("data/global")),
        says: "(global/pg_control is missing)",
    },
    Damage {
        name: "deleted base/",
        apply: |slot| remove(&slot.join("data/base")),
        says: "(base/ is missing)",
    },
    Damage {
        name: "deleted the postgres database's directory in base/",
        apply: |slot| remove(&postgres_database_dir(slot)),
        says: "(base/ holds 2 databases, not the 3 initdb made)",
    },
    Damage {
        name: "emptied pg_wal/",
        apply: |slot| empty(&slot.join("data/pg_wal")),
        says: "(pg_wal/ holds no WAL segment)",
    },
    Damage {
        name: "deleted pg_wal/",
        apply: |slot| remove(&slot.join("data/pg_wal")),
        says: "(pg_wal/ is missing)",
    },
    Damage {
        name: "garbage in postgresql.conf",
        apply: |slot| append_garbage(&slot.join("data/postgresql.conf")),
        says: "(postgresql.conf differs from what initdb wrote)",
    },
    Damage {
        name: "garbage in postgresql.auto.conf",
        apply: |slot| append_garbage(&slot.join("data/postgresql.auto.conf")),
        says: "(postgresql.auto.conf differs from what initdb wrote)",
    },
    Damage {
        name: "garbage in pg_hba.conf",
        apply: |slot| append_garbage(&slot.join("data/pg_hba.conf")),
        says: "(pg_hba.conf differs from what initdb wrote)",
    },
    Damage {
        name: "garbage in pg_ident.conf",
        apply: |slot| append_garbage(&slot.join("data/pg_ident.conf")),
        says: "(pg_ident.conf differs from what initdb wrote)",
    },
    Damage {
        name: "deleted postgresql.conf",
        apply: |slot| remove(&slot.join("data/postgresql.conf")),
        says: "(postgresql.conf is missing)",
    },
    Damage {
        name: "read-only data directory",
        apply: |slot| chmod(&slot.join("data"), 0o500),
        says: "(its data directory has mode 0500, not 0700)",
    },
    Damage {
        name: "global/pg_control owned by another user (unreadable when not root)",
        apply: |slot| make_foreign(&slot.join("data/global/pg_control")),
        says: "(its server would not start: ",
    },
    Damage {
        name: "stale postmaster.pid of a dead process",
        apply: |slot| write_pid_file(slot, dead_pid()),
        says: "postmaster.pid named pid ",
    },
    Damage {
        name: "postmaster.pid of a live process that is not the server (this test)",
        apply: |slot| write_pid_file(slot, std::process::id()),
        says: "postmaster.pid named pid ",
    },
    Damage {
        name: "the slot is a file",
        apply: |slot| {
            remove(slot);
            write(slot, b"not a slot\n");
        },
        says: "slot-0 was not a directory, so it was replaced",
    },
    Damage {
        name: "an empty slot directory",
        apply: empty,
        says: "(there is no data directory)",
    },
];

#[test]
fn every_kind_of_damage_to_a_cached_slot_heals_on_the_next_run() {
    let template = open_tempdir();
    let first = run_lost_update(template.path());
    assert!(first.status.success(), "{}", stderr(&first));
    let failures = heal_each(template.path(), DAMAGES, |damage| damage.name, heals);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(processes_mentioning(template.path()), Vec::<String>::new());
}

#[test]
fn a_grown_cache_is_compacted_before_its_server_starts() {
    let cache = open_tempdir();
    let first = run_lost_update(cache.path());
    assert!(first.status.success(), "{}", stderr(&first));
    let record = engine_dir(cache.path(), "pg-")
        .join("slot-0")
        .join("compacted");
    // As if the databases had grown since a compaction when they were empty.
    write(&record, b"0");
    let compacting = run_lost_update(cache.path());
    assert!(compacting.status.success(), "{}", stderr(&compacting));
    // A failed compaction would say so.
    assert!(
        !stderr(&compacting).contains("notice"),
        "{}",
        stderr(&compacting)
    );
    let size: u64 = fs::read_to_string(&record).unwrap().trim().parse().unwrap();
    assert!(size > 1_000_000, "base/ is {size} bytes after compaction");
    assert_eq!(processes_mentioning(cache.path()), Vec::<String>::new());
}

/// A server that stops with its databases grown since the last compaction, by less than a
/// compaction waits for, first vacuums the catalogs and records the size it left; the next
/// stop, with no growth since, does not; a compaction removes the record.
#[test]
fn a_grown_cache_is_vacuumed_before_its_server_stops() {
    let cache = open_tempdir();
    let first = run_lost_update(cache.path());
    assert!(first.status.success(), "{}", stderr(&first));
    let slot = engine_dir(cache.path(), "pg-").join("slot-0");
    let (compacted, vacuumed) = (slot.join("compacted"), slot.join("vacuumed"));
    assert!(!vacuumed.exists(), "a fresh slot was vacuumed");
    let size: u64 = fs::read_to_string(&compacted)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // As if the databases had grown by 512 kB since the last compaction.
    write(&compacted, (size - 512 * 1024).to_string().as_bytes());
    let vacuuming = run_lost_update(cache.path());
    assert!(vacuuming.status.success(), "{}", stderr(&vacuuming));
    let recorded = fs::read_to_string(&vacuumed).expect("no record of a vacuum");
    let again = run_lost_update(cache.path());
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        fs::read_to_string(&vacuumed).unwrap(),
        recorded,
        "vacuumed again"
    );
    write(&compacted, b"0");
    let compacting = run_lost_update(cache.path());
    assert!(compacting.status.success(), "{}", stderr(&compacting));
    assert!(
        !vacuumed.exists(),
        "the compaction kept the vacuum's record"
    );
    assert_eq!(processes_mentioning(cache.path()), Vec::<String>::new());
}

#[test]
fn a_failing_initdb_is_one_line_and_exit_2() {
    let cache = open_tempdir();
    let bindir = open_tempdir();
    script(
        &bindir.path().join("postgres"),
        "echo 'postgres (PostgreSQL) 15.4'",
    );
    script(
        &bindir.path().join("initdb"),
        "echo 'initdb: error: the disk is made of cheese' >&2; exit 1",
    );
    let output = anomalies()
        .args(["run", "lost-update", "--engine", "postgres", "--pg-bindir"])
        .arg(bindir.path())
        .env("ANOMALIES_CACHE_DIR", cache.path())
        .output()
        .expect("the binary runs");
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("initdb failed") && err.contains("the disk is made of cheese"),
        "{err}"
    );
}

/// An executable shell script at `path` with `body`.
fn script(path: &Path, body: &str) {
    write(path, format!("#!/bin/sh\n{body}\n").as_bytes());
    chmod(path, 0o755);
}

/// Damages a copy of `template`, then checks that a run heals it with one notice and that the
/// run after it is clean.
fn heals(template: &Path, damage: &Damage) -> Result<(), String> {
    let cache = open_tempdir();
    copy_tree(&engine_dir(template, "pg-"), cache.path());
    let slot = engine_dir(cache.path(), "pg-").join("slot-0");
    (damage.apply)(&slot);
    let healing = run_lost_update(cache.path());
    let healing_err = stderr(&healing);
    let notices: Vec<&str> = healing_err
        .lines()
        .filter(|line| line.starts_with("notice:"))
        .collect();
    let result = if !healing.status.success() {
        Err(format!(
            "the run failed ({}):\n{healing_err}",
            healing.status
        ))
    } else if notices.len() != 1 || !notices[0].contains(damage.says) {
        Err(format!(
            "expected one notice saying {:?}, got:\n{healing_err}",
            damage.says
        ))
    } else {
        let clean = run_lost_update(cache.path());
        let clean_err = stderr(&clean);
        if !clean.status.success() || clean_err.contains("notice") {
            Err(format!("the run after it was not clean:\n{clean_err}"))
        } else {
            Ok(())
        }
    };
    let left = processes_mentioning(cache.path());
    if !left.is_empty() {
        return Err(format!("processes left: {left:?}"));
    }
    result
}

fn run_lost_update(cache: &Path) -> std::process::Output {
    anomalies()
        .args(["run", "lost-update", "--engine", "postgres"])
        .env("ANOMALIES_CACHE_DIR", cache)
        .output()
        .expect("the binary runs")
}

fn append_garbage(path: &Path) {
    let mut text = fs::read(path).unwrap();
    text.extend_from_slice(b"\n\x01 this is = = not a \"setting\n");
    write(path, &text);
}

/// The directory of the `postgres` database: the highest-numbered one in `base/` (5 since
/// PostgreSQL 15, after template1 and template0).
fn postgres_database_dir(slot: &Path) -> std::path::PathBuf {
    let base = slot.join("data/base");
    let oid = fs::read_dir(&base)
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .max()
        .expect("base/ has databases");
    base.join(oid.to_string())
}

fn write_pid_file(slot: &Path, pid: u32) {
    let data = slot.join("data");
    let text = format!("{pid}\n{}\n", data.display());
    write(&data.join("postmaster.pid"), text.as_bytes());
}
