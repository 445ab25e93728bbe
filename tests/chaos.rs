//! Chaos runs: a mixed workload (touch, sleep, progress, flaky, import) over
//! three worker processes while faults are injected; each run checks Tether's
//! promises (see `support/chaos.rs` and docs/RELIABILITY.md) and prints its
//! figures. A run takes well under two minutes.

use std::time::Duration;

use tether_suite::chaos::{ChaosPlan, Fault, run};
use tether_testkit::Failover;

fn report_dir() -> &'static str {
    env!("CARGO_TARGET_TMPDIR")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_and_frozen() {
    let report = run(ChaosPlan {
        name: "workers",
        jobs: 600,
        workers: 3,
        cluster: false,
        faults: vec![Fault::KillWorker, Fault::PauseWorker],
        fault_every: Duration::from_millis(1500),
        enqueue_for: Duration::from_secs(8),
        drain_for: Duration::from_secs(60),
    })
    .await;
    report.publish(report_dir());
    report.assert_promises();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_connections_cut_dropped_and_stalled() {
    let report = run(ChaosPlan {
        name: "redis-and-network",
        jobs: 600,
        workers: 3,
        cluster: false,
        faults: vec![
            Fault::RestartRedis,
            Fault::ClientKill,
            Fault::ProxyDrop,
            Fault::ProxyStall,
        ],
        fault_every: Duration::from_millis(1500),
        enqueue_for: Duration::from_secs(8),
        drain_for: Duration::from_secs(60),
    })
    .await;
    report.publish(report_dir());
    report.assert_promises();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_masters_fail_over_under_load() {
    let report = run(ChaosPlan {
        name: "cluster-failover",
        jobs: 600,
        workers: 3,
        cluster: true,
        faults: vec![
            Fault::Failover(Failover::Graceful),
            Fault::KillWorker,
            Fault::Failover(Failover::Kill),
            Fault::ClientKill,
        ],
        fault_every: Duration::from_millis(1500),
        enqueue_for: Duration::from_secs(8),
        drain_for: Duration::from_secs(60),
    })
    .await;
    report.publish(report_dir());
    report.assert_promises();
}

/// The checker itself can fail: a run whose Redis loses everything mid-way is
/// reported as losing jobs and refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_reports_lost_jobs() {
    let report = run(ChaosPlan {
        name: "checker-proof",
        jobs: 200,
        workers: 2,
        cluster: false,
        faults: vec![Fault::FlushAll],
        fault_every: Duration::from_millis(1500),
        enqueue_for: Duration::from_secs(2),
        drain_for: Duration::from_secs(3),
    })
    .await;
    assert!(!report.lost.is_empty(), "{report}");
    let refused = std::panic::catch_unwind(|| report.assert_promises());
    assert!(refused.is_err(), "a run with lost jobs must be refused");
}
