//! Schedules fired by a leaderless fleet: every worker runs the scheduler, each fire
//! time yields one job, and the overlap, catch-up, pause and delete rules hold. Tests
//! with in-process workers run on one Redis and on a three-master cluster.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tether_model::schedule::firing_id;
use tether_model::{JobSpec, Status};
use tether_producer::{
    CatchUp, Job, ListQuery, Overlap, Producer, ScheduleSpec, SortDir, SortKey, Trigger,
};
use tether_suite::*;
use tether_testkit::{RedisOptions, RedisServer, TestRedis};

const T: Duration = Duration::from_secs(30);

/// Every job of `queue`, oldest first.
async fn jobs_of(producer: &Producer, queue: &str) -> Vec<Job> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = producer
            .list(ListQuery {
                queues: vec![queue.to_owned()],
                sort_key: SortKey::CreatedAt,
                sort_dir: SortDir::Asc,
                limit: 200,
                marker,
                ..ListQuery::default()
            })
            .await
            .unwrap();
        let n = page.jobs.len();
        marker = page.jobs.last().map(|j| j.id);
        for summary in page.jobs {
            out.push(producer.get(summary.id).await.unwrap().unwrap());
        }
        if n < 200 {
            return out;
        }
    }
}

fn fire_times(jobs: &[Job]) -> Vec<DateTime<Utc>> {
    let mut times: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.fire_time.unwrap()).collect();
    times.sort();
    times
}

/// Asserts one job per fire time, every `step` apart with no gap.
fn assert_once_each(jobs: &[Job], step: chrono::Duration) {
    let times = fire_times(jobs);
    let unique: HashSet<_> = times.iter().collect();
    assert_eq!(
        unique.len(),
        times.len(),
        "a fire time fired twice: {times:?}"
    );
    for pair in times.windows(2) {
        assert_eq!(pair[1] - pair[0], step, "a gap between firings: {times:?}");
    }
}

fn every(name: &str, queue: &str, secs: u64) -> ScheduleSpec {
    ScheduleSpec::new(
        name,
        JobSpec::new("noop").queue(queue),
        Trigger::every(Duration::from_secs(secs)).unwrap(),
    )
}

async fn every_second_fires_once_per_second_with_three_workers_racing(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(InProcessWorker::start(&redis, |b| b.queues(["ticks"])).await);
    }
    let created = producer
        .create_schedule(every("tick", "ticks", 1).overlap(Overlap::Allow))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5500)).await;
    producer.delete_schedule("tick").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settled = jobs_of(&producer, "ticks").await.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let jobs = jobs_of(&producer, "ticks").await;
    assert_eq!(jobs.len(), settled, "a deleted schedule fired");
    assert!(
        (4..=7).contains(&jobs.len()),
        "{} firings in 5.5 s of an every-1s schedule",
        jobs.len()
    );
    assert_once_each(&jobs, chrono::Duration::seconds(1));
    let first = fire_times(&jobs)[0];
    assert_eq!(
        first,
        created.next_fire_time.unwrap(),
        "the first firing is on time"
    );
    for job in &jobs {
        assert_eq!(job.schedule.as_deref(), Some("tick"));
        assert_eq!(job.id, firing_id(None, "tick", job.fire_time.unwrap()));
    }
    let fired: f64 = workers
        .iter()
        .map(|w| {
            w.metrics
                .schedule_firings
                .with_label_values(&["fired"])
                .get() as f64
        })
        .sum();
    assert_eq!(fired as usize, jobs.len(), "each firing counted once");
    for w in workers {
        w.shutdown().await;
    }
    assert_consistent(&redis).await;
}

