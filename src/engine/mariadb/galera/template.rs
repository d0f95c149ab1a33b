//! The cluster's template and its copies: the slot's `data/`, made by `mariadb-install-db`
//! (and healed) as a single server's is, then started once as a Galera node that bootstraps a
//! cluster of its own and stopped cleanly, so that it records the cluster's identity and
//! position (`grastate.dat`, and the same in InnoDB). Every node starts from a copy of it.
//!
//! Why a bootstrapped template: a joiner whose data is the copy of a *plain* data directory
//! recovers the position `00000000-…:-1` from InnoDB after its state transfer and is refused
//! ("Application received wrong state"). A copy of the bootstrapped template has the group's
//! identity, so the joiner only needs what the group committed since (an incremental transfer
//! of a few write sets, from the donor's cache), and the state transfer moves nothing.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::super::server::Healer;
use super::super::server::MariaError;
use super::node::{launch, Launch, NodePaths, Ports};
use crate::engine::cache::slot::{give, private_dir, remove_any, Owner};
use crate::engine::cache::{io_error, CacheError};

/// The state transfer method the nodes use: `wsrep_sst_anomalies`, in the slot's `bin/`.
pub(super) const SST_METHOD: &str = "anomalies";

/// A state transfer that moves no data, since every node starts from the same template. The
/// joiner makes a FIFO in its data directory, names it as its address, and prints back what
/// the donor writes into it; the donor writes its position there. Neither needs a port (both
/// nodes are this machine's, and the same user's). Stock `skip` would hang the joiner; `rsync`
/// copies the whole data directory (3–5 s).
///
/// The protocol, from mariadbd's side: the joiner script prints `ready <address>` and, once
/// the data is there, the position; the donor script gets `--address` and `--gtid`, and
/// prints `done <position>`.
const SST_SCRIPT: &str = r#"#!/bin/sh
# wsrep_sst_anomalies: written by anomalies; a state transfer that moves no data.
set -eu
role= gtid= domain=0 datadir= address= parent=
while [ $# -gt 0 ]; do
  case "$1" in
    --role) role=$2; shift ;;
    --address) address=$2; shift ;;
    --gtid) gtid=$2; shift ;;
    --gtid-domain-id) domain=$2; shift ;;
    --datadir) datadir=$2; shift ;;
    --parent) parent=$2; shift ;;
    --mysqld-args) break ;;
  esac
  shift
done
case "$role" in
  joiner)
    fifo="${datadir%/}/anomalies-sst"
    rm -f "$fifo"
    mkfifo -m 600 "$fifo"
    # Should the server die first (tail notices within a second), its end wakes the read
    # below, so that this script, which holds the server's log pipe too, ends with it. After
    # a transfer the tail is left to end with its server, within a second of it.
    (tail --pid="$parent" -f /dev/null; : > "$fifo") </dev/null >/dev/null 2>&1 &
    watchdog=$!
    echo "ready $fifo"
    read -r state < "$fifo" || state=
    kill "$watchdog" 2>/dev/null || :
    rm -f "$fifo"
    echo "$state"
    ;;
  donor)
    # Bounded: a joiner that died leaves no reader.
    timeout 30 sh -c 'echo "$1" > "$2"' sh "$gtid $domain" "$address"
    echo "done $gtid $domain"
    ;;
  *)
    echo "wsrep_sst_anomalies: unknown role '$role'" >&2
    exit 1
    ;;
esac
"#;

/// Writes the SST script into the slot's `bin/` (every start: a damaged one heals).
pub(super) fn install_sst_script(slot_dir: &Path, owner: Option<&Owner>) -> Result<(), CacheError> {
    let bin = slot_dir.join("bin");
    private_dir(&bin, owner)?;
    let script = bin.join(format!("wsrep_sst_{SST_METHOD}"));
    let tmp = bin.join(format!("wsrep_sst_{SST_METHOD}.tmp"));
    fs::write(&tmp, SST_SCRIPT).map_err(io_error(format!("cannot write {}", tmp.display())))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(io_error(format!(
        "cannot make {} executable",
        tmp.display()
    )))?;
    give(&tmp, owner)?;
    fs::rename(&tmp, &script).map_err(io_error(format!("cannot write {}", script.display())))
}

/// What a data directory's `grastate.dat` says: whether a cleanly stopped Galera node left it
/// (a cluster identity, a known position, safe to bootstrap from). `None` when it is usable.
pub(super) fn unusable_state(data_dir: &Path) -> Option<String> {
    let text = fs::read_to_string(data_dir.join("grastate.dat")).ok()?;
    let value = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key))
            .map(str::trim)
            .unwrap_or("")
    };
    let uuid = value("uuid:");
    let seqno = value("seqno:");
    let safe = value("safe_to_bootstrap:");
    let whole = !uuid.is_empty()
        && uuid.chars().any(|c| c.is_ascii_hexdigit() && c != '0')
        && seqno.parse::<i64>().is_ok_and(|seqno| seqno >= 0)
        && safe == "1";
    (!whole).then(|| {
        format!(
            "its Galera state is not a clean stop (seqno {seqno:?}, safe_to_bootstrap {safe:?})"
        )
    })
}

