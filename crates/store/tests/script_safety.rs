//! No script can strand a job: every script does its checks and reads before its
//! first write and cannot fail after it (Redis does not roll a script back), and
//! every batch entry point accepts any size, in bounded chunks.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::Commands;
use tether_model::{ErrorCode, JobId, JobSpec, Status};
use tether_store::{Claimed, Outcome, Store, StoreConfig};
use tether_testkit::{RedisEndpoint, RedisOptions, RedisServer, TestRedis, Topology};

const LONG: Duration = Duration::from_secs(30);

async fn connect(redis: &RedisServer) -> Store {
    Store::connect(StoreConfig::new(redis.url())).await.unwrap()
}

fn leases_of(claimed: &[Claimed]) -> Vec<(JobId, tether_store::LeaseToken)> {
    claimed
        .iter()
        .map(|c| (c.lease.id, c.lease.token.clone()))
        .collect()
}

async fn assert_consistent(store: &Store, queue: &str) {
    let problems = store.check_consistency(queue).await.unwrap();
    assert!(problems.is_empty(), "queue {queue}: {problems:?}");
}

async fn enqueue(store: &Store, queue: &str, n: usize, max_attempts: u32) -> Vec<JobId> {
    let specs = vec![JobSpec::new("t").queue(queue).max_attempts(max_attempts); n];
    store
        .enqueue_many(&specs)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect()
}

#[tokio::test]
async fn a_claim_larger_than_luas_unpack_limit_leases_every_job() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = connect(&redis).await;
    let n = 5_000;
    enqueue(&store, "big", n, 3).await;
    let claimed = store.claim("big", "w", n, LONG).await;
    let claimed = claimed.expect("a claim of 5,000 jobs");
    assert_eq!(claimed.len(), n);
    let stats = store.stats("big").await.unwrap();
    assert_eq!((stats.pending, stats.processing), (0, n as u64));
    assert_consistent(&store, "big").await;
}

#[tokio::test]
async fn every_batch_entry_point_takes_any_size() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = connect(&redis).await;
    let n = 20_000;
    enqueue(&store, "many", n, 3).await;
    let claimed = store.claim("many", "w", n, LONG).await.unwrap();
    assert_eq!(claimed.len(), n);

    let (_, statuses) = store
        .renew("many", &leases_of(&claimed), LONG)
        .await
        .expect("a renewal of 20,000 leases");
    assert_eq!(statuses.len(), n);
    assert!(
        statuses
            .iter()
            .all(|s| *s == tether_store::RenewStatus::Renewed)
    );

    // Half are handed back, a quarter finish, a quarter lapse and are reaped.
    let (back, rest) = claimed.split_at(n / 2);
    assert_eq!(
        store.release("many", &leases_of(back)).await.unwrap(),
        back.len()
    );
    let (finished, lapsing) = rest.split_at(n / 4);
    let ok = Outcome::Success(tether_store::encode(&1).unwrap());
    let batch: Vec<_> = finished.iter().map(|c| (&c.lease, &ok)).collect();
    let answers = store
        .finish_many("many", &batch)
        .await
        .expect("finish_many");
    assert_eq!(answers.len(), finished.len());
    assert!(answers.iter().all(|a| a.is_ok()));
    let short = Duration::from_millis(1);
    assert!(
        store
            .renew("many", &leases_of(lapsing), short)
            .await
            .unwrap()
            .1
            .iter()
            .all(|s| *s == tether_store::RenewStatus::Renewed)
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let reaped = store.reap("many", n).await.expect("a reap of 5,000 leases");
    assert_eq!(reaped.requeued.len(), lapsing.len());
    let stats = store.stats("many").await.unwrap();
    assert_eq!(stats.processing, 0);
    assert_eq!(stats.pending, (n / 2 + n / 4) as u64);
    assert_eq!(stats.success, (n / 4) as u64);
    assert_consistent(&store, "many").await;
}

