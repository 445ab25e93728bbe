//! What a job costs Redis in commands (every command counts, those a script runs
//! too: `INFO commandstats`), and the stream read from its head. Counts, not times:
//! they do not depend on the machine's speed.

use std::time::Duration;

use tether_model::{JobId, JobSpec};
use tether_store::{Outcome, Store, StoreConfig, encode};
use tether_testkit::{RedisEndpoint, TestRedis, Topology};

const LONG: Duration = Duration::from_secs(30);

/// Every command the node ran since its stats were last reset.
fn commands_run(node: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(node).unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_"))
        .filter_map(|l| l.split([':', ',']).find_map(|kv| kv.strip_prefix("calls=")))
        .map(|n| n.parse::<u64>().unwrap())
        .sum()
}

/// A count a command answers about one key (`XLEN`, `ZCARD`, `HLEN`...).
fn count_of(node: &mut redis::Connection, command: &str, key: &str) -> u64 {
    redis::cmd(command).arg(key).query(node).unwrap()
}

fn reset_stats(node: &mut redis::Connection) {
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(node).unwrap();
}

/// Enqueue, claim and finish, per job: two commands each (the record's write, and
/// for the claim and the finish its read too), and a bounded number per call. The
/// enqueue asks whether the batch's records exist with one command for the batch.
async fn a_job_costs_a_few_commands(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "cost";
    store.ensure_queue(queue).await.unwrap();
    let mut node = redis.connection_for(&format!("tether:{{{queue}}}:stream"));
    const JOBS: u64 = 1000;
    const BATCH: u64 = 100;
    let specs = vec![JobSpec::new("t").queue(queue); JOBS as usize];

    reset_stats(&mut node);
    store.enqueue_many(&specs).await.unwrap();
    let enqueue = commands_run(&mut node);
    // Per job: the stream's XADD (a plain job has no record: layout 4); per call of 500
    // jobs: the FCALL, TIME, the batch's EXISTS and HMGET of `waiting`, one HSET of
    // `waiting`, the counters and a few type checks.
    assert!(
        enqueue <= JOBS + 2 * 14,
        "{enqueue} commands to enqueue {JOBS} jobs"
    );

    reset_stats(&mut node);
    let mut leases = Vec::new();
    for _ in 0..JOBS / BATCH {
        let claimed = store.claim(queue, "w", BATCH as usize, LONG).await.unwrap();
        assert_eq!(claimed.len(), BATCH as usize);
        leases.extend(claimed.into_iter().map(|c| c.lease));
    }
    let claim = commands_run(&mut node);
    // Per job: its value in `waiting` (HGET) and its record's HSET; per call: the FCALL,
    // the claim record (GET, SET), TIME, the flow-control settings, the stream (XRANGE,
    // XTRIM), `waiting` (one HDEL, one EXISTS of the records it writes unread), the
    // lease and index entries (one ZADD each) and their type checks.
    let calls = JOBS / BATCH;
    assert!(
        claim <= 2 * JOBS + 16 * calls,
        "{claim} commands to claim {JOBS} jobs in {calls} calls"
    );

    reset_stats(&mut node);
    let ok = Outcome::Success(encode(&1).unwrap());
    for chunk in leases.chunks(BATCH as usize) {
        let batch: Vec<_> = chunk.iter().map(|lease| (lease, &ok)).collect();
        let answers = store.finish_many(queue, &batch).await.unwrap();
        assert!(answers.iter().all(|a| a.is_ok()), "{answers:?}");
    }
    let finish = commands_run(&mut node);
    // Per job: HMGET and HSET of its record; per call: the FCALL, TIME, the leases'
    // ZCOUNT, the counts (HMGET, HINCRBY), `done`'s type check, ZREM and ZADD.
    assert!(
        finish <= 2 * JOBS + 9 * calls,
        "{finish} commands to finish {JOBS} jobs in {calls} calls"
    );
    eprintln!("commands per {JOBS} jobs: enqueue {enqueue}, claim {claim}, finish {finish}");
    let stats = store.stats(queue).await.unwrap();
    assert_eq!(stats.success, JOBS);
    let problems = store.check_consistency(queue).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test]
