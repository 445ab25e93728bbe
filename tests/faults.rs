//! Faults with real processes: `tether worker` processes killed, paused and
//! restarted, and redis-server killed and restarted, while jobs run.

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::json;
use tether_model::{JobSpec, Status};
use tether_suite::*;
use tether_testkit::{RedisServer, tether_bin};

const T: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_during_check_is_resumed_at_check_without_running_handle_again() {
    let redis = RedisServer::start(RedisOptions::default());
    let producer = producer(&redis).await;
    let args = ["--lease-ttl", "1s", "--reap-interval", "200ms"];
    let mut first = WorkerProcess::start(&redis, &args);
    let input = json!({"size_mb": 20, "chunk_ms": 100, "ledger": "handles"});
    let id = producer
        .enqueue(JobSpec::new("import").input(&input).unwrap())
        .await
        .unwrap();
    let checkpointed = until_job(&producer, id, T, |j| j.progress >= 20).await;
    assert_eq!(checkpointed.phase, Some(tether_model::Phase::Check));
    first.child.kill();

    let _second = WorkerProcess::start(&redis, &args);
    let job = finished(&producer, id, T).await;
    assert_eq!(job.status, Status::Success);
    assert_eq!(job.attempts, 2, "the job was taken over once");
    assert_eq!(
        job.error_code,
        Some(tether_model::ErrorCode::LeaseExpired),
        "the takeover is on record"
    );
    let mut conn = redis.connection();
    let handles: Vec<String> = redis::cmd("LRANGE")
        .arg("tether-demo:handles")
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        handles,
        vec![format!("{id}:handle")],
        "handle ran exactly once"
    );
    // The second attempt continued from the checkpoint rather than from zero.
    let checks = job.result.as_ref().unwrap()["checks"].as_u64().unwrap();
    assert!(checks >= 20, "checks across both attempts: {checks}");
    assert_consistent(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_a_killed_worker_finish_elsewhere_within_lease_ttl_plus_one_reap_interval() {
    let redis = RedisServer::start(RedisOptions::default());
    let producer = producer(&redis).await;
    let (ttl, reap) = (Duration::from_secs(2), Duration::from_millis(500));
    let args = [
        "--lease-ttl",
        "2s",
        "--reap-interval",
        "500ms",
        "--concurrency",
        "20",
    ];
    let mut doomed = WorkerProcess::start(&redis, &args);
    let ids = producer
        .enqueue_many(vec![
            JobSpec::new("sleep")
                .input(&json!({"ms": 500}))
                .unwrap()
                .queue("default");
            20
        ])
        .await
        .unwrap();
    // Hold all 20 before the kill; the survivor starts only afterwards.
    eventually(
        T,
        "the doomed worker never held all 20 jobs",
        async || match producer.stats(&[]).await.unwrap()[0].processing {
            20.. => Ok(()),
            held => Err(format!("{held} processing")),
        },
    )
    .await;
    // Keep them running long enough to be killed mid-job: each sleeps 500 ms.
    doomed.child.kill();
    let killed_at = chrono::Utc::now();
    let _survivor = WorkerProcess::start(&redis, &args);
    let jobs = all_finished(&producer, &ids, T).await;
    assert_eq!(count(&jobs, Status::Success), 20);
    // Allow a second for the survivor process to start and for the restarted 500 ms jobs.
    let bound = chrono::Duration::from_std(ttl + reap + Duration::from_secs(1)).unwrap();
    for job in &jobs {
        let restarted = job.started_at.unwrap() - killed_at;
        assert_eq!(
            job.attempts, 2,
            "{} ran twice: killed, then taken over",
            job.id
        );
        assert!(
            restarted <= bound,
            "{} restarted {restarted} after the kill; bound {bound}",
            job.id
        );
    }
    assert_consistent(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_worker_cannot_record_an_outcome_after_its_lease_was_taken() {
    let redis = RedisServer::start(RedisOptions::default());
    let producer = producer(&redis).await;
    let args = ["--lease-ttl", "1s", "--reap-interval", "200ms"];
    let stale = WorkerProcess::start(&redis, &args);
    let id = producer
        .enqueue(JobSpec::new("sleep").input(&json!({"ms": 1500})).unwrap())
        .await
        .unwrap();
    let held = until_job(&producer, id, T, |j| j.status == Status::Processing).await;
    let stale_worker = held.worker.clone().unwrap();
    stale.child.signal(Signal::SIGSTOP);

    let fresh = WorkerProcess::start(&redis, &args);
    let taken = until_job(&producer, id, T, |j| {
        j.worker.as_deref() != Some(&stale_worker) && j.attempts == 2
    })
    .await;
    let fresh_worker = taken.worker.clone().unwrap();
    // Resume the stale worker while the new holder is still running the job.
    stale.child.signal(Signal::SIGCONT);
    let job = finished(&producer, id, T).await;
    assert_eq!(job.status, Status::Success);
    assert_eq!(
        job.worker.as_deref(),
        Some(fresh_worker.as_str()),
        "only the current holder's outcome is recorded"
    );
    // The stale worker resumed with its sleep long over and tried to finish at once; the
    // outcome on record came from the new holder, 1.5 s after its own start.
    let ran = job.finished_at.unwrap() - taken.started_at.unwrap();
    assert!(
        ran >= chrono::Duration::milliseconds(1500),
        "recorded {ran} after the new holder started"
    );
    assert_eq!(
        producer.stats(&[]).await.unwrap()[0].success,
        1,
        "exactly one recorded outcome"
    );
    let counted = "the stale worker did not count its lost lease";
    eventually(Duration::from_secs(10), counted, async || {
        match stale.metric("tether_lease_lost_total") {
            lost if lost >= 1.0 => Ok(()),
            lost => Err(format!("tether_lease_lost_total {lost}")),
        }
    })
    .await;
    assert_eq!(fresh.metric("tether_lease_lost_total"), 0.0);
    assert_consistent(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_redis_restart_without_losing_a_job() {
    let redis = RedisServer::start(RedisOptions {
        aof: true,
        ..Default::default()
    });
    let producer = producer(&redis).await;
    let ids = producer
        .enqueue_many(vec![
            JobSpec::new("sleep").input(&json!({"ms": 20})).unwrap();
            2000
        ])
        .await
        .unwrap();
    let args = [
        "--lease-ttl",
        "3s",
        "--reap-interval",
        "500ms",
        "--concurrency",
        "16",
    ];
    let _a = WorkerProcess::start(&redis, &args);
    let _b = WorkerProcess::start(&redis, &args);
    eventually(T, "workers made no progress", async || {
        match producer.stats(&[]).await.unwrap()[0].success {
            300.. => Ok(()),
            done => Err(format!("{done} succeeded")),
        }
    })
    .await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.restart();
    let jobs = all_finished(&producer, &ids, Duration::from_secs(90)).await;
    assert_eq!(
        count(&jobs, Status::Success),
        2000,
        "every acknowledged job succeeded"
    );
    let stats = &producer.stats(&[]).await.unwrap()[0];
    assert_eq!(
        (stats.success, stats.pending, stats.processing),
        (2000, 0, 0)
    );
    assert_consistent(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_end_to_end_touch_jobs_survive_a_killed_worker() {
    let redis = RedisServer::start(RedisOptions::default());
    let out = Command::new(tether_bin())
        .args([
            "enqueue",
            "--redis",
            &redis.url(),
            "--type",
            "touch",
            "--count",
            "1000",
        ])
        .args(["--input", r#"{"list": "touched"}"#])
        .env_remove("TETHER_CONFIG")
        .output()
        .expect("run tether enqueue");
    assert!(
        out.status.success(),
        "enqueue failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(ids.len(), 1000, "one id per line");

    let args = [
        "--lease-ttl",
        "1s",
        "--reap-interval",
        "200ms",
        "--concurrency",
        "4",
    ];
    let mut workers: Vec<WorkerProcess> = (0..3)
        .map(|_| WorkerProcess::start(&redis, &args))
        .collect();
    let mut conn = redis.connection();
    let touched = |conn: &mut redis::Connection| -> usize {
        redis::cmd("LLEN")
            .arg("tether-demo:touched")
            .query(conn)
            .unwrap()
    };
    eventually_blocking(T, "fewer than 200 jobs touched", || {
        match touched(&mut conn) {
            200.. => Ok(()),
            n => Err(n),
        }
    });
    workers[0].child.kill();

    let stats = |conn: &mut redis::Connection| -> serde_json::Value {
        let _ = conn;
        let out = Command::new(tether_bin())
            .args(["stats", "--json", "--redis", &redis.url()])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).expect("stats --json")
    };
    let s = eventually_blocking(T, "not all jobs succeeded", || {
        let s = stats(&mut conn);
        if s["default"]["success"] == json!(1000) {
            Ok(s)
        } else {
            Err(s)
        }
    });
    assert_eq!(
        (
            s["default"]["failure"].clone(),
            s["default"]["processing"].clone()
        ),
        (json!(0), json!(0))
    );
    let list: Vec<String> = redis::cmd("LRANGE")
        .arg("tether-demo:touched")
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .unwrap();
    let unique: std::collections::HashSet<&String> = list.iter().collect();
    for id in &ids {
        assert!(unique.contains(id), "job {id} never ran");
    }
    println!(
        "1000 touch jobs, {} executions ({} repeated after the kill)",
        list.len(),
        list.len() - unique.len()
    );
    assert!(
        list.len() - unique.len() <= 4,
        "at most the killed worker's in-flight jobs ran twice"
    );

    let out = Command::new(tether_bin())
        .args(["check", "--redis", &redis.url()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tether check: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = Command::new(tether_bin())
        .args(["get", &ids[0], "--json", "--redis", &redis.url()])
        .output()
        .unwrap();
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).expect("get --json");
    assert_eq!(
        (job["status"].clone(), job["type"].clone()),
        (json!("success"), json!("touch"))
    );
    assert_consistent(&redis).await;
}
