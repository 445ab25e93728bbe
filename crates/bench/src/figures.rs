//! What a bench run found: typed figures, serialised to the JSON object
//! `tether bench --json` prints, and the same figures as a table. Every key is
//! described in `docs/BENCHMARKS.md`.

use std::collections::BTreeMap;

use serde::Serialize;

/// The figures of [`run`](crate::run). Rates are jobs/s, latencies ms, sizes bytes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    /// One task enqueues one job at a time.
    pub enqueue_single_jobs_per_s: f64,
    /// 64 tasks enqueue one job at a time each.
    pub enqueue_concurrent_jobs_per_s: f64,
    /// `enqueue_many` in batches of 1,000.
    pub bulk_enqueue_jobs_per_s: f64,
    /// `used_memory` growth over the bulk enqueue ÷ its jobs.
    pub redis_bytes_per_pending_job: f64,
    /// Redis commands per job of the one-worker concurrency-64 run (when the plan has it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_cmds_per_job: Option<f64>,
    /// Redis CPU µs per job of that run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_cpu_us_per_job: Option<f64>,
    /// Redis network bytes (in + out) per job of that run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_net_bytes_per_job: Option<f64>,
    /// Peak worker RSS (MiB) of the run at the plan's top concurrency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_rss_mib: Option<f64>,
    /// Best of the one-worker-process runs.
    pub process_jobs_per_s: f64,
    /// 2 worker processes vs 1, concurrency 64 (when the plan has both).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub two_vs_one_workers_ratio: Option<f64>,
    /// Every processing run by `<workers>x<concurrency>`.
    pub process_runs_jobs_per_s: BTreeMap<String, f64>,
    /// Steady rate draining 1,000 queued jobs.
    pub backlog_small_jobs_per_s: f64,
    /// Steady rate draining [`backlog_large_jobs`](Self::backlog_large_jobs) queued jobs.
    pub backlog_large_jobs_per_s: f64,
    /// `backlog_large_jobs_per_s / backlog_small_jobs_per_s`.
    pub backlog_100k_vs_1k_ratio: f64,
    pub backlog_cpu_us_per_job_small: f64,
    pub backlog_cpu_us_per_job_large: f64,
    pub backlog_large_jobs: usize,
    /// Jobs the every-second schedules fired.
    pub schedule_firings: usize,
    pub schedule_lag_p50_ms: f64,
    pub schedule_lag_p99_ms: f64,
    /// Jobs/s enqueued while waits were measured.
    pub wait_arrival_rate_per_s: usize,
    /// From the enqueue call to the handler's start, to the microsecond (one clock).
    pub wait_p50_ms: f64,
    pub wait_p99_ms: f64,
    pub wait_max_ms: f64,
    /// The same jobs' `started_at − created_at`: the records' milliseconds on the Redis
    /// clock (what `wait_*` measured before it had microseconds).
    pub wait_records_p50_ms: f64,
    pub wait_records_p99_ms: f64,
    pub redis_benchmark: RedisCeiling,
    /// The concurrency-64 run against Redis with AOF (only with a private Redis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aof_process_jobs_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aof_redis_cpu_us_per_job: Option<f64>,
    /// Flow control: the same prefilled noop jobs drained without groups and spread
    /// over 1,000 fairness groups (round-robin), steady jobs/s, and their ratio.
    pub flow_plain_jobs_per_s: f64,
    pub flow_groups_1000_jobs_per_s: f64,
    pub flow_groups_vs_plain_ratio: f64,
    /// A queue rate limit (starts/s), the rate achieved over a backlog of 3 s worth
    /// (starts ÷ the seconds from the first start to one second after the last), their
    /// ratio, and the most starts seen in any 1,000 ms window.
    pub flow_rate_limit_per_s: u32,
    pub flow_rate_achieved_per_s: f64,
    pub flow_rate_achieved_ratio: f64,
    pub flow_rate_busiest_second: usize,
    /// Wait (created to started) of priority-0 jobs enqueued behind
    /// `flow_priority_backlog` queued priority-9 jobs.
    pub flow_priority0_wait_p50_ms: f64,
    pub flow_priority0_wait_p99_ms: f64,
    pub flow_priority0_wait_max_ms: f64,
    pub flow_priority_backlog: usize,
    /// Task trees: `tree_parents` `fanout` jobs spawning `tree_children` instant
    /// children in all; per parent, the time from its last child's outcome to its own
    /// (the fan-in), and Redis's commands and CPU per child over the whole run.
    pub tree_children: usize,
    pub tree_parents: usize,
    pub tree_fan_in_p50_ms: f64,
    pub tree_fan_in_p99_ms: f64,
    pub tree_fan_in_max_ms: f64,
    pub tree_redis_cmds_per_child: f64,
    pub tree_redis_cpu_us_per_child: f64,
    /// Every run counted all its outcomes as successes.
    pub verified: bool,
}