async fn six_field_cron_fires_on_its_seconds_and_shows_the_next_five(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    let worker = InProcessWorker::start(&redis, |b| b.queues(["crons"])).await;
    let spec = ScheduleSpec::new(
        "even",
        JobSpec::new("noop").queue("crons"),
        Trigger::cron("*/2 * * * * *", "Europe/Paris").unwrap(),
    )
    .overlap(Overlap::Allow);
    let created = producer.create_schedule(spec).await.unwrap();
    let next = created.next_fire_time.unwrap();
    assert_eq!(next.timestamp() % 2, 0);
    tokio::time::sleep(Duration::from_millis(4500)).await;
    producer.pause_schedule("even").await.unwrap();
    let shown = producer.schedule("even").await.unwrap();
    // A firing records its time on the schedule, then enqueues its job (on a cluster, in
    // another slot): the last one's job may land just after the pause.
    let jobs = eventually(T, "the last firing's job", async || {
        let jobs = jobs_of(&producer, "crons").await;
        if fire_times(&jobs).last().copied() == shown.last_fire_time {
            Ok(jobs)
        } else {
            Err(format!(
                "{:?} vs {:?}",
                fire_times(&jobs).last(),
                shown.last_fire_time
            ))
        }
    })
    .await;
    assert!(jobs.len() >= 2, "{} firings", jobs.len());
    assert_once_each(&jobs, chrono::Duration::seconds(2));
    for t in fire_times(&jobs) {
        assert_eq!(t.timestamp() % 2, 0, "fired at {t}");
        assert_eq!(t.timestamp_subsec_millis(), 0);
    }
    assert!(shown.paused && shown.next_fire_time.is_none());
    worker.shutdown().await;
}

async fn overlap_policies(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    let worker = InProcessWorker::start(&redis, |b| {
        b.queues(["skip", "allow", "cancel"]).concurrency(16)
    })
    .await;
    let slow = |name: &str, overlap: Overlap| {
        ScheduleSpec::new(
            name,
            JobSpec::new("progress")
                .queue(name)
                .input(&json!({"steps": 25, "step_ms": 100}))
                .unwrap(),
            Trigger::every(Duration::from_secs(1)).unwrap(),
        )
        .overlap(overlap)
    };
    for (name, overlap) in [
        ("skip", Overlap::Skip),
        ("allow", Overlap::Allow),
        ("cancel", Overlap::CancelPrevious),
    ] {
        producer.create_schedule(slow(name, overlap)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(5500)).await;
    for name in ["skip", "allow", "cancel"] {
        producer.pause_schedule(name).await.unwrap();
    }
    // Each job runs 2.5 s; the schedules fire every second for about 5 s.
    let skip = jobs_of(&producer, "skip").await;
    let allow = jobs_of(&producer, "allow").await;
    let cancel = jobs_of(&producer, "cancel").await;
    assert!(
        (2..=3).contains(&skip.len()),
        "skip fires only when the previous job is final: {:?}",
        fire_times(&skip)
    );
    assert!(allow.len() >= 4, "allow fires every time: {}", allow.len());
    assert!(
        cancel.len() >= 4,
        "cancel-previous fires every time: {}",
        cancel.len()
    );
    let ids: Vec<_> = cancel.iter().map(|j| j.id).collect();
    let ended = all_finished(&producer, &ids[..ids.len() - 1], T).await;
    assert!(
        ended.iter().all(|j| j.status == Status::Cancelled),
        "every job but the last was cancelled by the next firing: {:?}",
        ended.iter().map(|j| j.status).collect::<Vec<_>>()
    );
    let skipped = worker
        .metrics
        .schedule_firings
        .with_label_values(&["skipped"])
        .get();
    assert!(skipped >= 2, "skipped firings are counted: {skipped}");
    worker.shutdown().await;
}

async fn pause_resume_delete_and_trigger(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    let worker = InProcessWorker::start(&redis, |b| b.queues(["p"])).await;
    producer
        .create_schedule(every("p", "p", 1).overlap(Overlap::Allow))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    producer.pause_schedule("p").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let paused_at = jobs_of(&producer, "p").await.len();
    assert!(paused_at >= 1);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        jobs_of(&producer, "p").await.len(),
        paused_at,
        "a paused schedule fired"
    );
    producer.resume_schedule("p").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let resumed = jobs_of(&producer, "p").await;
    assert!(resumed.len() > paused_at, "a resumed schedule fires again");
    // What it would have fired while paused is not fired.
    let times = fire_times(&resumed);
    assert!(
        times
            .windows(2)
            .any(|w| w[1] - w[0] >= chrono::Duration::seconds(2))
    );

    let id = producer.trigger_now("p").await.unwrap();
    let job = finished(&producer, id, T).await;
    assert_eq!(job.schedule.as_deref(), Some("p"));
    // The triggered job is the schedule's last, unless a regular firing (every second)
    // has followed it by now: then that one is, and it is no older.
    let last = producer.schedule("p").await.unwrap().last_job_id.unwrap();
    if last != id {
        let later = producer
            .get(last)
            .await
            .unwrap()
            .expect("the last job is kept");
        assert_eq!(later.schedule.as_deref(), Some("p"));
        assert!(
            later.created_at >= job.created_at,
            "{last} fired after {id}"
        );
    }

    producer.delete_schedule("p").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deleted_at = jobs_of(&producer, "p").await.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        jobs_of(&producer, "p").await.len(),
        deleted_at,
        "a deleted schedule fired"
    );
    assert!(producer.schedule("p").await.unwrap_err().is_not_found());
    worker.shutdown().await;
}

