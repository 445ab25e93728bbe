//! Flow control with running workers: a rate limit holds across workers, a priority-0
//! job overtakes a backlog, a start deadline expires a job no worker claims, a paused
//! queue starts nothing until resumed. On one Redis and on a three-master cluster.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tether_model::{ErrorCode, JobSpec, LimitsPatch, Phase, Status};
use tether_suite::*;
use tether_testkit::TestRedis;

const T: Duration = Duration::from_secs(60);

on_every_topology!(
    a_rate_limit_holds_across_workers,
    a_priority_zero_job_overtakes_a_backlog,
    a_start_deadline_expires_a_job_nobody_claims,
    a_paused_queue_starts_nothing_until_resumed,
    a_snoozing_job_spends_no_attempt_and_frees_its_slot,
);

/// The most starts in any window of `width` (from each start forward).
fn busiest_window(starts: &mut [DateTime<Utc>], width: chrono::Duration) -> usize {
    starts.sort();
    (0..starts.len())
        .map(|i| {
            starts[i..]
                .iter()
                .take_while(|t| **t - starts[i] < width)
                .count()
        })
        .max()
        .unwrap_or(0)
}

async fn a_rate_limit_holds_across_workers(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    let rate = LimitsPatch {
        rate: Some(Some(20)),
        ..Default::default()
    };
    producer.set_queue_settings("rated", &rate).await.unwrap();
    let specs: Vec<JobSpec> = (0..60)
        .map(|_| JobSpec::new("noop").queue("rated"))
        .collect();
    let ids = producer.enqueue_many(specs).await.unwrap();
    let mut workers = Vec::new();
    for _ in 0..2 {
        workers.push(InProcessWorker::start(&redis, |b| b.queues(["rated"]).concurrency(50)).await);
    }
    let jobs = all_finished(&producer, &ids, T).await;
    assert_eq!(count(&jobs, Status::Success), 60);
    let mut starts: Vec<DateTime<Utc>> = jobs.iter().filter_map(|j| j.started_at).collect();
    let busiest = busiest_window(&mut starts, chrono::Duration::milliseconds(1000));
    let span = (starts[starts.len() - 1] - starts[0]).num_milliseconds() as f64 / 1000.0;
    println!(
        "rate 20/s: busiest second {busiest} starts; 60 starts over {span:.2} s ({:.1}/s)",
        59.0 / span
    );
    assert!(
        busiest <= 20,
        "{busiest} starts in one second under rate 20"
    );
    let throttled: u64 = workers
        .iter()
        .map(|w| {
            w.metrics
                .throttled
                .with_label_values(&["rated", "rate"])
                .get()
        })
        .sum();
    assert!(
        throttled > 0,
        "no claim was counted as held back by the rate"
    );
    for w in workers {
        w.shutdown().await;
    }
    assert_consistent(&redis).await;
}

