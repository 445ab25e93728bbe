//! Storage layouts 2 to 5 (docs/STORAGE.md): a record stores no field equal to its
//! default, a job waiting on the stream since its enqueue has no `jobs` entry (and a
//! plain one no record: it is a field of `waiting`), and a
//! Redis holding older records is upgraded in place — refused while an older worker
//! is live, then every layout 1 job drains with its spelled-out fields honoured. The layout 1 dataset is written here the way layout 1's enqueue script
//! wrote it, so the test needs no old binary. Runs on one Redis and on a cluster.

use std::collections::BTreeSet;
use std::time::Duration;

use redis::Commands;
use tether_model::{ErrorCode, JobId, JobSpec, RetryPolicy, Status};
use tether_store::{FinishOutcome, Outcome, Store, StoreConfig, StoreError};
use tether_testkit::{RedisEndpoint, TestRedis, Topology};

const LEASE: Duration = Duration::from_secs(60);

fn record_key(queue: &str, id: JobId) -> String {
    format!("tether:{{{queue}}}:job:{id}")
}

async fn defaults_are_not_stored(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let plain = store
        .enqueue(&JobSpec::new("noop").queue("lean"))
        .await
        .unwrap()
        .id;
    let policy = RetryPolicy {
        initial_ms: 10,
        factor: 3.0,
        cap_ms: 1_000,
        jitter: 0.0,
    };
    let custom = store
        .enqueue(
            &JobSpec::new("noop")
                .queue("lean")
                .max_attempts(2)
                .backoff(policy),
        )
        .await
        .unwrap()
        .id;
    let mut conn = redis.connection_for(&record_key("lean", plain));
    let fields: BTreeSet<String> = conn
        .hkeys(record_key("lean", custom))
        .map(|f: Vec<String>| f.into_iter().collect())
        .unwrap();
    assert_eq!(
        fields,
        ["st", "ct", "sid", "type", "in", "max", "bo"]
            .map(str::to_owned)
            .into_iter()
            .collect(),
        "a pending job stores its own fields and no default"
    );
    // With every default, it has no record while it waits (layout 4).
    let recorded: bool = conn.exists(record_key("lean", plain)).unwrap();
    assert!(!recorded, "a plain pending job has a record");
    // Its value in `waiting` names its stream entry in 8 bytes (layout 5): a no-op
    // job's value fits 14 bytes, Redis's 16-byte allocation for a short string.
    let value: Vec<u8> = conn
        .hget("tether:{lean}:waiting", plain.as_uuid().as_bytes())
        .unwrap();
    let (sid, type_and_input) = tether_testkit::split_waiting_value(&value);
    assert_eq!(type_and_input, b"noop \xc0", "its type and its input (nil)");
    assert!(value.len() <= 14, "{} bytes", value.len());
    let entry: redis::streams::StreamRangeReply =
        conn.xrange("tether:{lean}:stream", &sid, &sid).unwrap();
    assert_eq!(entry.ids.len(), 1, "the value names the job's entry {sid}");

    // Straight onto the stream: no `jobs` entry until it leaves it.
    let indexed: Option<f64> = conn
        .zscore("tether:{lean}:jobs", plain.to_string())
        .unwrap();
    assert_eq!(indexed, None, "a job on the stream has no jobs entry");

    // The defaults are applied on every read: the record, the claim.
    let job = store.get("lean", plain).await.unwrap().unwrap();
    assert_eq!(job.max_attempts, tether_model::DEFAULT_MAX_ATTEMPTS);
    assert_eq!(job.updated_at, job.created_at);
    let job = store.get("lean", custom).await.unwrap().unwrap();
    assert_eq!(job.max_attempts, 2);
    let claimed = store.claim("lean", "w", 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 2);
    for c in &claimed {
        if c.lease.id == plain {
            assert_eq!(c.max_attempts, tether_model::DEFAULT_MAX_ATTEMPTS);
            assert_eq!(c.backoff, RetryPolicy::default());
        } else {
            assert_eq!(c.max_attempts, 2);
            assert_eq!(c.backoff, policy);
        }
    }
    let indexed: Option<f64> = conn
        .zscore("tether:{lean}:jobs", plain.to_string())
        .unwrap();
    let created = store.get("lean", plain).await.unwrap().unwrap().created_at;
    assert_eq!(
        indexed,
        Some(created.timestamp_millis() as f64),
        "claimed, it is indexed by its creation time"
    );
    // A default max_attempts of 5 retries the first error (an absent `max` is not 0).
    let error = failure();
    for c in &claimed {
        let outcome = store.finish(&c.lease, &error).await.unwrap();
        assert_eq!(outcome, FinishOutcome::Retrying, "{}", c.lease.id);
    }
    let problems = store.check_consistency("lean").await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

/// Attempts equal to the epoch are not stored (layout 5): a claim writes `att` only
/// where a script set it apart from `ep` (a snooze, a hand-back, a lease that lapsed),
/// and every reader (the claim's reply, `get`, listings, the retry decision, the
/// reaper, a start deadline) takes an absent one as the epoch.
async fn attempts_equal_to_the_epoch_are_not_stored(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "att";
    let id = enqueue_noops(&store, queue, 1).await[0];
    let mut conn = redis.connection_for(&record_key(queue, id));
    let stored = |conn: &mut redis::Connection, id: JobId| -> (Option<u32>, u32) {
        redis::cmd("HMGET")
            .arg(record_key(queue, id))
            .arg("att")
            .arg("ep")
            .query(conn)
            .unwrap()
    };
    let attempts_read = |store: &Store| {
        let store = store.clone();
        async move {
            let got = store.get(queue, id).await.unwrap().unwrap().attempts;
            let listed = store
                .list(&tether_store::ListQuery {
                    queues: vec![queue.to_owned()],
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(listed.jobs[0].attempts, got, "listed as read");
            got
        }
    };
    // Claims: the first, then again after a retried error.
    let c = store.claim(queue, "w", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(c.attempts, 1);
    assert_eq!(stored(&mut conn, id), (None, 1));
    assert_eq!(attempts_read(&store).await, 1);
    assert_eq!(
        store.finish(&c.lease, &failure()).await.unwrap(),
        FinishOutcome::Retrying
    );
    let c = store.claim(queue, "w", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(c.attempts, 2);
    assert_eq!(stored(&mut conn, id), (None, 2));
    // A snooze gives the attempt back: written apart, and claimed on from there.
    store.snooze(&c.lease, Duration::ZERO).await.unwrap();
    assert_eq!(stored(&mut conn, id), (Some(1), 2));
    assert_eq!(attempts_read(&store).await, 1);
    let c = store.claim(queue, "w", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(c.attempts, 2);
    assert_eq!(stored(&mut conn, id), (Some(2), 3));
    assert_eq!(
        store.finish(&c.lease, &success()).await.unwrap(),
        FinishOutcome::Recorded
    );

    // A lapsed lease: the reaper moves the epoch on and writes the attempts it keeps.
    let id = enqueue_noops(&store, queue, 1).await[0];
    let short = Duration::from_millis(50);
    let c = store.claim(queue, "w", 1, short).await.unwrap().remove(0);
    assert_eq!((c.lease.id, c.attempts), (id, 1));
    tokio::time::sleep(Duration::from_millis(120)).await;
    let reaped = store.reap(queue, 10).await.unwrap();
    assert_eq!(reaped.requeued, vec![id]);
    assert_eq!(stored(&mut conn, id), (Some(1), 2));
    let c = store.claim(queue, "w", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(
        (c.lease.id, c.attempts),
        (id, 2),
        "one attempt spent before"
    );
    // A hand-back (shutdown) gives it back.
    assert_eq!(
        store
            .release(queue, &[(id, c.lease.token.clone())])
            .await
            .unwrap(),
        1
    );
    let c = store.claim(queue, "w", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(c.attempts, 2);
    store.finish(&c.lease, &success()).await.unwrap();
    assert!(store.check_consistency(queue).await.unwrap().is_empty());
}

#[tokio::test]
async fn attempts_equal_to_the_epoch_are_not_stored_on_one_redis() {
    attempts_equal_to_the_epoch_are_not_stored(Topology::Single).await;
}

#[tokio::test]
async fn attempts_equal_to_the_epoch_are_not_stored_on_a_cluster() {
    attempts_equal_to_the_epoch_are_not_stored(Topology::Cluster).await;
}

/// What a final status implies is not stored: a finished job's record has no `pg`, `eta`
/// or `ut` written by its finish, nor `ut` by its claim, and every reader derives them
/// (progress 100, the ETA and the update time its finish time), so what `get` answers
/// is unchanged.
async fn a_final_status_implies_its_progress_and_times(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "implied";
    let ids: Vec<JobId> = store
        .enqueue_many(&vec![JobSpec::new("noop").queue(queue); 2])
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let claimed = store.claim(queue, "w", 2, LEASE).await.unwrap();
    let mut conn = redis.connection_for(&record_key(queue, ids[0]));
    let running = claimed.iter().find(|c| c.lease.id == ids[1]).unwrap();
    let fields: BTreeSet<String> = conn
        .hkeys(record_key(queue, ids[1]))
        .map(|f: Vec<String>| f.into_iter().collect())
        .unwrap();
    assert!(
        !fields.contains("ut"),
        "a claim writes its start, not ut: {fields:?}"
    );
    let job = store.get(queue, ids[1]).await.unwrap().unwrap();
    assert_eq!(
        Some(job.updated_at),
        job.started_at,
        "updated when it started"
    );
    assert_eq!(job.progress, 0);
    // One job reports progress and an ETA before it ends: the finish leaves them be.
    let in_a_minute = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 60_000;
    store
        .progress(&running.lease, LEASE, 40, Some("busy"), Some(in_a_minute))
        .await
        .unwrap();
    let job = store.get(queue, ids[1]).await.unwrap().unwrap();
    assert_eq!(
        (job.progress, job.eta.map(|t| t.timestamp_millis())),
        (40, Some(in_a_minute))
    );
    for c in &claimed {
        assert_eq!(
            store.finish(&c.lease, &success()).await.unwrap(),
            FinishOutcome::Recorded
        );
    }
    for id in &ids {
        let fields: BTreeSet<String> = conn
            .hkeys(record_key(queue, *id))
            .map(|f: Vec<String>| f.into_iter().collect())
            .unwrap();
        let job = store.get(queue, *id).await.unwrap().unwrap();
        assert_eq!(job.status, Status::Success);
        assert_eq!(
            job.progress, 100,
            "{id}: a finished job is at 100 ({fields:?})"
        );
        let finished = job.finished_at.expect("a finish time");
        assert_eq!(job.eta, Some(finished), "{id}: its ETA is its finish");
        assert_eq!(
            job.updated_at, finished,
            "{id}: last updated when it finished"
        );
        if *id == ids[0] {
            for implied in ["pg", "eta", "ut"] {
                assert!(
                    !fields.contains(implied),
                    "{id} stores {implied}: {fields:?}"
                );
            }
        }
    }
    let problems = store.check_consistency(queue).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");

    // A parent sees a finished child at 100 too, whatever it reported last.
    let parent = store
        .enqueue(&JobSpec::new("parent").queue("implied-tree"))
        .await
        .unwrap()
        .id;
    let held = store.claim("implied-tree", "w", 1, LEASE).await.unwrap();
    let child = store
        .spawn(
            &held[0].lease,
            "only",
            0,
            JobSpec::new("child").queue("implied-tree"),
        )
        .await
        .unwrap()
        .id;
    let running = store.claim("implied-tree", "w", 1, LEASE).await.unwrap();
    assert_eq!(running[0].lease.id, child);
    store
        .progress(&running[0].lease, LEASE, 40, None, None)
        .await
        .unwrap();
    let seen = store.children("implied-tree", parent).await.unwrap();
    assert_eq!((seen[0].id, seen[0].progress), (child, 40));
    store.finish(&running[0].lease, &success()).await.unwrap();
    let seen = store.children("implied-tree", parent).await.unwrap();
    assert_eq!(seen[0].status, Some(Status::Success));
    assert_eq!(seen[0].progress, 100, "a finished child is at 100");
}

#[tokio::test]
async fn a_final_status_implies_its_progress_and_times_on_one_redis() {
    a_final_status_implies_its_progress_and_times(Topology::Single).await;
}

#[tokio::test]
async fn a_final_status_implies_its_progress_and_times_on_a_cluster() {
    a_final_status_implies_its_progress_and_times(Topology::Cluster).await;
}

fn success() -> Outcome {
    Outcome::Success(tether_store::encode(&1).unwrap())
}

/// Claims `queue` until it is empty and finishes each job as `decide` says, checking
/// each runs once, at its first attempt, with the answer `decide` expects. Returns the
/// jobs that ran.
async fn drain(
    store: &Store,
    queue: &str,
    decide: impl Fn(&tether_store::Claimed) -> (Outcome, FinishOutcome),
) -> BTreeSet<JobId> {
    let mut seen = BTreeSet::new();
    loop {
        let claimed = store.claim(queue, "w", 64, LEASE).await.unwrap();
        if claimed.is_empty() {
            return seen;
        }
        for c in &claimed {
            assert_eq!(c.attempts, 1, "{} ran twice", c.lease.id);
            assert!(seen.insert(c.lease.id), "{} claimed twice", c.lease.id);
            let (outcome, expected) = decide(c);
            assert_eq!(store.finish(&c.lease, &outcome).await.unwrap(), expected);
        }
    }
}

fn failure() -> Outcome {
    Outcome::Error {
        retryable: true,
        retry_delay: Duration::ZERO,
        message: "no".into(),
        code: ErrorCode::from("Boom"),
        info: Vec::new(),
    }
}

#[tokio::test]
async fn a_record_stores_no_default_on_one_redis() {
    defaults_are_not_stored(Topology::Single).await;
}

#[tokio::test]
async fn a_record_stores_no_default_on_a_cluster() {
    defaults_are_not_stored(Topology::Cluster).await;
}

/// Writes `n` ready jobs and one delayed job as layout 1's `enqueue.lua` did (every
/// field spelled out, `ut` beside `ct`, each job in `jobs`), a registered queue and
/// `tether:meta` at version 1. Every third job is a `fail` job allowed one attempt.
/// Returns the ids: ready, then the delayed one.
fn write_layout_1(redis: &TestRedis, queue: &str, n: usize) -> (Vec<JobId>, JobId) {
    let k = |name: &str| format!("tether:{{{queue}}}:{name}");
    let mut conn = redis.connection_for(&k("stream"));
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", &k("stream"), "workers", "0", "MKSTREAM"])
        .query(&mut conn)
        .unwrap();
    let now: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 1_000;
    let input = tether_store::encode(&serde_json::json!({"n": 1})).unwrap();
    let record = |id: JobId, kind: &str, max: &str, conn: &mut redis::Connection| {
        let _: () = redis::cmd("HSET")
            .arg(record_key(queue, id))
            .arg(&[
                "st",
                "pending",
                "ct",
                &now.to_string(),
                "ut",
                &now.to_string(),
            ])
            .arg(&["type", kind, "max", max, "bo", "1000,2,300000,0.25"])
            .arg("in")
            .arg(&input)
            .query(conn)
            .unwrap();
        let _: () = conn.zadd(k("jobs"), id.to_string(), now).unwrap();
    };
    let mut ready = Vec::new();
    for i in 0..n {
        let id = JobId::new();
        let (kind, max) = if i % 3 == 0 {
            ("fail", "1")
        } else {
            ("noop", "5")
        };
        record(id, kind, max, &mut conn);
        let sid: String = conn
            .xadd(k("stream"), "*", &[("j", id.to_string())])
            .unwrap();
        let _: () = conn.hset(record_key(queue, id), "sid", sid).unwrap();
        ready.push(id);
    }
    let delayed = JobId::new();
    record(delayed, "noop", "5", &mut conn);
    let _: () = conn.hset(record_key(queue, delayed), "ra", now).unwrap();
    let _: () = conn.zadd(k("delayed"), delayed.to_string(), now).unwrap();
    let _: () = conn.hincr(k("counts"), "enqueued", n + 1).unwrap();
    let _: () = conn.set(k("used"), now).unwrap();
    let mut conn = redis.connection_for("tether:queues");
    let _: () = conn.sadd("tether:queues", queue).unwrap();
    let mut conn = redis.connection_for("tether:meta");
    let _: () = conn.hset("tether:meta", "version", 1).unwrap();
    (ready, delayed)
}

async fn layout_1_upgrades_and_drains(topology: Topology) {
    let redis = TestRedis::start(topology);
    let queue = "old";
    let (ready, delayed) = write_layout_1(&redis, queue, 300);

    // A live layout 1 worker (its registration states no layout): refused, nothing marked.
    let registration = "tether:worker:w-old";
    let mut conn = redis.connection_for(registration);
    let _: () = conn
        .set_ex(registration, r#"{"id":"w-old","host":"h","pid":1,"queues":["old"],"concurrency":1,"started_at":"2026-01-01T00:00:00Z","jobs":[]}"#, 60)
        .unwrap();
    let mut workers = redis.connection_for("tether:workers");
    let _: () = workers.sadd("tether:workers", "w-old").unwrap();
    let refused = Store::connect(StoreConfig::new(redis.url())).await;
    match refused {
        Err(StoreError::Layout(message)) => {
            assert!(message.contains("w-old"), "{message}");
            assert!(message.contains("OPERATIONS"), "{message}");
        }
        other => panic!("a live layout 1 worker was not refused: {:?}", other.err()),
    }
    let mut meta = redis.connection_for("tether:meta");
    let version: String = meta.hget("tether:meta", "version").unwrap();
    assert_eq!(version, "1");

    // The worker stopped (its registration lapsed): the upgrade goes ahead.
    let _: () = conn.del(registration).unwrap();
    let store = connect_upgraded(&redis, queue).await;

    // Layout 4 jobs join the layout 1 ones; all drain.
    let fresh = enqueue_noops(&store, queue, 50).await;
    store.promote(queue, 10).await.unwrap();
    let seen = drain(&store, queue, |c| {
        if c.job_type == "fail" {
            // Its layout 1 record says one attempt: the first error is final.
            assert_eq!(c.max_attempts, 1);
            (failure(), FinishOutcome::Dead)
        } else {
            assert_eq!(c.max_attempts, 5);
            (success(), FinishOutcome::Recorded)
        }
    })
    .await;
    let everything: BTreeSet<JobId> = ready
        .iter()
        .chain(&fresh)
        .chain([&delayed])
        .copied()
        .collect();
    assert_eq!(seen, everything, "every job, of either layout, ran once");
    for (i, id) in ready.iter().enumerate() {
        let job = store.get(queue, *id).await.unwrap().unwrap();
        let status = if i % 3 == 0 {
            Status::Failure
        } else {
            Status::Success
        };
        assert_eq!(job.status, status, "{id}");
    }
    let problems = store.check_consistency(queue).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test]
async fn a_layout_1_redis_upgrades_and_drains_on_one_redis() {
    layout_1_upgrades_and_drains(Topology::Single).await;
}

#[tokio::test]
async fn a_layout_1_redis_upgrades_and_drains_on_a_cluster() {
    layout_1_upgrades_and_drains(Topology::Cluster).await;
}

/// Layout 2 as first released stored every job in `jobs` and put `j` entries on the
/// stream; a worker of it passes over the `n` entries of layout 3 as stale and trims
/// them, a layout 3 worker does the same with layout 4's `w` entries (a job with no
/// record), and a layout 4 worker with those whose `waiting` value names its entry
/// in 8 bytes (layout 5), leaving their jobs pending for good. So a Redis of layout 2,
/// 3 or 4 with such a worker live is refused as a layout 1 one is, and marked 5 once
/// it has stopped.
async fn a_live_older_worker_is_refused(topology: Topology, layout: u32) {
    let redis = TestRedis::start(topology);
    let mut meta = redis.connection_for("tether:meta");
    let _: () = meta.hset("tether:meta", "version", layout).unwrap();
    let registration = "tether:worker:w-old";
    let mut conn = redis.connection_for(registration);
    let description = format!(
        r#"{{"id":"w-old","host":"h","pid":1,"queues":["q"],"concurrency":1,"started_at":"2026-01-01T00:00:00Z","jobs":[],"layout":{layout}}}"#
    );
    let _: () = conn.set_ex(registration, description, 60).unwrap();
    let mut workers = redis.connection_for("tether:workers");
    let _: () = workers.sadd("tether:workers", "w-old").unwrap();
    match Store::connect(StoreConfig::new(redis.url())).await {
        Err(StoreError::Layout(message)) => {
            assert!(message.contains("w-old"), "{message}");
            assert!(message.contains(&format!("layout {layout}")), "{message}");
        }
        other => panic!(
            "a live layout {layout} worker was not refused: {:?}",
            other.err()
        ),
    }
    let version: u32 = meta.hget("tether:meta", "version").unwrap();
    assert_eq!(version, layout, "nothing was changed");

    let _: () = conn.del(registration).unwrap();
    Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let version: String = meta.hget("tether:meta", "version").unwrap();
    assert_eq!(version, "5");
}

#[tokio::test]
async fn a_live_layout_2_worker_is_refused_on_one_redis() {
    a_live_older_worker_is_refused(Topology::Single, 2).await;
}

#[tokio::test]
async fn a_live_layout_2_worker_is_refused_on_a_cluster() {
    a_live_older_worker_is_refused(Topology::Cluster, 2).await;
}

#[tokio::test]
async fn a_live_layout_3_worker_is_refused_on_one_redis() {
    a_live_older_worker_is_refused(Topology::Single, 3).await;
}

#[tokio::test]
async fn a_live_layout_3_worker_is_refused_on_a_cluster() {
    a_live_older_worker_is_refused(Topology::Cluster, 3).await;
}

#[tokio::test]
async fn a_live_layout_4_worker_is_refused_on_one_redis() {
    a_live_older_worker_is_refused(Topology::Single, 4).await;
}

#[tokio::test]
async fn a_live_layout_4_worker_is_refused_on_a_cluster() {
    a_live_older_worker_is_refused(Topology::Cluster, 4).await;
}

/// A Redis of layout 3 (every job with its record; plain jobs on `n` entries with no
/// `jobs` entry), written here as layout 3's enqueue wrote it, is upgraded in place:
/// its jobs and the layout 4 jobs enqueued after the upgrade all run, once each.
async fn layout_3_upgrades_and_drains(topology: Topology) {
    let redis = TestRedis::start(topology);
    let queue = "three";
    let k = |name: &str| format!("tether:{{{queue}}}:{name}");
    let mut conn = redis.connection_for(&k("stream"));
    let mut old = BTreeSet::new();
    for _ in 0..50 {
        let id = JobId::new();
        let input = tether_store::encode(&serde_json::json!({})).unwrap();
        let sid: String = conn
            .xadd(k("stream"), "*", &[("n", id.to_string())])
            .unwrap();
        let created = sid.split('-').next().unwrap().to_owned();
        let _: () = conn
            .hset_multiple(
                record_key(queue, id),
                &[
                    ("st", b"pending".to_vec()),
                    ("ct", created.into_bytes()),
                    ("sid", sid.into_bytes()),
                    ("type", b"noop".to_vec()),
                    ("in", input),
                ],
            )
            .unwrap();
        old.insert(id);
    }
    let _: () = conn.hincr(k("counts"), "enqueued", 50).unwrap();
    let _: () = conn.set(k("used"), 1).unwrap();
    let mut meta = redis.connection_for("tether:meta");
    let _: () = meta.hset("tether:meta", "version", 3).unwrap();

    let store = connect_upgraded(&redis, queue).await;
    let fresh: BTreeSet<JobId> = enqueue_noops(&store, queue, 50).await.into_iter().collect();
    let listed = list_all(&store, queue, Default::default()).await;
    assert_eq!(listed.len(), 100, "every pending job is listed");
    let ran = drain(&store, queue, |_| (success(), FinishOutcome::Recorded)).await;
    let all: BTreeSet<JobId> = old.union(&fresh).copied().collect();
    assert_eq!(ran, all, "every job ran once");
    assert!(store.check_consistency(queue).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_layout_3_redis_upgrades_and_drains_on_one_redis() {
    layout_3_upgrades_and_drains(Topology::Single).await;
}

#[tokio::test]
async fn a_layout_3_redis_upgrades_and_drains_on_a_cluster() {
    layout_3_upgrades_and_drains(Topology::Cluster).await;
}

/// A Redis of layout 4 (plain jobs waiting as fields of `waiting` whose value spells
/// out their entry id: `<ms>-<seq> <type> <input>`), written here as layout 4's
/// enqueue wrote it, is upgraded in place: its waiting jobs are read, listed, changed
/// and claimed as they are, and run once each with the layout 5 jobs enqueued after.
async fn layout_4_upgrades_and_drains(topology: Topology) {
    let redis = TestRedis::start(topology);
    let queue = "four";
    let k = |name: &str| format!("tether:{{{queue}}}:{name}");
    let mut conn = redis.connection_for(&k("stream"));
    let input = tether_store::encode(&serde_json::json!({"n": 4})).unwrap();
    let mut old = Vec::new();
    for _ in 0..50 {
        let id = JobId::new();
        let raw = id.as_uuid().as_bytes().to_vec();
        let sid: String = conn.xadd(k("stream"), "*", &[("w", &raw)]).unwrap();
        let value = [format!("{sid} noop ").as_bytes(), &input].concat();
        let _: () = conn.hset(k("waiting"), &raw, value).unwrap();
        old.push((id, sid));
    }
    let _: () = conn.hincr(k("counts"), "enqueued", 50).unwrap();
    let _: () = conn.set(k("used"), 1).unwrap();
    let mut meta = redis.connection_for("tether:meta");
    let _: () = meta.hset("tether:meta", "version", 4).unwrap();

    let store = connect_upgraded(&redis, queue).await;
    // Read by id and listed as layout 4 wrote them.
    let (first, first_sid) = &old[0];
    let job = store.get(queue, *first).await.unwrap().unwrap();
    assert_eq!(job.status, Status::Pending);
    assert_eq!(job.job_type, "noop");
    assert_eq!(job.input, serde_json::json!({"n": 4}));
    let created_ms: i64 = first_sid.split('-').next().unwrap().parse().unwrap();
    assert_eq!(job.created_at.timestamp_millis(), created_ms);
    // Changed by id: a cancel gives it the record it then needs.
    let (cancelled, _) = old[1];
    store.cancel(queue, cancelled, None).await.unwrap();
    let fresh: BTreeSet<JobId> = enqueue_noops(&store, queue, 50).await.into_iter().collect();
    let listed = list_all(&store, queue, Default::default()).await;
    assert_eq!(listed.len(), 100, "every job is listed");
    assert!(store.check_consistency(queue).await.unwrap().is_empty());

    let ran = drain(&store, queue, |_| (success(), FinishOutcome::Recorded)).await;
    let mut all: BTreeSet<JobId> = old.iter().map(|(id, _)| *id).collect();
    all.remove(&cancelled);
    all.extend(fresh);
    assert_eq!(ran, all, "every job but the cancelled one ran once");
    let job = store.get(queue, *first).await.unwrap().unwrap();
    assert_eq!(job.created_at.timestamp_millis(), created_ms, "its ct kept");
    assert!(store.check_consistency(queue).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_layout_4_redis_upgrades_and_drains_on_one_redis() {
    layout_4_upgrades_and_drains(Topology::Single).await;
}

#[tokio::test]
async fn a_layout_4_redis_upgrades_and_drains_on_a_cluster() {
    layout_4_upgrades_and_drains(Topology::Cluster).await;
}

/// A waiting job's stream entry id that does not pack in 8 bytes is spelled out in its
/// value, as layout 4 wrote it: a sequence number past 2 bytes (more than 65,536
/// entries in one ms), or a ms of more than 13 digits (past the year 2286, or a stream
/// given such an id by hand: a packed value's first byte could then read as a digit).
/// The stream's last id is set past them here. It is read, claimed and checked the
/// same.
async fn a_long_sequence_number_is_spelled_out(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "long-seq";
    let k = |name: &str| format!("tether:{{{queue}}}:{name}");
    enqueue_noops(&store, queue, 1).await; // the stream exists
    drain(&store, queue, |_| (success(), FinishOutcome::Recorded)).await;
    let mut conn = redis.connection_for(&k("stream"));
    let ms = chrono::Utc::now().timestamp_millis() + 1_000;
    let _: () = redis::cmd("XSETID")
        .arg(k("stream"))
        .arg(format!("{ms}-70000"))
        .query(&mut conn)
        .unwrap();
    let ids = enqueue_noops(&store, queue, 2).await;
    for (id, seq) in ids.iter().zip([70_001, 70_002]) {
        let value: Vec<u8> = conn.hget(k("waiting"), id.as_uuid().as_bytes()).unwrap();
        let spelled_out = [format!("{ms}-{seq} noop ").as_bytes(), &[0xc0u8][..]].concat();
        assert_eq!(value, spelled_out);
        let job = store.get(queue, *id).await.unwrap().unwrap();
        assert_eq!(job.created_at.timestamp_millis(), ms);
    }
    assert!(store.check_consistency(queue).await.unwrap().is_empty());
    let ran = drain(&store, queue, |_| (success(), FinishOutcome::Recorded)).await;
    assert_eq!(ran, ids.into_iter().collect());
    assert!(store.check_consistency(queue).await.unwrap().is_empty());

    // A ms of 14 digits (a microsecond count taken for one): 10^13 and more would pack
    // with a first byte past 9, and from 48 * 2^40 read as a digit.
    let huge = 53_000_000_000_000u64;
    let _: () = redis::cmd("XSETID")
        .arg(k("stream"))
        .arg(format!("{huge}-0"))
        .query(&mut conn)
        .unwrap();
    let id = enqueue_noops(&store, queue, 1).await[0];
    let value: Vec<u8> = conn.hget(k("waiting"), id.as_uuid().as_bytes()).unwrap();
    assert_eq!(
        value,
        [format!("{huge}-1 noop ").as_bytes(), &[0xc0u8][..]].concat()
    );
    let job = store.get(queue, id).await.unwrap().unwrap();
    assert_eq!(job.created_at.timestamp_millis(), huge as i64);
    assert!(store.check_consistency(queue).await.unwrap().is_empty());
    let ran = drain(&store, queue, |_| (success(), FinishOutcome::Recorded)).await;
    assert_eq!(ran, [id].into_iter().collect());
    assert!(store.check_consistency(queue).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_long_sequence_number_is_spelled_out_on_one_redis() {
    a_long_sequence_number_is_spelled_out(Topology::Single).await;
}

#[tokio::test]
async fn a_long_sequence_number_is_spelled_out_on_a_cluster() {
    a_long_sequence_number_is_spelled_out(Topology::Cluster).await;
}

/// A stale `w` entry of a waiting job (one left behind when the job was cancelled,
/// deleted and enqueued again under its id) ahead of its live one: a claim does not
/// match a layout 5 value to its entry, so the stale one leases the job in the live
/// one's place, with the creation time of its value, in the same ms or an earlier
/// one, and the live one is passed over, in the same claim too. The job is leased
/// once and the queue is consistent after.
async fn a_stale_w_entry_leases_nothing_twice(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "stale-w";
    let k = |name: &str| format!("tether:{{{queue}}}:{name}");
    let mut conn = redis.connection_for(&k("stream"));
    for same_ms in [false, true] {
        let id = enqueue_noops(&store, queue, 1).await[0];
        let raw = id.as_uuid().as_bytes().to_vec();
        let value: Vec<u8> = conn.hget(k("waiting"), &raw).unwrap();
        let (sid, type_and_input) = tether_testkit::split_waiting_value(&value);
        let _: () = conn.xdel(k("stream"), &[&sid]).unwrap();
        let (ms, seq) = sid.split_once('-').unwrap();
        let (ms, seq): (u64, u64) = (ms.parse().unwrap(), seq.parse().unwrap());
        let (stale, live) = if same_ms {
            (format!("{ms}-{}", seq + 1), format!("{ms}-{}", seq + 2))
        } else {
            (format!("{}-0", ms + 1), format!("{}-0", ms + 2))
        };
        for entry in [&stale, &live] {
            let _: String = conn.xadd(k("stream"), entry, &[("w", &raw)]).unwrap();
        }
        let value = tether_testkit::waiting_value(&live, type_and_input);
        let _: () = conn.hset(k("waiting"), &raw, value).unwrap();
        let problems = store.check_consistency(queue).await.unwrap();
        assert_eq!(
            problems,
            [format!(
                "waiting job {id} has a stream entry {stale} that is not its live one"
            )]
        );

        let claimed = store.claim(queue, "w", 10, LEASE).await.unwrap();
        assert_eq!(claimed.len(), 1, "same ms: {same_ms}");
        assert_eq!(claimed[0].lease.id, id);
        let live_ms = live.split('-').next().unwrap().parse::<i64>().unwrap();
        let job = store.get(queue, id).await.unwrap().unwrap();
        assert_eq!(job.created_at.timestamp_millis(), live_ms);
        assert!(store.claim(queue, "w", 10, LEASE).await.unwrap().is_empty());
        let entries: usize = conn.xlen(k("stream")).unwrap();
        assert_eq!(entries, 0, "both entries consumed");
        store.finish(&claimed[0].lease, &success()).await.unwrap();
        assert!(store.check_consistency(queue).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_stale_w_entry_leases_nothing_twice_on_one_redis() {
    a_stale_w_entry_leases_nothing_twice(Topology::Single).await;
}

#[tokio::test]
async fn a_stale_w_entry_leases_nothing_twice_on_a_cluster() {
    a_stale_w_entry_leases_nothing_twice(Topology::Cluster).await;
}

#[tokio::test]
async fn a_newer_layout_is_refused() {
    let redis = TestRedis::start(Topology::Single);
    let mut conn = redis.connection_for("tether:meta");
    let _: () = conn.hset("tether:meta", "version", 6).unwrap();
    match Store::connect(StoreConfig::new(redis.url())).await {
        Err(StoreError::Layout(message)) => assert!(message.contains("newer"), "{message}"),
        other => panic!("a newer layout was not refused: {:?}", other.err()),
    }
    let version: String = conn.hget("tether:meta", "version").unwrap();
    assert_eq!(version, "6", "nothing was changed");
}

/// Every job of `queue` by listing it page by page.
/// Layout 4: a plain job (no option, no field but its type and input) waits as a field
/// of `waiting` with a `w` stream entry and no record, and every reader and writer of a
/// job by id finds it there: get, listing, summaries, find_queue, labels, cancel,
/// delete and retry (refused as pending), a resend of its id, a paused type, the
/// consistency check; a `w` entry trimmed by an older worker is found and mended.
async fn a_plain_job_waits_without_a_record(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "plain";
    let k = |name: &str| format!("tether:{{{queue}}}:{name}");
    let mut conn = redis.connection_for(&k("waiting"));
    let spec = || {
        JobSpec::new("noop")
            .queue(queue)
            .input(&serde_json::json!({"n": 1}))
            .unwrap()
    };
    let enqueued = store.enqueue_many(&vec![spec(); 6]).await.unwrap();
    let ids: Vec<JobId> = enqueued.iter().map(|e| e.id).collect();
    let waiting: usize = conn.hlen(k("waiting")).unwrap();
    assert_eq!(waiting, 7, "six jobs and the pin");
    // The pin keeps the hash out of its listpack encoding, where a lookup is a scan.
    let encoding: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(k("waiting"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(encoding, "hashtable");
    for e in &enqueued {
        let recorded: bool = conn.exists(record_key(queue, e.id)).unwrap();
        assert!(!recorded, "{} has a record", e.id);
        let job = store
            .get(queue, e.id)
            .await
            .unwrap()
            .expect("a waiting job is found");
        assert_eq!(job.status, Status::Pending);
        assert_eq!(job.job_type, "noop");
        assert_eq!(job.created_at.timestamp_millis(), e.created_at_ms);
        assert_eq!(job.input, serde_json::json!({"n": 1}));
    }
    // A resend of an id finds it waiting.
    let resent = store.enqueue_as(&spec(), ids[0]).await.unwrap();
    assert!(!resent.written_now);
    assert_eq!(store.stats(queue).await.unwrap().pending, 6);
    // Listing, summaries and the search by id.
    let listed = list_all(&store, queue, Default::default()).await;
    assert_eq!(listed.len(), 6, "{listed:?}");
    let summaries = store.job_summaries(queue, &ids).await.unwrap();
    assert_eq!(summaries.len(), 6);
    // Summaries carry no input, as a record's do not (a waiting one is not read).
    for job in &summaries {
        assert_eq!(
            (job.status, job.job_type.as_str()),
            (Status::Pending, "noop")
        );
        assert!(job.input.is_null(), "{:?}", job.input);
    }
    assert_eq!(
        store.find_queue(ids[1]).await.unwrap().as_deref(),
        Some(queue)
    );
    // Refusals name it pending, as they would with a record.
    let refused = store.delete_final(queue, ids[2], None).await;
    assert!(
        matches!(refused, Err(StoreError::InvalidState(Status::Pending))),
        "{refused:?}"
    );
    // Scoped to an owner, a waiting job (which has none) is not found.
    let hidden = store
        .set_labels(queue, ids[2], Some("tenant"), Some("x"), None)
        .await;
    assert!(matches!(hidden, Err(StoreError::NotFound(_))), "{hidden:?}");
    // Labels give it a record; it stays pending and is claimed from its entry.
    store
        .set_labels(queue, ids[2], None, Some("named"), None)
        .await
        .unwrap();
    let recorded: bool = conn.exists(record_key(queue, ids[2])).unwrap();
    assert!(recorded, "labelled, it has a record");
    assert_eq!(
        store
            .get(queue, ids[2])
            .await
            .unwrap()
            .unwrap()
            .name
            .as_deref(),
        Some("named")
    );
    // Cancelled while waiting.
    store.cancel(queue, ids[3], None).await.unwrap();
    assert_eq!(
        store.get(queue, ids[3]).await.unwrap().unwrap().status,
        Status::Cancelled
    );
    let problems = store.check_consistency(queue).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");

    // An older worker trims a `w` entry as stale: the check finds it, mend puts it back.
    let value: Vec<u8> = conn
        .hget(k("waiting"), ids[4].as_uuid().as_bytes())
        .unwrap();
    // (Its entry id in 8 bytes, then its type and input; the input is MessagePack.)
    let (sid, type_and_input) = tether_testkit::split_waiting_value(&value);
    let input = tether_store::encode(&serde_json::json!({"n": 1})).unwrap();
    assert_eq!(type_and_input, [&b"noop "[..], &input].concat());
    let _: () = conn.xdel(k("stream"), &[&sid]).unwrap();
    let problems = store.check_consistency(queue).await.unwrap();
    assert_eq!(
        problems,
        vec![format!(
            "pending job {} is neither ready nor scheduled",
            ids[4]
        )]
    );
    let mended = store.mend(queue).await.unwrap();
    assert_eq!(mended.readied, 1, "{mended:?}");
    assert!(store.check_consistency(queue).await.unwrap().is_empty());

    // A paused type holds a waiting job, with the record it then needs.
    store.pause(queue, Some("noop")).await.unwrap();
    assert!(store.claim(queue, "w", 10, LEASE).await.unwrap().is_empty());
    store.resume(queue, Some("noop")).await.unwrap();
    store.release_held(queue).await.unwrap();
    assert!(store.check_consistency(queue).await.unwrap().is_empty());

    // Every job still pending is claimed once, with what it waited with.
    let claimed = drain(&store, queue, |_| (success(), FinishOutcome::Recorded)).await;
    let mut expected: BTreeSet<JobId> = ids.iter().copied().collect();
    expected.remove(&ids[3]);
    assert_eq!(claimed.into_iter().collect::<BTreeSet<_>>(), expected);
    let waiting: usize = conn.hlen(k("waiting")).unwrap();
    assert_eq!(waiting, 1, "the pin alone");
    for id in &ids {
        let job = store.get(queue, *id).await.unwrap().unwrap();
        assert!(job.status.is_final(), "{id} is {:?}", job.status);
        assert_eq!(job.job_type, "noop");
    }
    assert!(store.check_consistency(queue).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_plain_job_waits_without_a_record_on_one_redis() {
    a_plain_job_waits_without_a_record(Topology::Single).await;
}

#[tokio::test]
async fn a_plain_job_waits_without_a_record_on_a_cluster() {
    a_plain_job_waits_without_a_record(Topology::Cluster).await;
}

/// Connects to a Redis of an older layout, which the store marks as layout 5; `queue`
/// is then consistent as it is.
async fn connect_upgraded(redis: &TestRedis, queue: &str) -> Store {
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let mut meta = redis.connection_for("tether:meta");
    let version: String = meta.hget("tether:meta", "version").unwrap();
    assert_eq!(version, "5");
    assert!(store.check_consistency(queue).await.unwrap().is_empty());
    store
}

/// Enqueues `n` plain no-op jobs in one batch.
async fn enqueue_noops(store: &Store, queue: &str, n: usize) -> Vec<JobId> {
    store
        .enqueue_many(&vec![JobSpec::new("noop").queue(queue); n])
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect()
}

async fn list_all(store: &Store, queue: &str, query: tether_store::ListQuery) -> Vec<JobId> {
    let mut query = tether_store::ListQuery {
        queues: vec![queue.to_owned()],
        ..query
    };
    let mut out = Vec::new();
    loop {
        let page = store.list(&query).await.unwrap();
        out.extend(page.jobs.iter().map(|j| j.id));
        match page.next_marker {
            Some(marker) => query.marker = Some(marker),
            None => return out,
        }
    }
}

/// Jobs enqueued straight onto the stream are not in `jobs` until they leave it: the
/// listing reads them from the stream, in creation order beside the indexed ones, with
/// markers that neither skip nor repeat, in both directions and with filters.
async fn listing_reads_the_stream_and_the_index(topology: Topology) {
    use tether_store::{ListQuery, SortDir, SortKey};
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "mixed";
    let mut ids = Vec::new();
    for round in 0..4 {
        // A batch shares its millisecond: its order is by id, not by enqueue.
        let batch = store
            .enqueue_many(&vec![JobSpec::new("noop").queue(queue); 150])
            .await
            .unwrap();
        ids.extend(batch.iter().map(|e| e.id));
        for _ in 0..5 {
            let spec = JobSpec::new(if round % 2 == 0 { "a" } else { "b" }).queue(queue);
            ids.push(store.enqueue(&spec).await.unwrap().id);
        }
        let later = JobSpec::new("noop")
            .queue(queue)
            .delay(Duration::from_secs(600));
        ids.push(store.enqueue(&later).await.unwrap().id);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    // Some leave the stream: claimed (some finished), cancelled.
    let claimed = store.claim(queue, "w", 100, LEASE).await.unwrap();
    let ok = Outcome::Success(tether_store::encode(&1).unwrap());
    for c in &claimed[..40] {
        store.finish(&c.lease, &ok).await.unwrap();
    }
    for id in &ids[300..310] {
        store.cancel(queue, *id, None).await.unwrap();
    }
    let mut jobs = Vec::new();
    for id in &ids {
        jobs.push(store.get(queue, *id).await.unwrap().unwrap());
    }
    jobs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    let ascending: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    for limit in [7, 150, 1000] {
        let asc = ListQuery {
            sort_dir: SortDir::Asc,
            limit,
            ..ListQuery::default()
        };
        assert_eq!(
            list_all(&store, queue, asc).await,
            ascending,
            "limit {limit}"
        );
        let desc = ListQuery {
            limit,
            ..ListQuery::default()
        };
        let mut descending = ascending.clone();
        descending.reverse();
        assert_eq!(
            list_all(&store, queue, desc).await,
            descending,
            "limit {limit}"
        );
    }
    let pending: Vec<JobId> = jobs
        .iter()
        .filter(|j| j.status == Status::Pending)
        .map(|j| j.id)
        .collect();
    let query = ListQuery {
        status: Some(Status::Pending),
        sort_dir: SortDir::Asc,
        limit: 33,
        ..ListQuery::default()
    };
    assert_eq!(list_all(&store, queue, query).await, pending);
    let of_type: BTreeSet<JobId> = jobs
        .iter()
        .filter(|j| j.job_type == "b")
        .map(|j| j.id)
        .collect();
    let query = ListQuery {
        job_type: Some("b".into()),
        sort_key: SortKey::Type,
        limit: 4,
        ..ListQuery::default()
    };
    let listed = list_all(&store, queue, query).await;
    assert_eq!(listed.len(), of_type.len());
    assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), of_type);
    let problems = store.check_consistency(queue).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test]
async fn listing_reads_the_stream_and_the_index_on_one_redis() {
    listing_reads_the_stream_and_the_index(Topology::Single).await;
}

#[tokio::test]
async fn listing_reads_the_stream_and_the_index_on_a_cluster() {
    listing_reads_the_stream_and_the_index(Topology::Cluster).await;
}

/// What an older layout's process does to layout 3 records during a rolling upgrade,
/// and `mend` putting it back: a layout 1 or 2 worker trims `n` entries as stale (their
/// jobs stay pending with no entry: never claimed), and a layout 1 or 2 cancel ends an
/// `n` job without indexing it (never listed). The check names both; `mend` makes the
/// first ready again and indexes the second, once; then every job runs once.
async fn older_layout_leftovers_are_mended(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "upgrading";
    let ids: Vec<JobId> = store
        .enqueue_many(&vec![JobSpec::new("noop").queue(queue); 30])
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let cancelled = store
        .enqueue(&JobSpec::new("noop").queue(queue))
        .await
        .unwrap()
        .id;
    let stream = format!("tether:{{{queue}}}:stream");
    let mut conn = redis.connection_for(&stream);
    // A layout 2 cancel: the job ends, its entry goes, and it enters no index.
    store.cancel(queue, cancelled, None).await.unwrap();
    let _: () = conn
        .zrem(format!("tether:{{{queue}}}:jobs"), cancelled.to_string())
        .unwrap();
    // A layout 2 claim of the rest: every `n` entry read, passed over as stale, trimmed.
    let entries: redis::streams::StreamRangeReply = conn.xrange_all(&stream).unwrap();
    let last = entries.ids.last().unwrap().id.clone();
    let (ms, seq) = last.split_once('-').unwrap();
    let _: () = redis::cmd("XGROUP")
        .arg(&["SETID", &stream, "workers", &last])
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("XTRIM")
        .arg(&stream)
        .arg("MINID")
        .arg(format!("{ms}-{}", seq.parse::<u64>().unwrap() + 1))
        .query(&mut conn)
        .unwrap();
    assert!(
        store.claim(queue, "w", 64, LEASE).await.unwrap().is_empty(),
        "nothing is left for a claim to find"
    );

    let problems = store.check_consistency(queue).await.unwrap();
    assert_eq!(problems.len(), 31, "{problems:?}");
    let mended = store.mend(queue).await.unwrap();
    assert_eq!((mended.readied, mended.indexed), (30, 1));
    let problems = store.check_consistency(queue).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        store.mend(queue).await.unwrap(),
        tether_store::Mended::default(),
        "a consistent queue is left as it is"
    );
    let listed = list_all(&store, queue, Default::default()).await;
    assert!(listed.contains(&cancelled), "the cancelled job is listed");

    let seen = drain(&store, queue, |_| (success(), FinishOutcome::Recorded)).await;
    assert_eq!(
        seen,
        ids.iter().copied().collect(),
        "every stranded job ran once"
    );
    let problems = store.check_consistency(queue).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test]
async fn older_layout_leftovers_are_mended_on_one_redis() {
    older_layout_leftovers_are_mended(Topology::Single).await;
}

#[tokio::test]
async fn older_layout_leftovers_are_mended_on_a_cluster() {
    older_layout_leftovers_are_mended(Topology::Cluster).await;
}