/// Every key of a queue and its content, except `skip`.
fn snapshot(conn: &mut redis::Connection, queue: &str, skip: &str) -> BTreeMap<String, Vec<u8>> {
    dump(conn, &format!("tether:{{{queue}}}:*"), skip)
}

/// Every key matching `pattern` and its content, except `skip`.
fn dump(conn: &mut redis::Connection, pattern: &str, skip: &str) -> BTreeMap<String, Vec<u8>> {
    let keys: Vec<String> = conn.keys(pattern).unwrap();
    keys.into_iter()
        .filter(|k| k != skip)
        .map(|k| {
            let dump: Vec<u8> = redis::cmd("DUMP").arg(&k).query(conn).unwrap();
            (k, dump)
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Claim,
    Renew,
    Progress,
    Checkpoint,
    FinishSuccess,
    FinishRetry,
    FinishDead,
    Release,
    Reap,
    Promote,
    Expire,
    RetryDead,
    Delete,
}

const OPS: [Op; 13] = [
    Op::Claim,
    Op::Renew,
    Op::Progress,
    Op::Checkpoint,
    Op::FinishSuccess,
    Op::FinishRetry,
    Op::FinishDead,
    Op::Release,
    Op::Reap,
    Op::Promote,
    Op::Expire,
    Op::RetryDead,
    Op::Delete,
];

fn error(retryable: bool, delay: Duration) -> Outcome {
    Outcome::Error {
        retryable,
        retry_delay: delay,
        message: "boom".into(),
        code: ErrorCode::Custom("Boom".into()),
        info: vec![],
    }
}

/// Sets the queue up so that `op` has work to do; returns the leases it needs.
async fn prepare(store: &Store, short: &Store, queue: &str, op: Op) -> Vec<Claimed> {
    let q = queue;
    match op {
        Op::Claim => {
            enqueue(store, q, 3, 3).await;
            vec![]
        }
        Op::Renew | Op::Progress | Op::Checkpoint | Op::FinishSuccess => {
            enqueue(store, q, 2, 3).await;
            store.claim(q, "w", 2, LONG).await.unwrap()
        }
        Op::FinishRetry => {
            enqueue(store, q, 2, 3).await;
            store.claim(q, "w", 2, LONG).await.unwrap()
        }
        Op::FinishDead | Op::RetryDead | Op::Delete => {
            enqueue(store, q, 2, 1).await;
            let claimed = store.claim(q, "w", 2, LONG).await.unwrap();
            if matches!(op, Op::RetryDead | Op::Delete) {
                let e = error(false, Duration::ZERO);
                store.finish(&claimed[0].lease, &e).await.unwrap();
            }
            claimed
        }
        Op::Release => {
            enqueue(store, q, 2, 3).await;
            let claimed = store.claim(q, "w", 2, LONG).await.unwrap();
            store.cancel(q, claimed[0].lease.id, None).await.unwrap();
            claimed
        }
        Op::Reap => {
            enqueue(store, q, 1, 1).await;
            enqueue(store, q, 2, 3).await;
            let claimed = store
                .claim(q, "w", 3, Duration::from_millis(1))
                .await
                .unwrap();
            store.cancel(q, claimed[2].lease.id, None).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            claimed
        }
        Op::Promote => {
            let spec = JobSpec::new("t").queue(q).delay(Duration::from_millis(1));
            store.enqueue_many(&[spec.clone(), spec]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            vec![]
        }
        Op::Expire => {
            enqueue(short, q, 1, 3).await;
            enqueue(short, q, 1, 1).await;
            let claimed = short.claim(q, "w", 2, LONG).await.unwrap();
            let ok = Outcome::Success(tether_store::encode(&1).unwrap());
            let e = error(false, Duration::ZERO);
            short.finish(&claimed[0].lease, &ok).await.unwrap();
            short.finish(&claimed[1].lease, &e).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            vec![]
        }
    }
}

/// Runs `op`; Ok(()) when the call succeeded.
async fn run(
    store: &Store,
    short: &Store,
    queue: &str,
    op: Op,
    leases: &[Claimed],
) -> Result<(), String> {
    let q = queue;
    let err = |e: tether_store::StoreError| e.to_string();
    match op {
        Op::Claim => store.claim(q, "w", 3, LONG).await.map(drop).map_err(err),
        Op::Renew => store
            .renew(q, &leases_of(leases), LONG)
            .await
            .map(drop)
            .map_err(err),
        Op::Progress => store
            .progress(&leases[0].lease, LONG, 50, Some("half"), None)
            .await
            .map(drop)
            .map_err(err),
        Op::Checkpoint => store
            .checkpoint(&leases[0].lease, tether_model::Phase::Check, b"\xc0")
            .await
            .map(drop)
            .map_err(err),
        Op::FinishSuccess | Op::FinishRetry | Op::FinishDead => {
            let outcomes = match op {
                Op::FinishSuccess => {
                    let ok = Outcome::Success(tether_store::encode(&1).unwrap());
                    [ok.clone(), ok]
                }
                Op::FinishRetry => [
                    error(true, Duration::ZERO),
                    error(true, Duration::from_secs(60)),
                ],
                _ => [error(false, Duration::ZERO), error(true, Duration::ZERO)],
            };
            let batch: Vec<_> = leases.iter().map(|c| &c.lease).zip(&outcomes).collect();
            let answers = store.finish_many(q, &batch).await.map_err(err)?;
            assert!(answers.iter().all(|a| a.is_ok()), "{answers:?}");
            Ok(())
        }
        Op::Release => store
            .release(q, &leases_of(leases))
            .await
            .map(drop)
            .map_err(err),
        Op::Reap => store.reap(q, 10).await.map(drop).map_err(err),
        Op::Promote => store.promote(q, 10).await.map(drop).map_err(err),
        Op::Expire => short.expire(q, 10).await.map(drop).map_err(err),
        Op::RetryDead => store
            .retry_dead(q, leases[0].lease.id, None)
            .await
            .map_err(err),
        Op::Delete => store
            .delete_final(q, leases[0].lease.id, None)
            .await
            .map_err(err),
    }
}

/// A queue key of the wrong type (a user's mistake) makes a script fail before it
/// changes anything; once the key is repaired, the same call succeeds and the queue
/// is consistent.
#[tokio::test]
async fn a_wrong_typed_key_makes_a_script_fail_before_its_first_write() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = connect(&redis).await;
    let short = Store::connect(StoreConfig {
        retention: Duration::from_millis(1),
        ..StoreConfig::new(redis.url())
    })
    .await
    .unwrap();
    let mut conn = redis.connection();
    let mut n = 0;
    let mut failures = Vec::new();
    let mut refused = 0;
    for op in OPS {
        for fixed in [
            "stream", "delayed", "leases", "jobs", "done", "dead", "counts",
        ] {
            n += 1;
            let queue = format!("wt{n}");
            let leases = prepare(&store, &short, &queue, op).await;
            let key = format!("tether:{{{queue}}}:{fixed}");
            let saved = format!("{key}.saved");
            let existed: bool = conn.exists(&key).unwrap();
            if existed {
                let _: () = conn.rename(&key, &saved).unwrap();
            }
            let _: () = conn.rpush(&key, "not a tether key").unwrap();
            let before = snapshot(&mut conn, &queue, &key);
            let first = run(&store, &short, &queue, op, &leases).await;
            let after = snapshot(&mut conn, &queue, &key);
            let _: () = conn.del(&key).unwrap();
            if existed {
                let _: () = conn.rename(&saved, &key).unwrap();
            }
            if let Err(e) = &first {
                refused += 1;
                if before != after {
                    let changed: Vec<_> = after
                        .iter()
                        .filter(|(k, v)| before.get(*k) != Some(*v))
                        .map(|(k, _)| k.clone())
                        .chain(before.keys().filter(|k| !after.contains_key(*k)).cloned())
                        .collect();
                    failures.push(format!(
                        "{op:?} with {fixed} wrong-typed failed ({e}) after changing {changed:?}"
                    ));
                    continue;
                }
                if let Err(e) = run(&store, &short, &queue, op, &leases).await {
                    failures.push(format!(
                        "{op:?} failed again once {fixed} was repaired: {e}"
                    ));
                    continue;
                }
            }
            let problems = store.check_consistency(&queue).await.unwrap();
            if !problems.is_empty() {
                failures.push(format!("{op:?} with {fixed} wrong-typed left {problems:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Each call is refused when a key it writes is wrong-typed (not vacuous).
    assert!(refused >= 30, "only {refused} calls were refused");
}

/// A claim whose only work is to expire a job past its start deadline still writes
/// `leases` (the finish takes the job out of it): a `leases` of the wrong type fails
/// the claim before it writes anything, not after the job was rewritten.
#[tokio::test]
async fn a_claim_that_only_expires_jobs_checks_the_leases_first() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = connect(&redis).await;
    let mut conn = redis.connection();
    let queue = "expiring";
    let spec = JobSpec::new("t")
        .queue(queue)
        .start_by(Duration::from_millis(20));
    let id = store.enqueue(&spec).await.unwrap().id;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let leases = format!("tether:{{{queue}}}:leases");
    let _: () = conn.set(&leases, "not a tether key").unwrap();
    let before = snapshot(&mut conn, queue, &leases);
    let refused = store.claim(queue, "w", 10, LONG).await;
    let after = snapshot(&mut conn, queue, &leases);
    assert!(refused.is_err(), "{refused:?}");
    assert!(before == after, "the refused claim changed the queue");
    let _: () = conn.del(&leases).unwrap();
    let claimed = store.claim(queue, "w", 10, LONG).await.unwrap();
    assert!(claimed.is_empty());
    let job = store.get(queue, id).await.unwrap().unwrap();
    assert_eq!(job.status, Status::Failure);
    assert_eq!(job.error_code, Some(ErrorCode::Expired));
    assert_consistent(&store, queue).await;
}

/// A job key that is not a hash is no job of Tether's: batch scripts pass over it
/// (its stream entry or lease entry is dropped) and handle the other jobs.
#[tokio::test]
async fn a_job_key_of_the_wrong_type_does_not_stop_a_batch() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = connect(&redis).await;
    let mut conn = redis.connection();
    let ids = enqueue(&store, "jk", 3, 3).await;
    let bad = format!("tether:{{jk}}:job:{}", ids[1]);
    let _: () = conn.del(&bad).unwrap();
    let _: () = conn.set(&bad, "not a hash").unwrap();
    let claimed = store.claim("jk", "w", 3, LONG).await.unwrap();
    let got: Vec<JobId> = claimed.iter().map(|c| c.lease.id).collect();
    assert_eq!(got, vec![ids[0], ids[2]]);
    let (_, statuses) = store.renew("jk", &leases_of(&claimed), LONG).await.unwrap();
    assert_eq!(statuses.len(), 2);
    let ok = Outcome::Success(tether_store::encode(&1).unwrap());
    let batch: Vec<_> = claimed.iter().map(|c| (&c.lease, &ok)).collect();
    assert!(
        store
            .finish_many("jk", &batch)
            .await
            .unwrap()
            .iter()
            .all(|a| a.is_ok())
    );
    for id in [ids[0], ids[2]] {
        let job = store.get("jk", id).await.unwrap().unwrap();
        assert_eq!(job.status, Status::Success);
    }
    let _: () = conn.del(&bad).unwrap();
    let _: () = redis::cmd("ZREM")
        .arg("tether:{jk}:jobs")
        .arg(ids[1].to_string())
        .query(&mut conn)
        .unwrap();
    assert_consistent(&store, "jk").await;
}

/// The same for plain jobs, which wait with no record (layout 4): a hand-made key where
/// one's record would go does not fail the claim half-way (its record is written
/// unread): that job is passed over, the others are leased, and nothing else moves.
#[tokio::test]
async fn a_taken_record_key_of_a_waiting_job_does_not_stop_a_claim() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = connect(&redis).await;
    let mut conn = redis.connection();
    let ids: Vec<JobId> = store
        .enqueue_many(&vec![JobSpec::new("t").queue("wk"); 3])
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let bad = format!("tether:{{wk}}:job:{}", ids[1]);
    let _: () = conn.set(&bad, "not a hash").unwrap();
    let claimed = store.claim("wk", "w", 3, LONG).await.unwrap();
    let got: Vec<JobId> = claimed.iter().map(|c| c.lease.id).collect();
    assert_eq!(got, vec![ids[0], ids[2]]);
    // (From "(-inf": not the pin that keeps the set's encoding.)
    let leases: u64 = conn.zcount("tether:{wk}:leases", "(-inf", "+inf").unwrap();
    assert_eq!(leases, 2, "only the two claimed jobs are leased");
    let ok = Outcome::Success(tether_store::encode(&1).unwrap());
    let batch: Vec<_> = claimed.iter().map(|c| (&c.lease, &ok)).collect();
    let answers = store.finish_many("wk", &batch).await.unwrap();
    assert!(answers.iter().all(|a| a.is_ok()), "{answers:?}");
    // The passed-over job is still waiting, its entry consumed: the check names it.
    let problems = store.check_consistency("wk").await.unwrap();
    assert!(
        problems.iter().any(|p| p.contains(&ids[1].to_string())),
        "{problems:?}"
    );
}

/// A cancel refused by a key of the wrong type changes nothing, a plain job's too: it
/// waits with no record (layout 4), and the cancel gives it one only once every key it
/// writes has been checked.
#[tokio::test]
async fn a_refused_cancel_of_a_waiting_job_changes_nothing() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = connect(&redis).await;
    let mut conn = redis.connection();
    let queue = "wc";
    let id = store
        .enqueue(&JobSpec::new("t").queue(queue))
        .await
        .unwrap()
        .id;
    let cascade = format!("tether:{{{queue}}}:cascade");
    let _: () = conn.set(&cascade, "not a tether key").unwrap();
    let before = snapshot(&mut conn, queue, &cascade);
    let refused = store.cancel(queue, id, None).await;
    let after = snapshot(&mut conn, queue, &cascade);
    assert!(refused.is_err(), "{refused:?}");
    assert!(before == after, "the refused cancel changed the queue");
    let _: () = conn.del(&cascade).unwrap();
    store.cancel(queue, id, None).await.unwrap();
    assert_eq!(
        store.get(queue, id).await.unwrap().unwrap().status,
        Status::Cancelled
    );
    assert_consistent(&store, queue).await;
}

/// A lease entry whose job is not processing is cleaned up by the reaper but not
/// reported as a job taken back.
#[tokio::test]
async fn reap_tells_stale_lease_entries_from_jobs_taken_back() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = connect(&redis).await;
    let mut conn = redis.connection();
    let ids = enqueue(&store, "st", 2, 3).await;
    // Long enough to finish the first job before it lapses (a lapsed lease records
    // nothing); the second then lapses.
    let claimed = store
        .claim("st", "w", 2, Duration::from_millis(200))
        .await
        .unwrap();
    let ok = Outcome::Success(tether_store::encode(&1).unwrap());
    store.finish(&claimed[0].lease, &ok).await.unwrap();
    // A lease entry left behind for the finished job (as a lost write could leave it).
    let _: () = conn
        .zadd("tether:{st}:leases", ids[0].to_string(), 1)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let reaped = store.reap("st", 10).await.unwrap();
    assert_eq!(reaped.requeued, vec![ids[1]], "{reaped:?}");
    assert_eq!(reaped.stale, 1, "{reaped:?}");
    assert_eq!(reaped.len(), 1, "only the job taken back counts");
    assert_consistent(&store, "st").await;
}

/// A claim whose reply was lost (timeout) is resent with the same claim id and
/// answered with the jobs it leased, instead of leasing them to nobody: a job with
/// one attempt still runs, once, and succeeds.
#[tokio::test]
async fn a_claim_resent_after_a_lost_reply_gets_its_jobs() {
    let redis = RedisServer::start(RedisOptions::default());
    let proxy = tether_testkit::FaultProxy::start(redis.port());
    let store = Store::connect(StoreConfig {
        response_timeout: Duration::from_millis(500),
        ..StoreConfig::new(proxy.url())
    })
    .await
    .unwrap();
    let ids = enqueue(&store, "lost", 1, 1).await;
    proxy.set_latency(Duration::from_millis(350));
    let claim = tokio::spawn({
        let store = store.clone();
        async move { store.claim("lost", "w", 1, LONG).await }
    });
    // The request reaches Redis at ~350 ms and the job is leased; the reply would
    // arrive at ~700 ms, after the client gave up at 500 ms.
    tokio::time::sleep(Duration::from_millis(450)).await;
    proxy.set_latency(Duration::ZERO);
    let claimed = claim
        .await
        .unwrap()
        .expect("the claim answers though its first reply was lost");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].lease.id, ids[0]);
    assert_eq!(claimed[0].attempts, 1);
    let ok = Outcome::Success(tether_store::encode(&1).unwrap());
    store.finish(&claimed[0].lease, &ok).await.unwrap();
    let job = store.get("lost", ids[0]).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (Status::Success, 1));
    assert_consistent(&store, "lost").await;
}

