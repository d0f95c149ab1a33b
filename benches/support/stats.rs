//! The statistics every bench prints: median, p90 and minimum of a run's samples.

use std::time::Duration;

pub fn stats(samples: &mut [Duration]) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!(
        "median {}, p90 {}, min {} (n = {})",
        ms(at(0.5)),
        ms(at(0.9)),
        ms(samples[0]),
        samples.len()
    )
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}