async fn a_priority_zero_job_overtakes_a_backlog(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    let backlog: Vec<JobSpec> = (0..40)
        .map(|_| {
            JobSpec::new("sleep")
                .queue("prio")
                .input_json(json!({"ms": 50}))
                .priority(9)
        })
        .collect();
    let ids = producer.enqueue_many(backlog).await.unwrap();
    let worker = InProcessWorker::start(&redis, |b| b.queues(["prio"]).concurrency(1)).await;
    until_job(&producer, ids[0], T, |j| j.status != Status::Pending).await;
    let urgent = producer
        .enqueue(JobSpec::new("noop").queue("prio").priority(0))
        .await
        .unwrap();
    let urgent = finished(&producer, urgent, T).await;
    let backlog = all_finished(&producer, &ids, T).await;
    let started_after = backlog
        .iter()
        .filter(|j| j.started_at > urgent.started_at)
        .count();
    assert!(
        started_after >= 30,
        "only {started_after} of 40 priority-9 jobs started after the priority-0 one"
    );
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

async fn a_start_deadline_expires_a_job_nobody_claims(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    // Nothing of the queue may start; a worker still runs the maintenance pass.
    producer.pause("late").await.unwrap();
    let id = producer
        .enqueue(
            JobSpec::new("noop")
                .queue("late")
                .start_by(Duration::from_millis(300)),
        )
        .await
        .unwrap();
    let worker = InProcessWorker::start(&redis, |b| b.queues(["late"])).await;
    let job = finished(&producer, id, Duration::from_secs(10)).await;
    assert_eq!(job.status, Status::Failure);
    assert_eq!(job.error_code, Some(ErrorCode::Expired));
    assert_eq!(job.attempts, 0);
    // (Counted once the expiry's script has answered: a read may see the job first.)
    eventually(T, "the expiry counted", async || {
        match worker.metrics.expired.with_label_values(&["late"]).get() {
            1 => Ok(()),
            n => Err(n),
        }
    })
    .await;
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

async fn a_paused_queue_starts_nothing_until_resumed(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    producer.pause("held").await.unwrap();
    let worker = InProcessWorker::start(&redis, |b| b.queues(["held"])).await;
    let id = producer
        .enqueue(JobSpec::new("noop").queue("held"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        producer.get(id).await.unwrap().unwrap().status,
        Status::Pending
    );
    assert!(
        worker
            .metrics
            .throttled
            .with_label_values(&["held", "paused"])
            .get()
            > 0
    );
    producer.resume("held").await.unwrap();
    let job = finished(&producer, id, Duration::from_secs(10)).await;
    assert_eq!(job.status, Status::Success);
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

async fn a_snoozing_job_spends_no_attempt_and_frees_its_slot(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    let one = LimitsPatch {
        concurrency: Some(Some(1)),
        ..Default::default()
    };
    producer.set_queue_settings("naps", &one).await.unwrap();
    let sleepy = producer
        .enqueue(
            JobSpec::new("snooze")
                .queue("naps")
                .input_json(json!({"times": 3, "ms": 300}))
                .max_attempts(1),
        )
        .await
        .unwrap();
    let worker = InProcessWorker::start(&redis, |b| b.queues(["naps"]).concurrency(4)).await;
    // Snoozed once (its check checkpointed), twice more to go: while it sleeps, the
    // queue's one slot is free for another job.
    until_job(&producer, sleepy, T, |j| j.phase == Some(Phase::Check)).await;
    let other = producer
        .enqueue(JobSpec::new("noop").queue("naps"))
        .await
        .unwrap();
    let other = finished(&producer, other, T).await;
    let sleepy = finished(&producer, sleepy, T).await;
    assert_eq!(sleepy.status, Status::Success, "{sleepy:#?}");
    assert_eq!(sleepy.result, Some(json!({"snoozed": 3})));
    assert_eq!(sleepy.attempts, 1, "a snooze spent an attempt");
    assert!(other.finished_at < sleepy.finished_at);
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

/// The CLI names the issue fixes: `enqueue --priority/--group/--start-by`,
/// `queue show/set/pause/resume`, and `get --json`'s priority, group and start_by;
/// the `snooze` demo job through a worker process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_steers_a_queue() {
    let redis = tether_testkit::RedisServer::start(RedisOptions::default());
    let show = |args: &[&str]| -> serde_json::Value {
        serde_json::from_str(&tether(&redis, args)).expect("JSON")
    };
    let q = show(&["queue", "show", "cli", "--json"]);
    for key in [
        "paused",
        "concurrency",
        "rate",
        "group_concurrency",
        "group_rate",
    ] {
        assert!(q.get(key).is_some(), "queue show --json lacks {key}: {q}");
    }
    assert_eq!(q["paused"], false);
    let q = show(&[
        "queue",
        "set",
        "cli",
        "--concurrency",
        "3",
        "--rate",
        "50",
        "--group-concurrency",
        "1",
        "--group-rate",
        "none",
        "--json",
    ]);
    assert_eq!(
        (
            &q["concurrency"],
            &q["rate"],
            &q["group_concurrency"],
            &q["group_rate"]
        ),
        (&json!(3), &json!(50), &json!(1), &json!(null))
    );
    let q = show(&["queue", "set", "cli", "--rate", "0", "--json"]);
    assert_eq!((&q["concurrency"], &q["rate"]), (&json!(3), &json!(null)));
    assert_eq!(show(&["queue", "pause", "cli", "--json"])["paused"], true);
    let q = show(&["queue", "pause", "cli", "--type", "snooze", "--json"]);
    assert_eq!(q["paused_types"], json!(["snooze"]));
    let q = show(&["queue", "resume", "cli", "--type", "snooze", "--json"]);
    assert_eq!(q["paused_types"], json!([]));
    assert_eq!(show(&["queue", "resume", "cli", "--json"])["paused"], false);
    let text = tether(&redis, &["queue", "show", "cli"]);
    assert!(text.contains("concurrency: 3"), "{text}");

    let id = tether(
        &redis,
        &[
            "enqueue",
            "--queue",
            "cli",
            "--type",
            "snooze",
            "--input",
            r#"{"times": 2, "ms": 100}"#,
            "--priority",
            "1",
            "--group",
            "team-a",
            "--start-by",
            "1h",
        ],
    );
    let id = id.trim();
    let job = show(&["get", id, "--json"]);
    assert_eq!(
        (&job["priority"], &job["group"]),
        (&json!(1), &json!("team-a"))
    );
    assert!(job["start_by"].is_string(), "{job}");
    let worker = WorkerProcess::start(&redis, &["--queue", "cli"]);
    let producer = producer(&redis).await;
    let done = finished(&producer, id.parse().unwrap(), T).await;
    assert_eq!(done.status, Status::Success, "{done:#?}");
    assert_eq!(
        (done.attempts, done.result),
        (1, Some(json!({"snoozed": 2})))
    );
    drop(worker);

    // Bad values are refused with a clear message, nothing enqueued.
    for args in [
        &[
            "enqueue",
            "--queue",
            "cli",
            "--type",
            "noop",
            "--priority",
            "10",
        ][..],
        &[
            "enqueue",
            "--queue",
            "cli",
            "--type",
            "noop",
            "--start-by",
            "soon",
        ][..],
        &["queue", "set", "cli", "--concurrency", "-1"][..],
        &["queue", "set", "cli"][..],
    ] {
        let out = std::process::Command::new(tether_testkit::tether_bin())
            .args(args)
            .args(["--redis", &redis.url()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
    }
}