/// Out of memory (`maxmemory` reached, `noeviction`), Redis refuses a script at its
/// first write when that is a denyoom command. Every script's first write is one, so
/// a refused call changed nothing (no job is claimed that could not be finished);
/// once memory is available again the same call succeeds.
#[tokio::test]
async fn out_of_memory_a_script_changes_nothing() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = connect(&redis).await;
    let short = Store::connect(StoreConfig {
        retention: Duration::from_millis(1),
        ..StoreConfig::new(redis.url())
    })
    .await
    .unwrap();
    let mut conn = redis.connection();
    let mut failures = Vec::new();
    let mut refused = 0;
    for (n, op) in OPS.into_iter().enumerate() {
        let queue = format!("oom{n}");
        let leases = prepare(&store, &short, &queue, op).await;
        let before = snapshot(&mut conn, &queue, "");
        let _: () = redis::cmd("CONFIG")
            .arg(&["SET", "maxmemory-policy", "noeviction", "maxmemory", "1"])
            .query(&mut conn)
            .unwrap();
        let first = run(&store, &short, &queue, op, &leases).await;
        let _: () = redis::cmd("CONFIG")
            .arg(&["SET", "maxmemory", "0"])
            .query(&mut conn)
            .unwrap();
        let after = snapshot(&mut conn, &queue, "");
        if let Err(e) = &first {
            refused += 1;
            if before != after {
                failures.push(format!("{op:?} was refused ({e}) after changing the queue"));
                continue;
            }
            if let Err(e) = run(&store, &short, &queue, op, &leases).await {
                failures.push(format!("{op:?} failed again with memory available: {e}"));
                continue;
            }
        }
        let problems = store.check_consistency(&queue).await.unwrap();
        if !problems.is_empty() {
            failures.push(format!("{op:?} out of memory left {problems:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(refused >= 8, "only {refused} calls were refused");
}

/// When even the resends of a claim time out, the claim is still the one sent next
/// time, so its jobs are answered then instead of being left to lapse (with one
/// attempt, that would fail the job without it ever running).
#[tokio::test]
async fn a_claim_whose_resends_failed_too_is_answered_by_the_next_claim() {
    let redis = RedisServer::start(RedisOptions::default());
    let proxy = tether_testkit::FaultProxy::start(redis.port());
    let store = Store::connect(StoreConfig {
        response_timeout: Duration::from_millis(500),
        ..StoreConfig::new(proxy.url())
    })
    .await
    .unwrap();
    // The function library loaded (loading it would not fit in the timeout below).
    assert!(store.claim("later", "w", 1, LONG).await.unwrap().is_empty());
    let ids = enqueue(&store, "later", 1, 1).await;
    // Every request reaches Redis (at ~350 ms), every reply comes too late (~700 ms).
    proxy.set_latency(Duration::from_millis(350));
    let first = store.claim("later", "w", 1, LONG).await;
    assert!(first.is_err(), "{first:?}");
    let mut conn = redis.connection();
    let st: String = conn
        .hget(format!("tether:{{later}}:job:{}", ids[0]), "st")
        .unwrap();
    assert_eq!(st, "processing", "the lost claim leased the job");
    proxy.set_latency(Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let claimed = store.claim("later", "w", 1, LONG).await.unwrap();
    assert_eq!(claimed.len(), 1, "the job of the unanswered claim");
    assert_eq!((claimed[0].lease.id, claimed[0].attempts), (ids[0], 1));
    let ok = Outcome::Success(tether_store::encode(&1).unwrap());
    store.finish(&claimed[0].lease, &ok).await.unwrap();
    let job = store.get("later", ids[0]).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (Status::Success, 1));
    assert_consistent(&store, "later").await;
}

/// The claim record and the counters are checked like the fixed keys: a wrong-typed
/// claim record or a count that is not an integer fails the call before any write.
#[tokio::test]
async fn a_bad_claim_record_or_count_fails_a_call_before_any_write() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = connect(&redis).await;
    let mut conn = redis.connection();
    enqueue(&store, "cr", 2, 3).await;
    let _: () = conn.rpush("tether:{cr}:claim:w", "x").unwrap();
    let before = snapshot(&mut conn, "cr", "");
    let refused = store.claim("cr", "w", 2, LONG).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(before, snapshot(&mut conn, "cr", ""), "nothing changed");
    let _: () = conn.del("tether:{cr}:claim:w").unwrap();
    let claimed = store.claim("cr", "w", 2, LONG).await.unwrap();
    assert_eq!(claimed.len(), 2);

    let _: () = conn.hset("tether:{cr}:counts", "success", "many").unwrap();
    let before = snapshot(&mut conn, "cr", "");
    let ok = Outcome::Success(tether_store::encode(&1).unwrap());
    let refused = store.finish(&claimed[0].lease, &ok).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(before, snapshot(&mut conn, "cr", ""), "nothing changed");
    let _: () = conn.hdel("tether:{cr}:counts", "success").unwrap();
    store.finish(&claimed[0].lease, &ok).await.unwrap();
    assert_consistent(&store, "cr").await;
}

/// The queue's count of enqueues is the enqueue's first write, so a count that is not an
/// integer (or a counts key that is no hash) refuses the enqueue with nothing written.
#[tokio::test]
async fn a_bad_enqueue_count_refuses_an_enqueue_before_any_write() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = connect(&redis).await;
    let mut conn = redis.connection();
    enqueue(&store, "ec", 1, 3).await;
    for bad in ["many", "9223372036854775807"] {
        let _: () = conn.hset("tether:{ec}:counts", "enqueued", bad).unwrap();
        let before = snapshot(&mut conn, "ec", "");
        let refused = store
            .enqueue_many(&[JobSpec::new("t").queue("ec"), JobSpec::new("t").queue("ec")])
            .await;
        assert!(refused.is_err(), "{bad}: {refused:?}");
        assert_eq!(
            before,
            snapshot(&mut conn, "ec", ""),
            "{bad}: nothing changed"
        );
    }
    let _: () = conn.hset("tether:{ec}:counts", "enqueued", "1").unwrap();
    enqueue(&store, "ec", 2, 3).await;
    assert_eq!(store.stats("ec").await.unwrap().enqueued, 3);
    assert_consistent(&store, "ec").await;
}

/// An owner's count of unfinished jobs is checked like the queue's counts: one that is
/// not an integer fails an enqueue, a finish, a cancel before any write.
#[tokio::test]
async fn a_bad_owner_count_fails_a_call_before_any_write() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = connect(&redis).await;
    let mut conn = redis.connection();
    let spec = || JobSpec::new("noop").queue("oc").owner("alice");
    store.enqueue(&spec()).await.unwrap();
    let waiting = store.enqueue(&spec()).await.unwrap();
    let claimed = store.claim("oc", "w", 1, LONG).await.unwrap();
    let _: () = conn.hset("tether:{oc}:active", "alice", "many").unwrap();
    let before = snapshot(&mut conn, "oc", "");
    let refused = store.enqueue(&spec()).await;
    assert!(refused.is_err(), "{refused:?}");
    let ok = Outcome::Success(tether_store::encode(&1).unwrap());
    let refused = store.finish(&claimed[0].lease, &ok).await;
    assert!(refused.is_err(), "{refused:?}");
    let refused = store.cancel("oc", waiting.id, None).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(before, snapshot(&mut conn, "oc", ""), "nothing changed");
    let _: () = conn.hset("tether:{oc}:active", "alice", 2).unwrap();
    store.finish(&claimed[0].lease, &ok).await.unwrap();
    store.cancel("oc", waiting.id, None).await.unwrap();
    assert_consistent(&store, "oc").await;
}

