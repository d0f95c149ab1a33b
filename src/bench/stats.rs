//! What one cell measured: counts, aborts by kind, and the latency of a committed payment (or
//! job), retries included, in an HDR histogram.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

/// One worker's counts; merged into the cell's.
pub struct Tally {
    pub committed: u64,
    pub refused: u64,
    /// Payments still being retried when the time was up.
    pub gave_up: u64,
    /// Attempts made by the committed payments.
    pub attempts: u64,
    /// Failed attempts by portable error kind (`serialization-failure`, `deadlock`, …), and
    /// `stale-write` for an optimistic write that found the row changed.
    pub aborts: BTreeMap<String, u64>,
    /// Microseconds from a committed payment's first attempt to its commit.
    pub latency: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            committed: 0,
            refused: 0,
            gave_up: 0,
            attempts: 0,
            aborts: BTreeMap::new(),
            // 1 µs to 10 minutes, 3 significant digits: the bounds hold every latency.
            latency: Histogram::new_with_bounds(1, 600_000_000, 3)
                .unwrap_or_else(|_| Histogram::new(3).expect("a histogram of 3 digits")),
        }
    }
}

impl Tally {
    pub fn commit(&mut self, attempts: u64, took: Duration) {
        self.committed += 1;
        self.attempts += attempts;
        let micros = took.as_micros().clamp(1, 600_000_000) as u64;
        self.latency.saturating_record(micros);
    }

    pub fn abort(&mut self, kind: &str) {
        *self.aborts.entry(kind.to_string()).or_default() += 1;
    }

    pub fn merge(&mut self, other: Tally) {
        self.committed += other.committed;
        self.refused += other.refused;
        self.gave_up += other.gave_up;
        self.attempts += other.attempts;
        for (kind, n) in other.aborts {
            *self.aborts.entry(kind).or_default() += n;
        }
        let _ = self.latency.add(&other.latency);
    }

    /// The latency at `quantile`, in milliseconds (0 with no commit).
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        if self.latency.is_empty() {
            return 0.0;
        }
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    pub fn attempts_per_commit(&self) -> f64 {
        if self.committed == 0 {
            return 0.0;
        }
        self.attempts as f64 / self.committed as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_merge() {
        let mut a = Tally::default();
        a.commit(1, Duration::from_millis(2));
        a.abort("deadlock");
        let mut b = Tally::default();
        b.commit(3, Duration::from_millis(4));
        b.abort("deadlock");
        b.refused = 1;
        a.merge(b);
        assert_eq!((a.committed, a.refused, a.attempts), (2, 1, 4));
        assert_eq!(a.aborts["deadlock"], 2);
        assert_eq!(a.attempts_per_commit(), 2.0);
        assert!((a.latency_ms(1.0) - 4.0).abs() < 0.01);
    }
}
