//! Order statistics of the runs and their Markdown formatting.

use std::time::Duration;

pub struct Summary {
    pub median: Duration,
    pub p90: Duration,
    pub max: Duration,
}

/// Median, 90th percentile (nearest rank) and maximum.
pub fn summary(values: impl Iterator<Item = Duration>) -> Summary {
    let mut sorted: Vec<Duration> = values.collect();
    sorted.sort();
    let rank = |q: f64| {
        let index = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
        sorted.get(index).copied().unwrap_or_default()
    };
    Summary { median: rank(0.5), p90: rank(0.9), max: sorted.last().copied().unwrap_or_default() }
}

pub fn median_u64(values: &[u64]) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len().saturating_sub(1) / 2).copied().unwrap_or_default()
}

pub fn median_f64(values: impl Iterator<Item = f64>) -> f64 {
    let mut sorted: Vec<f64> = values.collect();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len().saturating_sub(1) / 2).copied().unwrap_or_default()
}

pub fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

pub fn mib_text(bytes: u64) -> String {
    format!("{:.1}", mib(bytes))
}
