//! The sizes of one bench run.

/// Sizes of one bench run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Jobs enqueued one at a time by one task (and, ×4, by 64 tasks).
    pub single_enqueues: usize,
    /// Jobs enqueued with `enqueue_many`.
    pub bulk_enqueues: usize,
    /// Noop jobs each processing run drains.
    pub process_jobs: usize,
    /// Concurrencies of the one-worker processing runs.
    pub concurrencies: Vec<usize>,
    /// Worker-process counts of the concurrency-64 runs (the ones above 1 are run).
    pub worker_counts: Vec<usize>,
    /// Jobs/s enqueued during the wait-latency measurement.
    pub arrival_rate: usize,
    /// How long the wait-latency measurement enqueues for.
    pub arrival_secs: u64,
    /// Jobs queued before the large-backlog run starts.
    pub backlog_jobs: usize,
    /// How long every-second schedules fire for the firing-lag measurement.
    pub schedule_secs: u64,
    /// Jobs drained with and without 1,000 fairness groups.
    pub flow_jobs: usize,
    /// The queue rate limit measured (starts/s).
    pub flow_rate: u32,
    /// Priority-9 jobs queued ahead of the priority-0 ones.
    pub priority_backlog: usize,
    /// Children of the fan-out/fan-in run, in all.
    pub tree_children: usize,
    /// Their parents (`fanout` jobs), each with an equal share.
    pub tree_parents: usize,
}

impl Plan {
    /// The sizes `docs/BENCHMARKS.md` reports.
    pub fn full() -> Plan {
        Plan {
            single_enqueues: 10_000,
            bulk_enqueues: 200_000,
            process_jobs: 20_000,
            concurrencies: vec![1, 16, 64, 256],
            worker_counts: vec![1, 2, 4],
            arrival_rate: 2_000,
            arrival_secs: 10,
            backlog_jobs: 100_000,
            schedule_secs: 20,
            flow_jobs: 50_000,
            flow_rate: 500,
            priority_backlog: 100_000,
            tree_children: 10_000,
            tree_parents: 20,
        }
    }

    /// Under a minute on a 2-core machine; for CI.
    pub fn quick() -> Plan {
        Plan {
            single_enqueues: 1_000,
            bulk_enqueues: 20_000,
            process_jobs: 5_000,
            concurrencies: vec![16, 64],
            worker_counts: vec![1, 2],
            arrival_rate: 1_000,
            arrival_secs: 2,
            backlog_jobs: 10_000,
            schedule_secs: 4,
            flow_jobs: 5_000,
            flow_rate: 200,
            priority_backlog: 10_000,
            tree_children: 1_000,
            tree_parents: 10,
        }
    }
}