async fn a_job_costs_a_few_commands_on_one_redis() {
    a_job_costs_a_few_commands(Topology::Single).await;
}

#[tokio::test]
async fn a_job_costs_a_few_commands_on_a_cluster() {
    a_job_costs_a_few_commands(Topology::Cluster).await;
}

/// The claim reads the stream from its head: every entry a claim consumed was trimmed
/// in the same step, so the consumer group's cursor is not needed, and a cursor moved
/// past unclaimed entries (or a group that is gone) strands nothing.
async fn the_stream_head_is_the_cursor(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "head";
    let stream = format!("tether:{{{queue}}}:stream");
    let mut node = redis.connection_for(&stream);
    let first: Vec<JobId> = store
        .enqueue_many(&vec![JobSpec::new("t").queue(queue); 3])
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let _: () = redis::cmd("XGROUP")
        .arg(&["SETID", &stream, "workers", "$"])
        .query(&mut node)
        .unwrap();
    let claimed = store.claim(queue, "w", 10, LONG).await.unwrap();
    let mut got: Vec<JobId> = claimed.iter().map(|c| c.lease.id).collect();
    got.sort();
    let mut want = first.clone();
    want.sort();
    assert_eq!(got, want, "the jobs behind the group's cursor are claimed");

    let _: () = redis::cmd("XGROUP")
        .arg(&["DESTROY", &stream, "workers"])
        .query(&mut node)
        .unwrap();
    let second = store
        .enqueue(&JobSpec::new("t").queue(queue))
        .await
        .unwrap();
    let claimed = store.claim(queue, "w", 10, LONG).await.unwrap();
    assert_eq!(
        claimed.iter().map(|c| c.lease.id).collect::<Vec<_>>(),
        vec![second.id],
        "a queue whose group is gone is served"
    );
    let len: u64 = redis::cmd("XLEN").arg(&stream).query(&mut node).unwrap();
    assert_eq!(len, 0, "what was claimed is trimmed");
    let problems = store.check_consistency(queue).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test]
async fn the_stream_head_is_the_cursor_on_one_redis() {
    the_stream_head_is_the_cursor(Topology::Single).await;
}

#[tokio::test]
async fn the_stream_head_is_the_cursor_on_a_cluster() {
    the_stream_head_is_the_cursor(Topology::Cluster).await;
}

/// A queue's `leases` stays in the skiplist encoding (a member longer than any listpack
/// member pins it): adding a lease is then no walk and copy of the whole set. The pin is
/// no job: not counted as processing, not reaped, not a problem for the check.
async fn leases_keep_their_skiplist_encoding(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "pinned";
    let leases = format!("tether:{{{queue}}}:leases");
    let mut node = redis.connection_for(&leases);
    let encoding = |node: &mut redis::Connection| -> String {
        redis::cmd("OBJECT")
            .arg(&["ENCODING", &leases])
            .query(node)
            .unwrap()
    };
    store
        .enqueue_many(&vec![JobSpec::new("t").queue(queue); 4])
        .await
        .unwrap();
    let first = store.claim(queue, "w", 2, LONG).await.unwrap();
    assert_eq!(encoding(&mut node), "skiplist", "two leases and the pin");
    assert_eq!(store.stats(queue).await.unwrap().processing, 2);

    let ok = Outcome::Success(encode(&1).unwrap());
    for claimed in &first {
        store.finish(&claimed.lease, &ok).await.unwrap();
    }
    assert_eq!(encoding(&mut node), "skiplist", "the pin alone");
    assert_eq!(store.stats(queue).await.unwrap().processing, 0);
    let reaped = store.reap(queue, 10).await.unwrap();
    assert!(
        reaped.is_empty() && reaped.stale == 0,
        "the pin is not reaped: {reaped:?}"
    );

    // Two more leases, made to lapse: the reaper takes back those two, not the pin.
    let second = store.claim(queue, "w", 2, LONG).await.unwrap();
    for claimed in &second {
        let _: i64 = redis::cmd("ZADD")
            .arg(&leases)
            .arg("XX")
            .arg(1)
            .arg(claimed.lease.id.to_string())
            .query(&mut node)
            .unwrap();
    }
    let reaped = store.reap(queue, 10).await.unwrap();
    assert_eq!(reaped.stale, 0, "{reaped:?}");
    let mut requeued = reaped.requeued.clone();
    requeued.sort();
    let mut lapsed: Vec<JobId> = second.iter().map(|c| c.lease.id).collect();
    lapsed.sort();
    assert_eq!(requeued, lapsed);
    assert_eq!(encoding(&mut node), "skiplist");
    let problems = store.check_consistency(queue).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test]