async fn owners_see_only_their_own_schedules(topology: Topology) {
    let redis = TestRedis::start(topology);
    let admin = producer(&redis).await;
    let (alice, bob) = (admin.for_owner("alice"), admin.for_owner("bob"));
    alice
        .create_schedule(every("report", "o", 60))
        .await
        .unwrap();
    bob.create_schedule(every("report", "o", 120))
        .await
        .unwrap();
    let err = alice
        .create_schedule(every("report", "o", 60))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    assert_eq!(alice.schedules().await.unwrap().len(), 1);
    assert_eq!(
        bob.schedule("report").await.unwrap().spec.trigger,
        Trigger::every(Duration::from_secs(120)).unwrap()
    );
    assert_eq!(
        bob.schedule("report")
            .await
            .unwrap()
            .spec
            .job
            .owner
            .as_deref(),
        Some("bob"),
        "a schedule's jobs are its owner's"
    );
    assert!(
        admin
            .for_owner("mallory")
            .pause_schedule("report")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(
        admin.schedules().await.unwrap().len(),
        2,
        "unscoped: every owner's"
    );
    // An owner that is a prefix of another's path does not see it.
    admin
        .for_owner("a")
        .create_schedule(every("x", "o", 60))
        .await
        .unwrap();
    admin
        .for_owner("a/b")
        .create_schedule(every("y", "o", 60))
        .await
        .unwrap();
    let names: Vec<String> = admin
        .for_owner("a")
        .schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.spec.name)
        .collect();
    assert_eq!(names, ["x"]);
}

