//! Every enqueue counts, whatever sent it: the enqueue script counts each job it writes
//! in Redis, and workers export each queue's count as `tether_queue_enqueued_total`. So
//! the library's, the CLI's, the API's and the schedules' jobs all show, the count is
//! the same on every worker, and a restarted worker carries on from it.

use std::time::Duration;

use serde_json::json;
use tether_model::JobSpec;
use tether_suite::*;
use tether_testkit::{TestRedis, Topology, eventually};

const T: Duration = Duration::from_secs(30);

/// `tether_queue_enqueued_total{queue=…}` on the worker's /metrics (None while absent).
fn enqueued_on(worker: &WorkerProcess, queue: &str) -> Option<f64> {
    let (_, body) = http(worker.metrics_port, "GET", "/metrics", &[], "");
    let series = format!("tether_queue_enqueued_total{{queue=\"{queue}\",");
    body.lines()
        .find(|line| line.starts_with(&series))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

async fn every_front_end_is_counted(topology: Topology) {
    let redis = TestRedis::start(topology);
    // On the cluster, the queues live on different masters.
    let queues: Vec<String> = match &redis {
        TestRedis::Cluster(cluster) => cluster.names_on_every_master("arrivals", 1),
        TestRedis::Single(_) => ["arrivals-a", "arrivals-b", "arrivals-c"]
            .map(String::from)
            .into(),
    };
    let (library, cli, scheduled) = (&queues[0], &queues[1], &queues[2]);
    let worker = WorkerProcess::start(&redis, &["--queue", &queues.join(",")]);
    let api = ApiProcess::start(&redis, &["--insecure-no-auth"]);
    let producer = producer(&redis).await;

    // The library: one job, a batch of three, and a resend of an idempotency key (no
    // new job, so no new count).
    let spec = || JobSpec::new("noop").queue(library);
    producer.enqueue(spec()).await.unwrap();
    producer
        .enqueue_many(vec![spec(), spec(), spec().idempotency_key("once")])
        .await
        .unwrap();
    producer
        .enqueue(spec().idempotency_key("once"))
        .await
        .unwrap();
    // The CLI: two jobs, one of them delayed.
    tether(
        &redis,
        &["enqueue", "--queue", cli, "--type", "noop", "--count", "2"],
    );
    tether(
        &redis,
        &["enqueue", "--queue", cli, "--type", "noop", "--delay", "1h"],
    );
    // The API: one job in each of the first two queues.
    for queue in [library, cli] {
        let (status, body) = http(
            api.port,
            "POST",
            "/v2/tasks",
            &[("Content-Type", "application/json")],
            &json!({"type": "noop", "queue": queue}).to_string(),
        );
        assert_eq!(status, 201, "{body}");
    }
    // A schedule: its firings are enqueues too.
    tether(
        &redis,
        &[
            "schedule", "create", "tick", "--queue", scheduled, "--type", "noop", "--every", "1s",
        ],
    );
    eventually(T, "the schedule did not fire twice", async || {
        let stats = producer
            .stats(std::slice::from_ref(scheduled))
            .await
            .unwrap();
        let s = &stats[0];
        let n = s.pending + s.processing + s.success;
        if n >= 2 { Ok(()) } else { Err(n) }
    })
    .await;
    tether(&redis, &["schedule", "pause", "tick"]);
    let firings = {
        let stats = producer
            .stats(std::slice::from_ref(scheduled))
            .await
            .unwrap();
        let s = &stats[0];
        s.pending + s.scheduled + s.processing + s.success + s.failure + s.cancelled
    };

    let expected = [
        (library.as_str(), 5.0),
        (cli.as_str(), 4.0),
        (scheduled.as_str(), firings as f64),
    ];
    let counted = |worker: &WorkerProcess| -> Vec<(String, Option<f64>)> {
        queues
            .iter()
            .map(|q| (q.clone(), enqueued_on(worker, q)))
            .collect()
    };
    let want: Vec<(String, Option<f64>)> = expected
        .iter()
        .map(|(q, n)| (q.to_string(), Some(*n)))
        .collect();
    eventually(T, "the worker's counts", async || {
        let got = counted(&worker);
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;

    // The count is Redis's: a worker started afresh reports the same totals on its first
    // scrape, with no enqueue since.
    drop(worker);
    let worker = WorkerProcess::start(&redis, &["--queue", &queues.join(",")]);
    assert_eq!(counted(&worker), want);
    assert_consistent(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_front_end_is_counted_on_one_redis() {
    every_front_end_is_counted(Topology::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_front_end_is_counted_on_a_cluster() {
    every_front_end_is_counted(Topology::Cluster).await;
}