async fn leases_keep_their_skiplist_encoding_on_one_redis() {
    leases_keep_their_skiplist_encoding(Topology::Single).await;
}

#[tokio::test]
async fn leases_keep_their_skiplist_encoding_on_a_cluster() {
    leases_keep_their_skiplist_encoding(Topology::Cluster).await;
}

/// The enqueue script takes its jobs' ids from its caller: an id already written is
/// answered EXISTS, and an id twice in one batch is written once (a raw caller could
/// send one; the store's own batches never do).
async fn an_id_is_written_once(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "twice";
    let prefix = format!("tether:{{{queue}}}:");
    let mut node = redis.connection_for(&format!("{prefix}stream"));
    let old = store
        .enqueue(&JobSpec::new("t").queue(queue))
        .await
        .unwrap()
        .id;
    let new = JobId::new();
    let mut call = raw_enqueue(&mut node, queue);
    for id in [old, new, new] {
        call.arg(id.to_string()).arg("").arg(2).arg("type").arg("t");
    }
    let rows: Vec<(String, String, i64, i64)> = call.query(&mut node).unwrap();
    let words: Vec<(&str, String)> = rows.iter().map(|r| (r.0.as_str(), r.1.clone())).collect();
    assert_eq!(
        words,
        vec![
            ("EXISTS", old.to_string()),
            ("CREATED", new.to_string()),
            ("EXISTS", new.to_string()),
        ]
    );
    let len: u64 = redis::cmd("XLEN")
        .arg(format!("{prefix}stream"))
        .query(&mut node)
        .unwrap();
    assert_eq!(len, 2, "one stream entry per job");
    let enqueued: u64 = redis::cmd("HGET")
        .arg(format!("{prefix}counts"))
        .arg("enqueued")
        .query(&mut node)
        .unwrap();
    assert_eq!(enqueued, 2);
    let claimed = store.claim(queue, "w", 10, LONG).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let problems = store.check_consistency(queue).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

/// An `FCALL` of the enqueue function with `queue`'s keys, no horizon and no quota:
/// the caller appends the jobs.
fn raw_enqueue(node: &mut redis::Connection, queue: &str) -> redis::Cmd {
    let mut call = raw_call(node, queue, "_enqueue");
    call.arg(0).arg(0);
    call
}

/// An `FCALL` of the library's function whose name ends with `suffix`, with `queue`'s
/// keys and prefix: the caller appends the script's own arguments.
fn raw_call(node: &mut redis::Connection, queue: &str, suffix: &str) -> redis::Cmd {
    let prefix = format!("tether:{{{queue}}}:");
    let functions: redis::Value = redis::cmd("FUNCTION").arg("LIST").query(node).unwrap();
    let function = function_named(&functions, suffix).expect("the library is loaded");
    let mut call = redis::cmd("FCALL");
    call.arg(&function).arg(7);
    for key in [
        "stream", "delayed", "leases", "jobs", "done", "dead", "counts",
    ] {
        call.arg(format!("{prefix}{key}"));
    }
    call.arg(&prefix);
    call
}

/// A number argument that is NaN or infinite (Lua's `tonumber` takes "nan" and "inf")
/// is refused before any write. A claim given a NaN retention, with a job past its
/// start deadline to expire, failed only when it formatted that job's expiry: after
/// it had trimmed the job's stream entry, which left the job pending on no stream.
async fn a_non_finite_number_fails_a_script_before_any_write(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "nan";
    let prefix = format!("tether:{{{queue}}}:");
    let late = store
        .enqueue(
            &JobSpec::new("t")
                .queue(queue)
                .start_by(Duration::from_millis(1)),
        )
        .await
        .unwrap()
        .id;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut node = redis.connection_for(&format!("{prefix}stream"));
    for bad in ["nan", "inf", "-inf"] {
        // count, worker, lease ttl ms, claim id, retention ms
        let mut call = raw_call(&mut node, queue, "_claim");
        call.arg(10).arg("w").arg(30_000).arg("abcd").arg(bad);
        let answer = call.query::<redis::Value>(&mut node);
        let entries = count_of(&mut node, "XLEN", &format!("{prefix}stream"));
        assert_eq!(
            entries, 1,
            "{bad}: the job's entry is still there ({answer:?})"
        );
        let err = answer.unwrap_err();
        assert!(err.to_string().contains("is not a number"), "{bad}: {err}");
    }
    assert!(store.claim(queue, "w", 10, LONG).await.unwrap().is_empty());
    let job = store.get(queue, late).await.unwrap().unwrap();
    assert_eq!(
        job.status,
        tether_model::Status::Failure,
        "expired unstarted"
    );
    let problems = store.check_consistency(queue).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

/// A number argument too large to be a time or a count (past 2^53, where integers lose
/// their precision and stop formatting as integers) is refused before any write. A
/// finish given a retention of 1e300 recorded the outcome with an expiry formatted as
/// -9223372036854775808, and the next retention sweep deleted the job at once.
async fn a_number_past_2_to_the_53_fails_a_script_before_any_write(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "huge";
    let prefix = format!("tether:{{{queue}}}:");
    store
        .enqueue(&JobSpec::new("t").queue(queue))
        .await
        .unwrap();
    let claimed = store.claim(queue, "w", 1, LONG).await.unwrap();
    let lease = &claimed[0].lease;
    let mut node = redis.connection_for(&format!("{prefix}stream"));
    for huge in ["1e300", "-1e300", "1e16"] {
        // retention ms, then id, token, kind, result
        let mut call = raw_call(&mut node, queue, "_finish");
        call.arg(huge)
            .arg(lease.id.to_string())
            .arg(lease.token.as_str())
            .arg("success")
            .arg("r");
        let err = call
            .query::<redis::Value>(&mut node)
            .expect_err(&format!("a retention of {huge} is refused"));
        assert!(err.to_string().contains("is not a number"), "{huge}: {err}");
        let job = store.get(queue, lease.id).await.unwrap().unwrap();
        assert_eq!(
            job.status,
            tether_model::Status::Processing,
            "{huge}: nothing written"
        );
    }
    // At the bound, and a retention of a year, are numbers like any other.
    let mut call = raw_call(&mut node, queue, "_finish");
    call.arg(365 * 24 * 3_600_000_u64)
        .arg(lease.id.to_string())
        .arg(lease.token.as_str())
        .arg("success")
        .arg("r");
    let words: Vec<String> = call.query(&mut node).unwrap();
    assert_eq!(words, ["OK"]);
    let problems = store.check_consistency(queue).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test]
async fn a_number_past_2_to_the_53_fails_a_script_before_any_write_on_one_redis() {
    a_number_past_2_to_the_53_fails_a_script_before_any_write(Topology::Single).await;
}

#[tokio::test]
async fn a_number_past_2_to_the_53_fails_a_script_before_any_write_on_a_cluster() {
    a_number_past_2_to_the_53_fails_a_script_before_any_write(Topology::Cluster).await;
}

/// A schedule script given a non-finite number (a raw caller's "nan" or "inf") refuses
/// it before any write: resumed with it, a schedule stored it as its next fire time.
/// Runs the shipped text as the store sends it (numbers.lua, the schedules' prelude,
/// the script).
async fn a_schedule_refuses_a_non_finite_number(topology: Topology) {
    let redis = TestRedis::start(topology);
    let schedule = "tether:{~sched}:s:o/nightly";
    let mut node = redis.connection_for(schedule);
    let _: () = redis::cmd("HSET")
        .arg(schedule)
        .arg("next")
        .arg(5)
        .arg("paused")
        .arg(1)
        .query(&mut node)
        .unwrap();
    let state = concat!(
        include_str!("../lua/numbers.lua"),
        include_str!("../lua/schedules/common.lua"),
        include_str!("../lua/schedules/state.lua")
    );
    for bad in ["nan", "inf", "-inf"] {
        let answer = redis::cmd("EVAL")
            .arg(state)
            .arg(3)
            .arg("tether:{~sched}:all")
            .arg("tether:{~sched}:due")
            .arg(schedule)
            .arg("o/nightly")
            .arg("resume")
            .arg(bad)
            .query::<redis::Value>(&mut node);
        let err = answer.unwrap_err();
        assert!(err.to_string().contains("not a number"), "{bad}: {err}");
        let stored: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(schedule)
            .arg("next")
            .arg("paused")
            .query(&mut node)
            .unwrap();
        assert_eq!(
            stored,
            [Some("5".into()), Some("1".into())],
            "{bad}: unchanged"
        );
    }
}

#[tokio::test]
async fn a_schedule_refuses_a_non_finite_number_on_one_redis() {
    a_schedule_refuses_a_non_finite_number(Topology::Single).await;
}

#[tokio::test]
async fn a_schedule_refuses_a_non_finite_number_on_a_cluster() {
    a_schedule_refuses_a_non_finite_number(Topology::Cluster).await;
}

/// A hand-back whose arguments are not id, token pairs (a token missing at the end) is
/// refused whole: no job of it is handed back.
async fn a_release_of_unpaired_arguments_writes_nothing(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "unpaired";
    let prefix = format!("tether:{{{queue}}}:");
    store
        .enqueue_many(&vec![JobSpec::new("t").queue(queue); 2])
        .await
        .unwrap();
    let claimed = store.claim(queue, "w", 2, LONG).await.unwrap();
    let mut node = redis.connection_for(&format!("{prefix}stream"));
    // retention ms, delay ms, then id, token pairs: the second token left out.
    let mut call = raw_call(&mut node, queue, "_release");
    call.arg(60_000).arg(0);
    call.arg(claimed[0].lease.id.to_string())
        .arg(claimed[0].lease.token.as_str())
        .arg(claimed[1].lease.id.to_string());
    let err = call.query::<redis::Value>(&mut node).unwrap_err();
    assert!(err.to_string().contains("id, token pairs"), "{err}");
    for c in &claimed {
        let job = store.get(queue, c.lease.id).await.unwrap().unwrap();
        assert_eq!(job.status, tether_model::Status::Processing, "still leased");
    }
    assert_eq!(
        store
            .release(
                queue,
                &[(claimed[0].lease.id, claimed[0].lease.token.clone())]
            )
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn a_release_of_unpaired_arguments_writes_nothing_on_one_redis() {
    a_release_of_unpaired_arguments_writes_nothing(Topology::Single).await;
}

#[tokio::test]
async fn a_release_of_unpaired_arguments_writes_nothing_on_a_cluster() {
    a_release_of_unpaired_arguments_writes_nothing(Topology::Cluster).await;
}

#[tokio::test]
async fn a_non_finite_number_fails_a_script_before_any_write_on_one_redis() {
    a_non_finite_number_fails_a_script_before_any_write(Topology::Single).await;
}

#[tokio::test]
async fn a_non_finite_number_fails_a_script_before_any_write_on_a_cluster() {
    a_non_finite_number_fails_a_script_before_any_write(Topology::Cluster).await;
}

/// A plain job whose type the waiting value cannot carry (empty, or with whitespace:
/// only a raw caller can send one) keeps a record instead (layout 4), and runs with
/// its type and input as sent (a claim's one-string row of a type with a space read
/// `a b` as the type `a` and the input `b <input>`).
async fn a_type_waiting_cannot_carry_keeps_a_record(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "odd-types";
    let prefix = format!("tether:{{{queue}}}:");
    let mut node = redis.connection_for(&format!("{prefix}stream"));
    // (A first enqueue loads the function library.)
    store
        .enqueue(&JobSpec::new("t").queue(queue))
        .await
        .unwrap();
    let ids = [JobId::new(), JobId::new(), JobId::new()];
    let types = ["", "a\tb", "a b"];
    let mut call = raw_enqueue(&mut node, queue);
    for (id, job_type) in ids.iter().zip(types) {
        call.arg(id.as_uuid().as_bytes()).arg("").arg(4);
        call.arg("type").arg(job_type).arg("in").arg(b"x y");
    }
    let rows: Vec<(String, String, i64, i64)> = call.query(&mut node).unwrap();
    assert!(rows.iter().all(|r| r.0 == "CREATED"), "{rows:?}");
    let waiting: u64 = redis::cmd("HLEN")
        .arg(format!("{prefix}waiting"))
        .query(&mut node)
        .unwrap();
    assert_eq!(
        waiting, 2,
        "only the plain job of a one-word type waits (beside the pin)"
    );
    let claimed = store.claim(queue, "w", 10, LONG).await.unwrap();
    assert_eq!(claimed.len(), 4);
    for (id, job_type) in ids.iter().zip(types) {
        let job = claimed.iter().find(|c| c.lease.id == *id).unwrap();
        assert_eq!(
            (job.job_type.as_str(), job.input.as_slice()),
            (job_type, &b"x y"[..])
        );
    }
    let problems = store.check_consistency(queue).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test]
async fn a_type_waiting_cannot_carry_keeps_a_record_on_one_redis() {
    a_type_waiting_cannot_carry_keeps_a_record(Topology::Single).await;
}

#[tokio::test]
async fn a_type_waiting_cannot_carry_keeps_a_record_on_a_cluster() {
    a_type_waiting_cannot_carry_keeps_a_record(Topology::Cluster).await;
}

/// The name of the library's function that ends with `suffix` (FUNCTION LIST's reply
/// nests it in maps and arrays).
fn function_named(value: &redis::Value, suffix: &str) -> Option<String> {
    match value {
        redis::Value::BulkString(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            (text.starts_with("tether_") && text.ends_with(suffix)).then(|| text.into_owned())
        }
        redis::Value::SimpleString(text) => {
            (text.starts_with("tether_") && text.ends_with(suffix)).then(|| text.clone())
        }
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().find_map(|v| function_named(v, suffix))
        }
        redis::Value::Map(pairs) => pairs
            .iter()
            .find_map(|(k, v)| function_named(k, suffix).or_else(|| function_named(v, suffix))),
        _ => None,
    }
}

#[tokio::test]
async fn an_id_is_written_once_on_one_redis() {
    an_id_is_written_once(Topology::Single).await;
}

#[tokio::test]
async fn an_id_is_written_once_on_a_cluster() {
    an_id_is_written_once(Topology::Cluster).await;
}

/// A child index that is no finite number fails the adoption before any write: the
/// index went to `ZADD` as sent, 512 pairs per command, so a bad one past the first
/// 512 failed the call after the first `ZADD` had recorded those children.
async fn a_bad_child_index_fails_an_adoption_before_any_write(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "adopt";
    let prefix = format!("tether:{{{queue}}}:");
    store
        .enqueue(&JobSpec::new("t").queue(queue))
        .await
        .unwrap();
    let parent = store
        .claim(queue, "w", 10, LONG)
        .await
        .unwrap()
        .remove(0)
        .lease;
    let mut node = redis.connection_for(&format!("{prefix}stream"));
    for bad in ["nan", "inf", "x"] {
        let mut call = raw_call(&mut node, queue, "_adopt");
        call.arg(parent.id.to_string()).arg(parent.token.as_str());
        for index in 0..600 {
            let index = if index == 550 {
                bad.to_owned()
            } else {
                index.to_string()
            };
            call.arg(index).arg(format!("{} {queue}", JobId::new()));
        }
        let answer = call.query::<redis::Value>(&mut node);
        let children = count_of(&mut node, "ZCARD", &format!("{prefix}kids:{}", parent.id));
        assert_eq!(children, 0, "{bad}: no child recorded ({answer:?})");
        assert!(answer.is_err(), "{bad}: {answer:?}");
    }
}

#[tokio::test]
async fn a_bad_child_index_fails_an_adoption_before_any_write_on_one_redis() {
    a_bad_child_index_fails_an_adoption_before_any_write(Topology::Single).await;
}

#[tokio::test]
async fn a_bad_child_index_fails_an_adoption_before_any_write_on_a_cluster() {
    a_bad_child_index_fails_an_adoption_before_any_write(Topology::Cluster).await;
}

/// An enqueue option that is an infinite float (a msgpack float: a raw caller's) is
/// malformed: it was stored as a garbage start deadline.
async fn an_infinite_option_is_refused(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "inf-option";
    let prefix = format!("tether:{{{queue}}}:");
    // (A first enqueue loads the function library.)
    store
        .enqueue(&JobSpec::new("t").queue(queue))
        .await
        .unwrap();
    let mut node = redis.connection_for(&format!("{prefix}stream"));
    // [run_at 0, delay 0, idem '', owner '', start_by 0, start_within +inf, pri '', grp '']
    let mut options = vec![0x98, 0x00, 0x00, 0xa0, 0xa0, 0x00, 0xcb];
    options.extend_from_slice(&f64::INFINITY.to_be_bytes());
    options.extend_from_slice(&[0xa0, 0xa0]);
    let (id, err) = enqueue_with_options(&mut node, queue, options);
    assert!(err.contains("malformed options"), "{err}");
    assert!(store.get(queue, id).await.unwrap().is_none());
}

/// A raw enqueue of a job of type `t` with these options, which the script must refuse:
/// the job's id and the error.
fn enqueue_with_options(
    node: &mut redis::Connection,
    queue: &str,
    options: Vec<u8>,
) -> (JobId, String) {
    let id = JobId::new();
    let mut call = raw_enqueue(node, queue);
    call.arg(id.to_string())
        .arg(options)
        .arg(2)
        .arg("type")
        .arg("t");
    let err = call
        .query::<redis::Value>(node)
        .expect_err("the options are refused");
    (id, err.to_string())
}

/// A job's quota weight (a tenth option: how many unfinished jobs a batch amounts to) is
/// a whole count of at least 1: a negative one would have lowered its owner's count
/// past the quota, a fraction failed the script after its first write.
async fn a_weight_that_is_not_a_count_is_refused(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "weights";
    let owned = JobSpec::new("t").queue(queue).owner("alice");
    store.enqueue(&owned).await.unwrap();
    let mut node = redis.connection_for(&format!("tether:{{{queue}}}:stream"));
    for weight in [-5.0, 0.0, 1.5, 1e300] {
        let options = rmp_serde::to_vec(&(0, 0, "", "alice", 0, 0, "", "", 0, weight)).unwrap();
        let (id, err) = enqueue_with_options(&mut node, queue, options);
        assert!(err.contains("malformed options"), "{weight}: {err}");
        assert!(store.get(queue, id).await.unwrap().is_none(), "{weight}");
    }
    let active: Option<i64> = redis::cmd("HGET")
        .arg(format!("tether:{{{queue}}}:active"))
        .arg("alice")
        .query(&mut node)
        .unwrap();
    assert_eq!(active, Some(1));
}

#[tokio::test]
async fn a_weight_that_is_not_a_count_is_refused_on_one_redis() {
    a_weight_that_is_not_a_count_is_refused(Topology::Single).await;
}

#[tokio::test]
async fn a_weight_that_is_not_a_count_is_refused_on_a_cluster() {
    a_weight_that_is_not_a_count_is_refused(Topology::Cluster).await;
}

#[tokio::test]
async fn an_infinite_option_is_refused_on_one_redis() {
    an_infinite_option_is_refused(Topology::Single).await;
}

#[tokio::test]
async fn an_infinite_option_is_refused_on_a_cluster() {
    an_infinite_option_is_refused(Topology::Cluster).await;
}

/// Two jobs of one finish batch are told apart by their ids and tokens, whatever they
/// hold: a raw caller's id may hold a space, and a key made of "id token" took the job
/// `a b` with token `T` for a resend of the job `a` with token `b T`.
async fn a_finish_tells_apart_ids_that_hold_spaces(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "spaces";
    let prefix = format!("tether:{{{queue}}}:");
    // (A first enqueue loads the function library; its job is claimed with the other.)
    store
        .enqueue(&JobSpec::new("t").queue(queue))
        .await
        .unwrap();
    let mut node = redis.connection_for(&format!("{prefix}stream"));
    let mut call = raw_enqueue(&mut node, queue);
    call.arg("a b").arg("").arg(2).arg("type").arg("t");
    let _: redis::Value = call.query(&mut node).unwrap();
    // count, worker, lease ttl ms, claim id, retention ms
    let mut claim = raw_call(&mut node, queue, "_claim");
    claim.arg(10).arg("w").arg(30_000).arg("abcd").arg(60_000);
    let reply: Vec<redis::Value> = claim.query(&mut node).unwrap();
    let values: Vec<Vec<u8>> = reply
        .into_iter()
        .skip(4)
        .map(|v| match v {
            redis::Value::Int(n) => n.to_string().into_bytes(),
            other => redis::from_redis_value(other).unwrap(),
        })
        .collect();
    let at = values
        .iter()
        .position(|v| v == b"a b")
        .expect("the job is claimed");
    // (A job that never ran: its id, then `<epoch> <attempts> ...` in one value.)
    let epoch = values[at + 1].split(|b| *b == b' ').next().unwrap();
    let token = format!("{}.abcd", String::from_utf8_lossy(epoch));

    let mut finish = raw_call(&mut node, queue, "_finish");
    finish.arg(60_000);
    finish
        .arg("a")
        .arg(format!("b {token}"))
        .arg("success")
        .arg("r");
    finish.arg("a b").arg(&token).arg("success").arg("r");
    let words: Vec<String> = finish.query(&mut node).unwrap();
    assert_eq!(words, ["LOST", "OK"]);
    let status: String = redis::cmd("HGET")
        .arg(format!("{prefix}job:a b"))
        .arg("st")
        .query(&mut node)
        .unwrap();
    assert_eq!(status, "success");
}

#[tokio::test]
async fn a_finish_tells_apart_ids_that_hold_spaces_on_one_redis() {
    a_finish_tells_apart_ids_that_hold_spaces(Topology::Single).await;
}

#[tokio::test]
async fn a_finish_tells_apart_ids_that_hold_spaces_on_a_cluster() {
    a_finish_tells_apart_ids_that_hold_spaces(Topology::Cluster).await;
}