/// Moves a schedule's state into the past, as if every worker had been down since
/// `down_since` (Redis's clock cannot be moved; the schedule's can).
fn as_if_down_since(redis: &RedisServer, member: &str, anchor_ms: i64, next_ms: i64) {
    let mut conn = redis.connection();
    let key = format!("tether:{{~sched}}:s:{member}");
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("anchor")
        .arg(anchor_ms)
        .arg("next")
        .arg(next_ms)
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg("tether:{~sched}:due")
        .arg(next_ms)
        .arg(member)
        .query(&mut conn)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_every_worker_was_down_catch_up_decides_what_is_fired() {
    let redis = RedisServer::start(RedisOptions::default());
    let producer = producer(&redis).await;
    // Every minute, down for five and a half: firings 4m30s, 3m30s … 30s ago were missed.
    let policies = [
        ("none", CatchUp::None, 0),
        ("last", CatchUp::Last, 1),
        ("window", CatchUp::Window(Duration::from_secs(120)), 2),
    ];
    let store = store(&redis).await;
    let now = store.redis_now().await.unwrap().timestamp_millis();
    let anchor = now - 330_000;
    for (name, catch_up, _) in &policies {
        producer
            .create_schedule(
                every(name, name, 60)
                    .catch_up(*catch_up)
                    .overlap(Overlap::Allow),
            )
            .await
            .unwrap();
        as_if_down_since(&redis, &format!("/{name}"), anchor, anchor + 60_000);
    }
    let worker = InProcessWorker::start(&redis, |b| b.queues(["none", "last", "window"])).await;
    eventually(T, "not every schedule was handled", async || {
        for (name, _, _) in &policies {
            let schedule = producer.schedule(name).await.unwrap();
            let next = schedule.next_fire_time.unwrap().timestamp_millis();
            if next <= now {
                return Err(format!("{name}: next fire time {next}, not after {now}"));
            }
        }
        Ok(())
    })
    .await;
    for (name, _, expected) in policies {
        let jobs = jobs_of(&producer, name).await;
        assert_eq!(jobs.len(), expected, "{name}: {:?}", fire_times(&jobs));
        let expected_times: Vec<i64> = (0..expected as i64)
            .rev()
            .map(|k| anchor + 300_000 - k * 60_000)
            .collect();
        let times: Vec<i64> = fire_times(&jobs)
            .iter()
            .map(|t| t.timestamp_millis())
            .collect();
        assert_eq!(times, expected_times, "{name}: the latest missed firings");
        let next = producer
            .schedule(name)
            .await
            .unwrap()
            .next_fire_time
            .unwrap();
        assert_eq!(
            next.timestamp_millis(),
            anchor + 360_000,
            "{name} goes on from now"
        );
    }
    let missed = worker
        .metrics
        .schedule_firings
        .with_label_values(&["missed"])
        .get();
    assert_eq!(missed, 5 + 4 + 3, "missed firings are counted");
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firer_killed_mid_way_leaves_no_duplicate_and_no_gap() {
    use nix::sys::signal::Signal;
    let redis = RedisServer::start(RedisOptions::default());
    let producer = producer(&redis).await;
    let mut workers: Vec<WorkerProcess> = (0..3)
        .map(|_| WorkerProcess::start(&redis, &["--queue", "kills"]))
        .collect();
    producer
        .create_schedule(every("k", "kills", 1).overlap(Overlap::Allow))
        .await
        .unwrap();
    // Kill whichever workers fire, one after another, while the schedule runs.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1700)).await;
        let mut victim = workers.remove(0);
        victim.child.signal(Signal::SIGKILL);
        victim.child.kill();
        workers.push(WorkerProcess::start(&redis, &["--queue", "kills"]));
    }
    tokio::time::sleep(Duration::from_millis(4000)).await;
    producer.pause_schedule("k").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let jobs = jobs_of(&producer, "kills").await;
    assert!(jobs.len() >= 6, "{} firings in about 7.5 s", jobs.len());
    assert_once_each(&jobs, chrono::Duration::seconds(1));
    let ids: Vec<_> = jobs.iter().map(|j| j.id).collect();
    all_finished(&producer, &ids, T).await;
    drop(workers);
    assert_consistent(&redis).await;
}

on_every_topology!(
    every_second_fires_once_per_second_with_three_workers_racing,
    six_field_cron_fires_on_its_seconds_and_shows_the_next_five,
    overlap_policies,
    pause_resume_delete_and_trigger,
    owners_see_only_their_own_schedules,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_shows_and_operates_schedules() {
    let redis = RedisServer::start(RedisOptions::default());
    let _worker = WorkerProcess::start(&redis, &["--queue", "cli"]);
    tether(
        &redis,
        &[
            "schedule", "create", "tick", "--queue", "cli", "--type", "noop", "--every", "1s",
        ],
    );
    tether(
        &redis,
        &[
            "schedule",
            "create",
            "sixes",
            "--queue",
            "cli",
            "--type",
            "noop",
            "--cron",
            "*/3 * * * * *",
            "--tz",
            "Asia/Tokyo",
            "--overlap",
            "allow",
            "--catch-up",
            "1h",
        ],
    );
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let shown: serde_json::Value =
        serde_json::from_str(&tether(&redis, &["schedule", "show", "tick", "--json"])).unwrap();
    assert_eq!(shown["next_fire_times"].as_array().unwrap().len(), 5);
    let last_job = shown["last_job_id"]
        .as_str()
        .expect("tick fired")
        .to_owned();
    assert!(shown["last_job_status"].is_string(), "{shown}");
    let job: serde_json::Value =
        serde_json::from_str(&tether(&redis, &["get", &last_job, "--json"])).unwrap();
    assert_eq!(job["schedule"], "tick");
    assert_eq!(job["fire_time"], shown["last_fire_time"]);
    let list: serde_json::Value =
        serde_json::from_str(&tether(&redis, &["schedule", "list", "--json"])).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sixes", "tick"]);
    let sixes = &list[0];
    assert_eq!(sixes["trigger"]["cron"]["tz"], "Asia/Tokyo");
    assert_eq!(sixes["overlap"], "allow");
    assert!(tether(&redis, &["schedule", "show", "tick"]).contains("next_fire_times"));
    tether(&redis, &["schedule", "pause", "tick"]);
    assert!(tether(&redis, &["schedule", "list"]).contains("paused"));
    tether(&redis, &["schedule", "resume", "tick"]);
    let fired = tether(&redis, &["schedule", "trigger", "sixes"]);
    assert!(
        fired.trim().parse::<tether_model::JobId>().is_ok(),
        "{fired}"
    );
    tether(&redis, &["schedule", "delete", "tick"]);
    tether(&redis, &["schedule", "delete", "sixes"]);
    assert_eq!(tether(&redis, &["schedule", "list", "--json"]).trim(), "[]");
    // Bad input gets a clear error and nothing is created.
    let out = std::process::Command::new(tether_testkit::tether_bin())
        .args([
            "schedule",
            "create",
            "bad",
            "--type",
            "noop",
            "--cron",
            "61 * * * *",
        ])
        .args(["--redis", &redis.url()])
        .env_remove("TETHER_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid cron pattern"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_cannot_create_unbounded_or_oversized_schedules() {
    let redis = RedisServer::start(RedisOptions::default());
    let admin = producer(&redis).await;
    let mallory = admin.for_owner("mallory");
    let limit = tether_store::MAX_SCHEDULES_PER_OWNER;
    let creates = (0..limit).map(|i| mallory.create_schedule(every(&format!("s{i}"), "m", 3600)));
    for created in futures::future::join_all(creates).await {
        created.unwrap();
    }
    let err = mallory
        .create_schedule(every("one-more", "m", 3600))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("TooManySchedules"), "{err}");
    // Another owner is not held back, and replacing an existing schedule still works.
    admin
        .for_owner("alice")
        .create_schedule(every("s0", "m", 60))
        .await
        .unwrap();
    mallory.update_schedule(every("s0", "m", 60)).await.unwrap();
    // An input over the payload limit is refused at creation, not at every firing.
    let huge = ScheduleSpec::new(
        "huge",
        JobSpec::new("noop")
            .input(&"x".repeat(2 * 1024 * 1024))
            .unwrap(),
        Trigger::every(Duration::from_secs(60)).unwrap(),
    );
    let err = admin
        .for_owner("bob")
        .create_schedule(huge)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("PayloadTooLarge"), "{err}");
    assert!(admin.for_owner("bob").schedules().await.unwrap().is_empty());
}
