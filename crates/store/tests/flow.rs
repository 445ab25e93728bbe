//! Flow control in the claim: priorities, round-robin between groups, the queue's and
//! each group's concurrency and rate, pause (of a queue or one type), start deadlines
//! and snooze. Each runs on one Redis and on a three-master cluster.

use std::time::Duration;

use tether_model::{ErrorCode, JobId, JobSpec, LimitsPatch, Status};
use tether_store::{Claimed, Outcome, Store, StoreConfig};
use tether_testkit::{RedisEndpoint, TestRedis, Topology};

const LONG: Duration = Duration::from_secs(60);

async fn store(redis: &impl RedisEndpoint) -> Store {
    Store::connect(StoreConfig::new(redis.url())).await.unwrap()
}

fn job(tag: &str) -> JobSpec {
    JobSpec::new("t")
        .queue("q")
        .input(&tag)
        .unwrap()
        .max_attempts(3)
}

async fn enqueue(store: &Store, spec: JobSpec) -> JobId {
    store.enqueue(&spec).await.unwrap().id
}

fn tags(claimed: &[Claimed]) -> Vec<String> {
    claimed
        .iter()
        .map(|c| tether_store::decode::<String>("input", &c.input).unwrap_or_default())
        .collect()
}

async fn claim(store: &Store, n: usize) -> Vec<Claimed> {
    store.claim("q", "w", n, LONG).await.unwrap()
}

async fn clean(store: &Store) {
    assert_eq!(
        store.check_consistency("q").await.unwrap(),
        Vec::<String>::new()
    );
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod single {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(tether_testkit::Topology::Single).await; })*
        }
        mod cluster {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(tether_testkit::Topology::Cluster).await; })*
        }
    };
}

on_both!(
    lower_priorities_run_first,
    groups_take_turns,
    queue_concurrency_counts_live_leases,
    queue_rate_is_a_sliding_second,
    group_limits_hold_back_only_that_group,
    a_paused_queue_starts_nothing,
    a_paused_type_waits_while_others_run,
    start_deadlines_expire_unstarted_jobs,
    a_snooze_does_not_spend_the_attempt,
    a_lapsed_lease_records_nothing,
    a_start_deadline_binds_only_the_first_start,
    held_jobs_of_a_type_no_longer_paused_come_back,
    a_group_with_thousands_of_leases_does_not_break_claims,
);

async fn lower_priorities_run_first(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = store(&redis).await;
    for (p, tag) in [
        (9, "low"),
        (5, "mid"),
        (0, "top"),
        (5, "mid2"),
        (0, "top2"),
        (7, "l7"),
    ] {
        enqueue(&store, job(tag).priority(p)).await;
    }
    let mut order = Vec::new();
    for _ in 0..6 {
        order.extend(tags(&claim(&store, 1).await));
    }
    assert_eq!(order, ["top", "top2", "mid", "mid2", "l7", "low"]);
    // A batch too, and a priority-0 job enqueued behind a backlog is the next one out.
    let specs: Vec<JobSpec> = (0..50).map(|i| job(&format!("b{i}")).priority(9)).collect();
    store.enqueue_many(&specs).await.unwrap();
    assert_eq!(tags(&claim(&store, 10).await).len(), 10);
    enqueue(&store, job("urgent").priority(0)).await;
    assert_eq!(tags(&claim(&store, 1).await), ["urgent"]);
    clean(&store).await;
}

async fn groups_take_turns(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = store(&redis).await;
    for i in 0..6 {
        enqueue(&store, job(&format!("a{i}")).group("a")).await;
    }
    for g in ["b", "c"] {
        for i in 0..2 {
            enqueue(&store, job(&format!("{g}{i}")).group(g)).await;
        }
    }
    // Ungrouped jobs take part as one more member.
    enqueue(&store, job("none")).await;
    let mut order = Vec::new();
    for _ in 0..4 {
        order.extend(tags(&claim(&store, 1).await));
    }
    assert_eq!(order, ["a0", "b0", "c0", "none"]);
    // A batch takes turns too, starting where the last claim stopped.
    assert_eq!(tags(&claim(&store, 4).await), ["a1", "b1", "c1", "a2"]);
    assert_eq!(tags(&claim(&store, 10).await), ["a3", "a4", "a5"]);
    // The owner is the default group.
    enqueue(&store, job("o1").owner("acme")).await;
    enqueue(&store, job("o2").owner("acme")).await;
    enqueue(&store, job("x").group("x")).await;
    assert_eq!(tags(&claim(&store, 3).await), ["o1", "x", "o2"]);
    let got = store.get("q", enqueue(&store, job("o3").owner("acme")).await);
    assert_eq!(got.await.unwrap().unwrap().group.as_deref(), Some("acme"));
    clean(&store).await;
}

