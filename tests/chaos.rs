//! Chaos runs: a mixed workload (touch, sleep, progress, flaky, import) over
//! three worker processes while faults are injected; each run checks Tether's
//! promises (see `support/chaos.rs` and docs/RELIABILITY.md) and prints its
//! figures. A run takes well under two minutes.

use std::time::Duration;

use tether_suite::chaos::{ChaosLimits, ChaosPlan, Fault, run};
use tether_testkit::Failover;

async fn run_and_check(plan: ChaosPlan) {
    let report = run(plan).await;
    report.publish(env!("CARGO_TARGET_TMPDIR"));
    report.assert_promises();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full tier: a chaos run"]
async fn workers_killed_and_frozen() {
    run_and_check(ChaosPlan::new(
        "workers",
        vec![Fault::KillWorker, Fault::PauseWorker],
    ))
    .await;
}

/// Queue and group concurrency caps hold while workers die and freeze: a lapsed lease
/// frees its slot, and the frozen holder can no longer record anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full tier: a chaos run"]
async fn concurrency_caps_hold_under_worker_kills_and_freezes() {
    let mut plan = ChaosPlan::new("caps", vec![Fault::KillWorker, Fault::PauseWorker]);
    plan.limits = Some(ChaosLimits {
        concurrency: 4,
        group_concurrency: 2,
        groups: 5,
    });
    plan.jobs = 300;
    run_and_check(plan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full tier: a chaos run"]
async fn redis_restarted_connections_cut_dropped_and_stalled() {
    run_and_check(ChaosPlan::new(
        "redis-and-network",
        vec![
            Fault::RestartRedis,
            Fault::ClientKill,
            Fault::ProxyDrop,
            Fault::ProxyStall,
        ],
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full tier: a chaos run"]
async fn cluster_masters_fail_over_under_load() {
    run_and_check(ChaosPlan {
        cluster: true,
        ..ChaosPlan::new(
            "cluster-failover",
            vec![
                Fault::Failover(Failover::Graceful),
                Fault::KillWorker,
                Fault::Failover(Failover::Kill),
                Fault::ClientKill,
            ],
        )
    })
    .await;
}

/// The checker itself can fail: a run whose Redis loses everything mid-way is
/// reported as losing jobs and refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full tier: a chaos run"]
async fn the_checker_reports_lost_jobs() {
    let report = run(ChaosPlan {
        jobs: 200,
        workers: 2,
        enqueue_for: Duration::from_secs(2),
        drain_for: Duration::from_secs(3),
        ..ChaosPlan::new("checker-proof", vec![Fault::FlushAll])
    })
    .await;
    assert!(!report.lost.is_empty(), "{report}");
    let refused = std::panic::catch_unwind(|| report.assert_promises());
    assert!(refused.is_err(), "a run with lost jobs must be refused");
}

/// The report prints the recovery bound it asserts (lease_ttl + one reap interval
/// with its jitter + the machine's slack), not a part of it.
#[test]
fn the_report_prints_the_bound_it_asserts() {
    use tether_suite::chaos::{ChaosReport, RECOVERY_BOUND, SLACK};
    let report = ChaosReport {
        name: "print",
        ..Default::default()
    };
    let text = report.to_string();
    let asserted = (RECOVERY_BOUND + SLACK).as_millis();
    assert!(
        text.contains(&format!("bound {asserted} ms")),
        "the report must print the asserted bound of {asserted} ms: {text}"
    );
}
