//! Whether a session waits, and for whom, read from `SHOW ENGINE INNODB STATUS`.
//!
//! InnoDB rebuilds that text on every call, so it is never stale (`information_schema.INNODB_TRX`
//! and `INNODB_LOCK_WAITS` are a cache, refreshed only when unread for 100 ms). A waiting
//! transaction's block says `LOCK WAIT`, names its connection (`MariaDB thread id N`) and the
//! lock it waits for. With `innodb_status_output_locks` on (the throwaway server sets it), every
//! transaction also lists the locks it holds, and the holders of a conflicting lock on the same
//! record or table are who it waits for.

/// One lock a transaction holds or waits for.
#[derive(Debug, Clone, PartialEq)]
struct Lock {
    target: Target,
    mode: Mode,
    /// `locks gap before rec`, or a lock on the supremum (the gap after the last record).
    gap_only: bool,
    /// `locks rec but not gap`.
    record_only: bool,
    insert_intention: bool,
    waiting: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Target {
    /// A record: space, page, heap number.
    Record(u64, u64, u64),
    Table(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    IntentionShared,
    IntentionExclusive,
    Shared,
    Exclusive,
    AutoInc,
}

#[derive(Debug, Default)]
struct Trx {
    thread: Option<u32>,
    lock_wait: bool,
    locks: Vec<Lock>,
}

/// `Some(blockers)` when the transaction of connection `thread` waits for a row or table lock:
/// the connections holding (or, failing that, queued ahead for) a lock that conflicts with the
/// one it wants. The list is empty when the status does not show others' locks.
pub(super) fn lock_wait(status: &str, thread: u32) -> Option<Vec<u32>> {
    let trxs = transactions(status);
    let waiter = trxs
        .iter()
        .find(|t| t.thread == Some(thread) && t.lock_wait)?;
    let wanted: Vec<&Lock> = waiter.locks.iter().filter(|l| l.waiting).collect();
    let others = trxs.iter().filter(|t| t.thread != Some(thread));
    let holders = |granted: bool| -> Vec<u32> {
        let mut found: Vec<u32> = others
            .clone()
            .filter(|t| {
                t.locks.iter().any(|held| {
                    held.waiting != granted && wanted.iter().any(|want| conflicts(want, held))
                })
            })
            .filter_map(|t| t.thread)
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    };
    let granted = holders(true);
    Some(if granted.is_empty() {
        holders(false)
    } else {
        granted
    })
}

/// Whether `want` must wait for `held`, by InnoDB's rules (lock0lock.cc, lock_rec_has_to_wait).
fn conflicts(want: &Lock, held: &Lock) -> bool {
    if want.target != held.target || compatible(want.mode, held.mode) {
        return false;
    }
    if let Target::Table(_) = want.target {
        return true;
    }
    // A gap lock waits for nothing but is waited for by an insert intention.
    if want.gap_only && !want.insert_intention {
        return false;
    }
    if !want.insert_intention && held.gap_only {
        return false;
    }
    if want.insert_intention && held.record_only {
        return false;
    }
    !held.insert_intention
}

fn compatible(a: Mode, b: Mode) -> bool {
    use Mode::*;
    matches!(
        (a, b),
        (
            IntentionShared,
            IntentionShared | IntentionExclusive | Shared | AutoInc
        ) | (
            IntentionExclusive,
            IntentionShared | IntentionExclusive | AutoInc
        ) | (Shared, IntentionShared | Shared)
            | (AutoInc, IntentionShared | IntentionExclusive)
    )
}

/// The transactions the status lists, with their connection, whether they wait, and their locks.
fn transactions(status: &str) -> Vec<Trx> {
    let mut trxs: Vec<Trx> = Vec::new();
    let mut record: Option<Lock> = None;
    let mut in_list = false;
    for line in status.lines() {
        if line.starts_with("LIST OF TRANSACTIONS") {
            in_list = true;
            continue;
        }
        if !in_list {
            continue;
        }
        if line == "FILE I/O" || line.starts_with("END OF INNODB MONITOR OUTPUT") {
            break;
        }
        if line.starts_with("---TRANSACTION ") {
            trxs.push(Trx::default());
            record = None;
            continue;
        }
        let Some(trx) = trxs.last_mut() else { continue };
        if line.starts_with("LOCK WAIT ") {
            trx.lock_wait = true;
        } else if let Some(thread) = thread_id(line) {
            trx.thread.get_or_insert(thread);
        } else if let Some(lock) = table_lock(line) {
            push_once(&mut trx.locks, lock);
            record = None;
        } else if line.starts_with("RECORD LOCKS ") {
            record = record_header(line);
        } else if let (Some(heap), Some(header)) = (heap_no(line), &record) {
            if let Target::Record(space, page, _) = header.target {
                let mut lock = header.clone();
                lock.target = Target::Record(space, page, heap);
                // Heap number 1 is the supremum: a lock on it guards only the last gap.
                lock.gap_only |= heap == 1;
                push_once(&mut trx.locks, lock);
            }
        }
    }
    trxs
}

/// The waiting lock is listed twice (as waited for, and among the transaction's locks).
fn push_once(locks: &mut Vec<Lock>, lock: Lock) {
    if !locks.contains(&lock) {
        locks.push(lock);
    }
}

/// `MariaDB thread id 5, OS thread handle …` (MySQL says `MySQL thread id`).
fn thread_id(line: &str) -> Option<u32> {
    let rest = line
        .strip_prefix("MariaDB thread id ")
        .or_else(|| line.strip_prefix("MySQL thread id "))?;
    rest.split(',').next()?.trim().parse().ok()
}

/// `TABLE LOCK table `t`.`a` trx id 24 lock mode IX` (and ` waiting`).
fn table_lock(line: &str) -> Option<Lock> {
    let rest = line.strip_prefix("TABLE LOCK table ")?;
    let (table, rest) = rest.split_once(" trx id ")?;
    let mode = mode_after(rest, "lock mode ")?;
    Some(Lock {
        target: Target::Table(table.to_string()),
        mode,
        gap_only: false,
        record_only: false,
        insert_intention: false,
        waiting: rest.ends_with(" waiting"),
    })
}

/// `RECORD LOCKS space id 5 page no 3 n bits 320 index PRIMARY of table `t`.`a` trx id 24
/// lock_mode X locks rec but not gap waiting`: the record comes from the `heap no` lines after.
fn record_header(line: &str) -> Option<Lock> {
    let number_after = |key: &str| -> Option<u64> {
        let start = line.find(key)? + key.len();
        line[start..].split_whitespace().next()?.parse().ok()
    };
    let space = number_after("space id ")?;
    let page = number_after("page no ")?;
    let (_, rest) = line.split_once(" trx id ")?;
    let mode = mode_after(rest, "lock_mode ").or_else(|| mode_after(rest, "lock mode "))?;
    Some(Lock {
        target: Target::Record(space, page, 0),
        mode,
        gap_only: rest.contains("locks gap before rec"),
        record_only: rest.contains("locks rec but not gap"),
        insert_intention: rest.contains("insert intention"),
        waiting: rest.ends_with(" waiting"),
    })
}

fn mode_after(text: &str, key: &str) -> Option<Mode> {
    let start = text.find(key)? + key.len();
    Some(match text[start..].split_whitespace().next()? {
        "IS" => Mode::IntentionShared,
        "IX" => Mode::IntentionExclusive,
        "S" => Mode::Shared,
        "X" => Mode::Exclusive,
        "AUTO-INC" => Mode::AutoInc,
        _ => return None,
    })
}

/// `Record lock, heap no 2 PHYSICAL RECORD: …`.
fn heap_no(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("Record lock, heap no ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The name argument of the first `GET_LOCK(…)` in a statement, as SQL text (`'job'`, or an
/// expression such as `CONCAT(DATABASE(), '.job')`): the control connection, in the run's
/// database too, evaluates it to ask who holds that lock.
pub(super) fn get_lock_name(statement: &str) -> Option<&str> {
    let start = statement.to_ascii_uppercase().find("GET_LOCK(")? + "GET_LOCK(".len();
    let rest = &statement[start..];
    let (mut depth, mut quote) = (0usize, None::<char>);
    for (at, c) in rest.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') if depth == 0 => return None,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                let name = rest[..at].trim();
                return (!name.is_empty()).then_some(name);
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests;