async fn queue_concurrency_counts_live_leases(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = store(&redis).await;
    let limit = |n| LimitsPatch {
        concurrency: Some(n),
        ..Default::default()
    };
    store.set_limits("q", &limit(Some(2))).await.unwrap();
    for i in 0..6 {
        enqueue(&store, job(&format!("j{i}"))).await;
    }
    let first = store.claim_batch("q", "w", 10, LONG).await.unwrap();
    assert_eq!(first.jobs.len(), 2);
    let again = store.claim_batch("q", "w", 10, LONG).await.unwrap();
    assert!(again.jobs.is_empty());
    assert!(again.held_back.is_some(), "{:?}", again.held_back);
    // A finished job frees its slot.
    let ok = Outcome::Success(tether_store::encode(&"ok").unwrap());
    store.finish(&first.jobs[0].lease, &ok).await.unwrap();
    assert_eq!(claim(&store, 10).await.len(), 1);
    // A lapsed lease frees its slot at once (before any reaper).
    store.set_limits("q", &limit(Some(3))).await.unwrap();
    let short = store
        .claim("q", "w", 10, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(short.len(), 1);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(claim(&store, 10).await.len(), 1);
    store.set_limits("q", &limit(None)).await.unwrap();
    assert_eq!(claim(&store, 10).await.len(), 1);
    clean(&store).await;
}

async fn queue_rate_is_a_sliding_second(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = store(&redis).await;
    let rate = LimitsPatch {
        rate: Some(Some(3)),
        ..Default::default()
    };
    store.set_limits("q", &rate).await.unwrap();
    for i in 0..10 {
        enqueue(&store, job(&format!("j{i}"))).await;
    }
    let first = store.claim_batch("q", "w", 10, LONG).await.unwrap();
    assert_eq!(first.jobs.len(), 3);
    let held = store.claim_batch("q", "w", 10, LONG).await.unwrap();
    assert!(held.jobs.is_empty());
    let held_back = held
        .held_back
        .expect("a rate-limited claim says when to come back");
    assert_eq!(held_back.limit, "rate");
    let wait = held_back.retry_after;
    assert!(wait <= Duration::from_millis(1000), "{wait:?}");
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    assert_eq!(claim(&store, 10).await.len(), 3);
    let state = store.flow_state("q").await.unwrap();
    assert_eq!(state.settings.rate, Some(3));
    assert!(state.starts_last_second >= 3, "{state:?}");
    clean(&store).await;
}

async fn group_limits_hold_back_only_that_group(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = store(&redis).await;
    let limits = LimitsPatch {
        group_concurrency: Some(Some(1)),
        ..Default::default()
    };
    store.set_limits("q", &limits).await.unwrap();
    for g in ["a", "b"] {
        for i in 0..3 {
            enqueue(&store, job(&format!("{g}{i}")).group(g)).await;
        }
    }
    enqueue(&store, job("free")).await;
    let first = claim(&store, 10).await;
    assert_eq!(tags(&first), ["a0", "b0", "free"]);
    let held = store.claim_batch("q", "w", 10, LONG).await.unwrap();
    assert!(held.jobs.is_empty() && held.held_back.is_some());
    // Finishing a's job lets a's next one start; b stays at its limit.
    let ok = Outcome::Success(tether_store::encode(&"ok").unwrap());
    store.finish(&first[0].lease, &ok).await.unwrap();
    assert_eq!(tags(&claim(&store, 10).await), ["a1"]);
    // A group rate: at most 2 starts of a group per second.
    let limits = LimitsPatch {
        group_concurrency: Some(None),
        group_rate: Some(Some(2)),
        ..Default::default()
    };
    store.set_limits("q", &limits).await.unwrap();
    for i in 0..5 {
        enqueue(&store, job(&format!("c{i}")).group("c")).await;
    }
    let got = tags(&claim(&store, 10).await);
    assert_eq!(
        got.iter().filter(|t| t.starts_with('c')).count(),
        2,
        "{got:?}"
    );
    clean(&store).await;
}

async fn a_paused_queue_starts_nothing(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = store(&redis).await;
    let settings = store.pause("q", None).await.unwrap();
    assert!(settings.paused);
    enqueue(&store, job("waits")).await;
    let held = store.claim_batch("q", "w", 10, LONG).await.unwrap();
    assert!(held.jobs.is_empty() && held.held_back.is_some());
    assert!(!store.resume("q", None).await.unwrap().paused);
    assert_eq!(tags(&claim(&store, 10).await), ["waits"]);
    clean(&store).await;
}

async fn a_paused_type_waits_while_others_run(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = store(&redis).await;
    let settings = store.pause("q", Some("slow")).await.unwrap();
    assert_eq!(settings.paused_types, ["slow"]);
    enqueue(
        &store,
        JobSpec::new("slow").queue("q").input(&"s1").unwrap(),
    )
    .await;
    enqueue(&store, job("t1")).await;
    enqueue(
        &store,
        JobSpec::new("slow")
            .queue("q")
            .input(&"s2")
            .unwrap()
            .group("g"),
    )
    .await;
    assert_eq!(tags(&claim(&store, 10).await), ["t1"]);
    assert!(claim(&store, 10).await.is_empty());
    clean(&store).await;
    let settings = store.resume("q", Some("slow")).await.unwrap();
    assert!(settings.paused_types.is_empty());
    let mut resumed = tags(&claim(&store, 10).await);
    resumed.sort();
    assert_eq!(resumed, ["s1", "s2"]);
    clean(&store).await;
}

async fn start_deadlines_expire_unstarted_jobs(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = store(&redis).await;
    let late = enqueue(&store, job("late").start_by(Duration::from_millis(50))).await;
    let delayed = enqueue(
        &store,
        job("delayed")
            .delay(Duration::from_secs(30))
            .start_by(Duration::from_millis(50)),
    )
    .await;
    let in_time = enqueue(&store, job("in-time").start_by(Duration::from_secs(60))).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The maintenance pass expires what waits, wherever it waits.
    let mut expired = store.expire_unstarted("q", 100).await.unwrap();
    expired.sort();
    let mut want = vec![late, delayed];
    want.sort();
    assert_eq!(expired, want);
    for id in [late, delayed] {
        let job = store.get("q", id).await.unwrap().unwrap();
        assert_eq!(job.status, Status::Failure);
        assert_eq!(job.error_code, Some(ErrorCode::Expired));
        assert_eq!(job.attempts, 0);
    }
    // A claim that meets a job past its deadline expires it instead of starting it.
    let raced = enqueue(&store, job("raced").start_by(Duration::from_millis(30))).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(tags(&claim(&store, 10).await), ["in-time"]);
    let job = store.get("q", raced).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (Status::Failure, 0));
    // A started job is past its deadline's reach.
    assert!(store.expire_unstarted("q", 100).await.unwrap().is_empty());
    let started = store.get("q", in_time).await.unwrap().unwrap();
    assert_eq!(started.status, Status::Processing);
    assert!(started.start_by.is_some());
    clean(&store).await;
}