/// `redis-benchmark` against the same server, requests/s (`None`: not installed or failed).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RedisCeiling {
    pub set_per_s: Option<f64>,
    pub set_pipelined_16_per_s: Option<f64>,
    pub xadd_per_s: Option<f64>,
    pub xadd_pipelined_16_per_s: Option<f64>,
}

/// The figures of [`run_cluster`](crate::run_cluster).
#[derive(Debug, Clone, Serialize)]
pub struct ClusterFigures {
    /// Jobs drained by each of the two set-ups (3 queues).
    pub jobs: usize,
    pub single_jobs_per_s: f64,
    pub cluster_jobs_per_s: f64,
    pub cluster_vs_single_ratio: f64,
    /// Every run counted all its outcomes as successes.
    pub verified: bool,
}

/// A figure as the table shows it: like its JSON, where a non-finite number is `null`.
fn cell(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map(|v| format!("{v:.1}"))
        .unwrap_or_else(|| "-".into())
}

impl Figures {
    /// The JSON object `tether bench --json` prints.
    pub fn json(&self) -> String {
        crate::to_json(self)
    }

    /// The figures as a table.
    pub fn table(&self) -> String {
        let rows = [
            (
                "enqueue, one at a time (1 task)",
                Some(self.enqueue_single_jobs_per_s),
                "jobs/s",
            ),
            (
                "enqueue, one at a time (64 tasks)",
                Some(self.enqueue_concurrent_jobs_per_s),
                "jobs/s",
            ),
            ("bulk enqueue", Some(self.bulk_enqueue_jobs_per_s), "jobs/s"),
            (
                "processing, 1 worker, best concurrency",
                Some(self.process_jobs_per_s),
                "jobs/s",
            ),
            (
                "2 workers vs 1 (concurrency 64)",
                self.two_vs_one_workers_ratio,
                "×",
            ),
            (
                "processing with large backlog vs 1,000",
                Some(self.backlog_100k_vs_1k_ratio),
                "×",
            ),
            (
                "wait p50 at fixed arrival rate",
                Some(self.wait_p50_ms),
                "ms",
            ),
            (
                "wait p99 at fixed arrival rate",
                Some(self.wait_p99_ms),
                "ms",
            ),
            ("wait max", Some(self.wait_max_ms), "ms"),
            (
                "wait p99, records (Redis clock, whole ms)",
                Some(self.wait_records_p99_ms),
                "ms",
            ),
            (
                "schedule firing lag p50",
                Some(self.schedule_lag_p50_ms),
                "ms",
            ),
            (
                "schedule firing lag p99",
                Some(self.schedule_lag_p99_ms),
                "ms",
            ),
            (
                "Redis commands per job (incl. scripts)",
                self.redis_cmds_per_job,
                "",
            ),
            ("Redis CPU per job", self.redis_cpu_us_per_job, "µs"),
            (
                "Redis network per job",
                self.redis_net_bytes_per_job,
                "bytes",
            ),
            (
                "Redis memory per pending job",
                Some(self.redis_bytes_per_pending_job),
                "bytes",
            ),
            ("worker RSS at top concurrency", self.worker_rss_mib, "MiB"),
            (
                "processing with AOF everysec",
                self.aof_process_jobs_per_s,
                "jobs/s",
            ),
            (
                "Redis CPU per job with AOF",
                self.aof_redis_cpu_us_per_job,
                "µs",
            ),
            (
                "flow: backlog, no groups",
                Some(self.flow_plain_jobs_per_s),
                "jobs/s",
            ),
            (
                "flow: backlog over 1,000 groups",
                Some(self.flow_groups_1000_jobs_per_s),
                "jobs/s",
            ),
            (
                "flow: rate limit (starts/s)",
                Some(f64::from(self.flow_rate_limit_per_s)),
                "",
            ),
            (
                "flow: achieved rate",
                Some(self.flow_rate_achieved_per_s),
                "jobs/s",
            ),
            (
                "flow: most starts in any second",
                Some(self.flow_rate_busiest_second as f64),
                "",
            ),
            (
                "flow: priority-0 wait p99 behind backlog",
                Some(self.flow_priority0_wait_p99_ms),
                "ms",
            ),
            (
                "tree: last child to fan-in p99",
                Some(self.tree_fan_in_p99_ms),
                "ms",
            ),
            (
                "tree: Redis commands per child",
                Some(self.tree_redis_cmds_per_child),
                "",
            ),
            (
                "tree: Redis CPU per child",
                Some(self.tree_redis_cpu_us_per_child),
                "µs",
            ),
        ];
        let mut out = String::new();
        for (label, value, unit) in rows {
            out.push_str(&format!("{label:<42} {:>12} {unit}\n", cell(value)));
        }
        for (k, v) in &self.process_runs_jobs_per_s {
            let v = if v.is_finite() { *v } else { 0.0 };
            out.push_str(&format!(
                "  processing workers×concurrency {k:<10} {v:>12.1} jobs/s\n"
            ));
        }
        out.push_str(&format!(
            "redis-benchmark ceiling: {}\n",
            crate::to_json(&self.redis_benchmark)
        ));
        out.push_str(&format!(
            "verified (every run's outcomes counted): {}\n",
            self.verified
        ));
        out
    }
}

