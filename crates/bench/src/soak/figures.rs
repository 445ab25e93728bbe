//! The soak's figures: per minute and at the end, as JSON and as lines.

use serde::Serialize;

/// What [`run`](super::run) found. `verified`: no job lost, none ended otherwise
/// than expected, the consistency check clean.
#[derive(Debug, Clone, Serialize)]
pub struct SoakFigures {
    /// Always `soak`.
    pub mode: &'static str,
    pub duration_s: f64,
    /// Jobs enqueued per second.
    pub rate_per_s: f64,
    /// The calibration's jobs/s, when the rate was not given.
    pub measured_process_jobs_per_s: Option<f64>,
    pub workers: usize,
    pub concurrency: usize,
    pub retention_s: u64,
    pub minutes: Vec<Minute>,
    pub acknowledged: u64,
    pub finished: u64,
    pub lost: usize,
    /// Up to 10 lost job ids, each with how it was lost.
    pub lost_examples: Vec<String>,
    pub unexpected: usize,
    /// Up to 10 jobs that ended otherwise than their kind should.
    pub unexpected_examples: Vec<String>,
    pub memory_samples: usize,
    /// Least-squares slope of Redis `used_memory` over the second half.
    pub memory_slope_bytes_per_min: f64,
    pub memory_slope_pct_per_min: f64,
    pub p99_wait_last_vs_first_minute: f64,
    /// `clean`, or `<n> problems`.
    pub check: String,
    /// Up to 20 of the consistency check's problems.
    pub check_problems: Vec<String>,
    /// Verified, memory slope under 1 %/min, and p99 within 2× of the first minute.
    pub target_met: bool,
    pub verified: bool,
}

/// One minute's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Minute {
    /// 1 for the first.
    pub minute: usize,
    pub seconds: f64,
    pub jobs_per_s: f64,
    pub wait_p50_ms: f64,
    pub wait_p99_ms: f64,
    pub redis_used_memory_bytes: f64,
    pub retained_jobs: u64,
    /// Each worker process's resident memory.
    pub worker_rss_mib: Vec<f64>,
}

pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Least-squares slope of `(seconds, bytes)`, in bytes per minute.
pub(super) fn slope_per_minute(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let cov: f64 = points
        .iter()
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    let var: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    if var == 0.0 { 0.0 } else { cov / var * 60.0 }
}

impl SoakFigures {
    /// The JSON object `tether bench --soak … --json` prints.
    pub fn json(&self) -> String {
        crate::to_json(self)
    }

    /// The final figures as lines (per-minute lines were printed as they came).
    pub fn table(&self) -> String {
        // As in the JSON, where a non-finite number is `null`.
        let f = |v: f64| if v.is_finite() { v } else { f64::NAN };
        let mut out = String::new();
        out.push_str(&format!(
            "jobs acknowledged {}, finished {}, lost {}, ended unexpectedly {}\n",
            self.acknowledged, self.finished, self.lost, self.unexpected
        ));
        for example in &self.lost_examples {
            out.push_str(&format!("  lost: {example}\n"));
        }
        for example in &self.unexpected_examples {
            out.push_str(&format!("  unexpected: {example}\n"));
        }
        out.push_str(&format!(
            "Redis memory slope over the second half: {:.0} bytes/min ({:.2} % of used_memory per minute)\n",
            f(self.memory_slope_bytes_per_min),
            f(self.memory_slope_pct_per_min)
        ));
        out.push_str(&format!(
            "wait p99, last minute vs first: {:.2} ×\n",
            f(self.p99_wait_last_vs_first_minute)
        ));
        out.push_str(&format!("tether check: {}\n", self.check));
        for p in &self.check_problems {
            out.push_str(&format!("  {p}\n"));
        }
        out.push_str(&format!(
            "target (slope under 1 %/min, no loss, clean check, p99 within 2× of the first minute): {}\n",
            if self.target_met { "met" } else { "not met" }
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_a_flat_series() {
        let rising: Vec<(f64, f64)> = (0..10)
            .map(|i| (i as f64 * 6.0, 1000.0 + i as f64 * 60.0))
            .collect();
        assert!((slope_per_minute(&rising) - 600.0).abs() < 1e-6);
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 5.0)).collect();
        assert_eq!(slope_per_minute(&flat), 0.0);
    }
}