async fn a_snooze_does_not_spend_the_attempt(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = store(&redis).await;
    let concurrency = LimitsPatch {
        concurrency: Some(Some(1)),
        ..Default::default()
    };
    store.set_limits("q", &concurrency).await.unwrap();
    let id = enqueue(&store, job("sleepy")).await;
    enqueue(&store, job("other")).await;
    let first = claim(&store, 1).await;
    assert_eq!(first[0].attempts, 1);
    store
        .snooze(&first[0].lease, Duration::from_millis(50))
        .await
        .unwrap();
    let job = store.get("q", id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (Status::Pending, 0));
    // The slot is free at once: the other job starts.
    assert_eq!(tags(&claim(&store, 1).await), ["other"]);
    // A second snooze of the same lease changes nothing (a stale holder).
    assert!(
        store
            .snooze(&first[0].lease, Duration::ZERO)
            .await
            .is_ok_and(|o| o == tether_store::SnoozeOutcome::AlreadyEnded)
    );
    clean(&store).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    store.promote("q", 10).await.unwrap();
    store
        .set_limits(
            "q",
            &LimitsPatch {
                concurrency: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let again = claim(&store, 1).await;
    assert_eq!(
        (tags(&again), again[0].attempts),
        (vec!["sleepy".to_owned()], 1)
    );
    clean(&store).await;
}

/// A lapsed lease frees its slot at once, so it must not record an outcome or renew
/// afterwards: the job that took the slot would overlap it.
async fn a_lapsed_lease_records_nothing(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = store(&redis).await;
    let one = LimitsPatch {
        concurrency: Some(Some(1)),
        ..Default::default()
    };
    store.set_limits("q", &one).await.unwrap();
    enqueue(&store, job("first")).await;
    enqueue(&store, job("second")).await;
    let first = store
        .claim("q", "w", 1, Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(tags(&claim(&store, 1).await), ["second"]);
    let (_, renewed) = store
        .renew(
            "q",
            &[(first[0].lease.id, first[0].lease.token.clone())],
            LONG,
        )
        .await
        .unwrap();
    assert_eq!(renewed, [tether_store::RenewStatus::Lost]);
    let ok = Outcome::Success(tether_store::encode(&"late").unwrap());
    let late = store.finish(&first[0].lease, &ok).await;
    assert!(
        matches!(late, Err(tether_store::LeaseError::Lost)),
        "{late:?}"
    );
    clean(&store).await;
}

/// A job that started keeps its `start_by` on record, but no later claim of it (after a
/// snooze, a retry, a hand-back) may expire it.
async fn a_start_deadline_binds_only_the_first_start(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = store(&redis).await;
    let id = enqueue(&store, job("once").start_by(Duration::from_millis(100))).await;
    let first = claim(&store, 1).await;
    store.snooze(&first[0].lease, Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(store.expire_unstarted("q", 100).await.unwrap().is_empty());
    assert_eq!(tags(&claim(&store, 1).await), ["once"]);
    let job = store.get("q", id).await.unwrap().unwrap();
    assert_eq!(job.status, Status::Processing);
    clean(&store).await;
}

/// A resume that stopped half-way (a crash, an error) leaves held jobs of a type no
/// longer paused: maintenance puts them back.
async fn held_jobs_of_a_type_no_longer_paused_come_back(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = store(&redis).await;
    store.pause("q", Some("slow")).await.unwrap();
    for i in 0..3 {
        let spec = JobSpec::new("slow")
            .queue("q")
            .input(&format!("s{i}"))
            .unwrap();
        enqueue(&store, spec).await;
    }
    assert!(claim(&store, 10).await.is_empty());
    // The type leaves the paused list, but its held jobs are not put back (as when the
    // resuming process dies right after that step).
    let key = "tether:{q}:settings";
    let node = match &redis {
        TestRedis::Single(server) => server,
        TestRedis::Cluster(cluster) => cluster.master_for(key),
    };
    let removed: i64 = redis::cmd("HDEL")
        .arg(key)
        .arg("ptypes")
        .query(&mut node.connection())
        .unwrap();
    assert_eq!(removed, 1);
    assert!(
        claim(&store, 10).await.is_empty(),
        "held jobs came back on their own"
    );
    store.release_held("q").await.unwrap();
    assert_eq!(claim(&store, 10).await.len(), 3);
    clean(&store).await;
}

/// A group's lease set larger than Lua can unpack at once (about 8,000) is counted in
/// chunks: a group limit set on such a group must not make every claim fail.
async fn a_group_with_thousands_of_leases_does_not_break_claims(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = store(&redis).await;
    let specs: Vec<JobSpec> = (0..9_001)
        .map(|i| job(&format!("g{i}")).group("big"))
        .collect();
    store.enqueue_many(&specs).await.unwrap();
    let running = store.claim("q", "w", 9_000, LONG).await.unwrap();
    assert_eq!(running.len(), 9_000);
    let limit = LimitsPatch {
        group_concurrency: Some(Some(10_000)),
        ..Default::default()
    };
    store.set_limits("q", &limit).await.unwrap();
    assert_eq!(claim(&store, 10).await.len(), 1);
    clean(&store).await;
}