impl ClusterFigures {
    /// The JSON object `tether bench --cluster --json` prints.
    pub fn json(&self) -> String {
        crate::to_json(self)
    }

    /// The cluster comparison as a small table.
    pub fn table(&self) -> String {
        // As in the JSON, where a non-finite number is `null`.
        let f = |v: f64| if v.is_finite() { v } else { f64::NAN };
        format!(
            "{:<44}{:>12.0} jobs/s\n{:<44}{:>12.0} jobs/s\n{:<44}{:>12.2} ×\nverified (every run's outcomes counted): {}\n",
            format!("one Redis, 3 queues ({} noop jobs)", self.jobs),
            f(self.single_jobs_per_s),
            "3-master Redis Cluster, 3 queues",
            f(self.cluster_jobs_per_s),
            "cluster vs one Redis",
            f(self.cluster_vs_single_ratio),
            self.verified,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scripts and docs read these keys: absent figures are left out, a missing
    /// ceiling is `null`, and the keys come sorted.
    #[test]
    fn the_json_keeps_its_keys() {
        let figures = Figures {
            wait_p99_ms: f64::NAN,
            ..Figures::default()
        };
        let json: serde_json::Value = serde_json::from_str(&figures.json()).unwrap();
        let object = json.as_object().unwrap();
        assert!(!object.contains_key("aof_process_jobs_per_s"));
        assert!(!object.contains_key("two_vs_one_workers_ratio"));
        assert_eq!(json["wait_p99_ms"], serde_json::Value::Null);
        assert_eq!(json["backlog_large_jobs"], 0);
        assert_eq!(
            json["redis_benchmark"]["xadd_per_s"],
            serde_json::Value::Null
        );
        let keys: Vec<&String> = object.keys().collect();
        assert!(keys.is_sorted(), "{keys:?}");
        assert!(figures.json().starts_with("{\"backlog_100k_vs_1k_ratio\":"));
    }
}