/// Whether the slot's template has been bootstrapped: its `grastate.dat` exists.
fn bootstrapped(data_dir: &Path) -> bool {
    data_dir.join("grastate.dat").exists()
}

/// Makes the slot's `data/` a Galera template: heals one whose bootstrap was cut short, and
/// bootstraps one that never was (started as a one-node cluster, stopped cleanly).
pub(super) fn ensure_template(
    healer: &Healer<'_>,
    provider: &Path,
    notes: &mut Vec<String>,
) -> Result<(), MariaError> {
    let data_dir = healer.slot_dir.join("data");
    if bootstrapped(&data_dir) {
        match unusable_state(&data_dir) {
            None => return Ok(()),
            Some(wrong) => healer.heal(&wrong, notes)?,
        }
    }
    match bootstrap(healer, provider) {
        Err(MariaError::Cache(CacheError::StartFailed { reason, .. })) => {
            healer.heal(&format!("its server would not start: {reason}"), notes)?;
            bootstrap(healer, provider)
        }
        done => done,
    }
}

/// One start of the template as a Galera node of its own, and a clean stop (`innodb_fast_shutdown
/// = 1`: the copies start without a recovery), after which its ring buffer is removed (each
/// node makes its own).
fn bootstrap(healer: &Healer<'_>, provider: &Path) -> Result<(), MariaError> {
    let slot_dir = healer.slot_dir;
    let paths = NodePaths::template(slot_dir);
    private_dir(&paths.run_dir, healer.owner)?;
    paths.stop_orphan()?;
    let ports: Ports = super::node::free_ports(&[])?;
    let mut server = launch(&Launch {
        server: &healer.binaries.server,
        provider,
        slot_dir,
        owner: healer.owner,
        name: "template".into(),
        paths: &paths,
        ports,
        peers: Vec::new(),
        extra: &["--innodb-fast-shutdown=1"],
    })?;
    server.stop()?;
    remove_any(&paths.data_dir.join("galera.cache"))?;
    remove_any(&paths.run_dir)?;
    match unusable_state(&paths.data_dir) {
        None => Ok(()),
        Some(wrong) => Err(MariaError::GaleraTemplate {
            dir: paths.data_dir,
            reason: format!("was bootstrapped and stopped, yet {wrong}"),
        }),
    }
}

/// A fresh copy of the template at `to` (what was there is removed first), owned by the
/// server's user, with the template's modes.
pub(super) fn copy_template(
    template: &Path,
    to: &Path,
    owner: Option<&Owner>,
) -> Result<(), CacheError> {
    remove_any(to)?;
    copy_tree(template, to, owner)
}

fn copy_tree(from: &Path, to: &Path, owner: Option<&Owner>) -> Result<(), CacheError> {
    let failed = || {
        io_error(format!(
            "cannot copy {} to {}",
            from.display(),
            to.display()
        ))
    };
    let meta = fs::symlink_metadata(from).map_err(failed())?;
    if meta.is_dir() {
        fs::create_dir(to).map_err(failed())?;
        for entry in fs::read_dir(from).map_err(failed())? {
            let entry = entry.map_err(failed())?;
            copy_tree(&entry.path(), &to.join(entry.file_name()), owner)?;
        }
    } else {
        // std copies with copy_file_range, which clones where the file system can.
        fs::copy(from, to).map_err(failed())?;
    }
    fs::set_permissions(to, meta.permissions()).map_err(io_error(format!(
        "cannot set the permissions of {}",
        to.display()
    )))?;
    give(to, owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(grastate: Option<&str>, expected: Option<&str>) {
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = grastate {
            fs::write(dir.path().join("grastate.dat"), text).unwrap();
        }
        assert_eq!(unusable_state(dir.path()).as_deref(), expected);
    }

    #[test]
    fn only_a_clean_stop_makes_a_template() {
        let clean =
            "# GALERA saved state\nversion: 2.1\nuuid:    64b0db85-edc5-11f1-aac7-e7490426c6e7\n\
                     seqno:   1\nsafe_to_bootstrap: 1\n";
        check(Some(clean), None);
        check(None, None);
        check(
            Some(&clean.replace("seqno:   1", "seqno:   -1")),
            Some("its Galera state is not a clean stop (seqno \"-1\", safe_to_bootstrap \"1\")"),
        );
        check(
            Some(&clean.replace("safe_to_bootstrap: 1", "safe_to_bootstrap: 0")),
            Some("its Galera state is not a clean stop (seqno \"1\", safe_to_bootstrap \"0\")"),
        );
        check(
            Some(&clean.replace(
                "64b0db85-edc5-11f1-aac7-e7490426c6e7",
                "00000000-0000-0000-0000-000000000000",
            )),
            Some("its Galera state is not a clean stop (seqno \"1\", safe_to_bootstrap \"1\")"),
        );
    }
}