/// The schedule scripts check the sorted sets they write: a wrong-typed index of
/// schedules fails a call before its first write.
#[tokio::test]
async fn a_wrong_typed_schedule_index_fails_a_call_before_any_write() {
    use tether_model::schedule::{ScheduleSpec, Trigger};
    let redis = RedisServer::start(RedisOptions::default());
    let store = connect(&redis).await;
    let mut conn = redis.connection();
    let every = Trigger::every(Duration::from_secs(60)).unwrap();
    let spec = |name: &str| ScheduleSpec::new(name, JobSpec::new("noop"), every.clone());
    let create = tether_store::PutMode::Create;
    store
        .put_schedule(None, &spec("kept"), create)
        .await
        .unwrap();
    let schedules =
        |conn: &mut redis::Connection| dump(conn, "tether:{~sched}:*", "tether:{~sched}:due");
    let _: () = conn.del("tether:{~sched}:due").unwrap();
    let _: () = conn.rpush("tether:{~sched}:due", "x").unwrap();
    let before = schedules(&mut conn);
    let refused = store.put_schedule(None, &spec("new"), create).await;
    assert!(refused.is_err(), "{refused:?}");
    let refused = store.pause_schedule(None, "kept").await;
    assert!(refused.is_err(), "{refused:?}");
    let refused = store.delete_schedule(None, "kept").await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(before, schedules(&mut conn), "nothing changed");
    let _: () = conn.del("tether:{~sched}:due").unwrap();
    store
        .put_schedule(None, &spec("new"), create)
        .await
        .unwrap();
    store.delete_schedule(None, "kept").await.unwrap();
}

/// A server can lose the function library (a restart without persistence, a
/// `FUNCTION FLUSH`, a new node): the next call loads it there and goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_lost_the_function_library_is_given_it_again() {
    for topology in [Topology::Single, Topology::Cluster] {
        let redis = TestRedis::start(topology);
        let flush_everywhere = || {
            let nodes: Vec<&RedisServer> = match &redis {
                TestRedis::Single(server) => vec![server],
                TestRedis::Cluster(cluster) => cluster.nodes().iter().collect(),
            };
            for node in nodes {
                let _: () = redis::cmd("FUNCTION")
                    .arg("FLUSH")
                    .query(&mut node.connection())
                    .unwrap();
            }
        };
        let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
        enqueue(&store, "lost", 3, 1).await;
        flush_everywhere();
        let claimed = store.claim("lost", "w", 10, LONG).await.unwrap();
        assert_eq!(claimed.len(), 3, "{topology:?}");
        flush_everywhere();
        let ok = Outcome::Success(tether_store::encode(&1).unwrap());
        for job in &claimed {
            store.finish(&job.lease, &ok).await.unwrap();
        }
        flush_everywhere();
        assert_consistent(&store, "lost").await;
        assert_eq!(store.stats("lost").await.unwrap().success, 3);
    }
}
