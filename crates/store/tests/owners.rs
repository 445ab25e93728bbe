//! Owners share one Redis: an owner's list costs what that owner has, and an
//! owner's jobs cannot exhaust what others can do. Features that touch the
//! keyspace run on one Redis and on a three-master cluster.

use std::time::{Duration, Instant};

use tether_model::{ErrorCode, JobSpec};
use tether_store::{ListQuery, Outcome, SortDir, SortKey, Store, StoreConfig, StoreError};
use tether_testkit::{RedisEndpoint, RedisOptions, RedisServer, TestRedis, Topology};

async fn store(redis: &impl RedisEndpoint) -> Store {
    Store::connect(StoreConfig::new(redis.url())).await.unwrap()
}

fn owned(owner: &str, queue: &str) -> JobSpec {
    JobSpec::new("t")
        .queue(queue)
        .owner(owner)
        .delay(Duration::from_secs(3600))
}

/// How many times Redis ran `command` since the last reset.
async fn calls(store: &Store, command: &str) -> u64 {
    let stats = store.server_info("commandstats").await.unwrap();
    stats
        .get(&format!("cmdstat_{command}"))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.strip_prefix("calls="))
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owners_list_does_not_read_other_owners_jobs() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = store(&redis).await;
    let alices = store.enqueue(&owned("alice", "default")).await.unwrap().id;
    let bobs: Vec<JobSpec> = (0..20_000).map(|_| owned("bob", "default")).collect();
    store.enqueue_many(&bobs).await.unwrap();
    let query = ListQuery {
        owner: Some("alice".into()),
        limit: 1,
        ..ListQuery::default()
    };
    store.reset_server_stats().await.unwrap();
    let started = Instant::now();
    let page = store.list(&query).await.unwrap();
    let took = started.elapsed();
    let read = calls(&store, "hmget").await;
    println!("alice's limit=1 list with 20,000 of bob's jobs: {took:?}, {read} records read");
    assert_eq!(page.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [alices]);
    assert!(
        read <= 4,
        "alice's list read {read} job records to find her one job"
    );
}

async fn owner_lists_page_across_queues(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = store(&redis).await;
    let queues = match &redis {
        TestRedis::Cluster(c) => c.names_on_every_master("q", 1),
        TestRedis::Single(_) => vec!["q0".into(), "q1".into(), "q2".into()],
    };
    let mut alices = Vec::new();
    for round in 0..3 {
        for queue in &queues {
            alices.push(store.enqueue(&owned("alice", queue)).await.unwrap().id);
            store.enqueue(&owned("bob", queue)).await.unwrap();
            if round == 0 {
                // An owner name is a key's tail: odd characters stay data.
                store.enqueue(&owned("a}{b:*", queue)).await.unwrap();
            }
        }
    }
    for sort_key in [SortKey::CreatedAt, SortKey::Type, SortKey::Id] {
        let mut seen = Vec::new();
        let mut marker = None;
        loop {
            let page = store
                .list(&ListQuery {
                    owner: Some("alice".into()),
                    sort_key,
                    sort_dir: SortDir::Asc,
                    limit: 2,
                    marker,
                    ..ListQuery::default()
                })
                .await
                .unwrap();
            assert!(
                page.jobs
                    .iter()
                    .all(|j| j.owner.as_deref() == Some("alice"))
            );
            seen.extend(page.jobs.iter().map(|j| j.id));
            match page.next_marker {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        let mut expected = alices.clone();
        expected.sort();
        assert_eq!(seen, expected, "{sort_key:?}");
    }
    let odd = store
        .list(&ListQuery {
            owner: Some("a}{b:*".into()),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(odd.jobs.len(), queues.len());
    // Another owner's job is not a marker for alice.
    let bobs = store
        .list(&ListQuery {
            owner: Some("bob".into()),
            limit: 1,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    let foreign = store
        .list(&ListQuery {
            owner: Some("alice".into()),
            marker: Some(bobs.jobs[0].id),
            ..ListQuery::default()
        })
        .await;
    assert!(matches!(foreign, Err(e) if e.is_not_found()));
    for queue in &queues {
        assert_eq!(
            store.check_consistency(queue).await.unwrap(),
            Vec::<String>::new()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_owner_lists_page_across_queues() {
    owner_lists_page_across_queues(Topology::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_owner_lists_page_across_queues() {
    owner_lists_page_across_queues(Topology::Cluster).await;
}

async fn store_with(redis: &impl RedisEndpoint, adjust: impl FnOnce(&mut StoreConfig)) -> Store {
    let mut config = StoreConfig::new(redis.url());
    adjust(&mut config);
    Store::connect(config).await.unwrap()
}

fn ready(owner: &str) -> JobSpec {
    JobSpec::new("t").queue("q").owner(owner)
}

async fn pending_quota_follows_every_transition(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = store_with(&redis, |c| c.max_pending_per_owner = 2).await;
    let over = |r: Result<tether_store::Enqueued, StoreError>| {
        assert!(
            matches!(
                r,
                Err(StoreError::QuotaExceeded {
                    pending: 2..,
                    quota: 2
                })
            ),
            "{r:?}"
        )
    };
    store.enqueue(&ready("alice")).await.unwrap();
    let second = store.enqueue(&ready("alice")).await.unwrap().id;
    over(store.enqueue(&ready("alice")).await);
    // A batch past the quota is refused whole: bob's job in it is not written either.
    let batch = store.enqueue_many(&[ready("bob"), ready("alice")]).await;
    assert!(
        matches!(batch, Err(StoreError::QuotaExceeded { .. })),
        "{batch:?}"
    );
    let bobs = ListQuery {
        owner: Some("bob".into()),
        ..ListQuery::default()
    };
    assert!(store.list(&bobs).await.unwrap().jobs.is_empty());
    // Jobs without an owner are not counted (priority 9: alice's jobs run first).
    store
        .enqueue(&JobSpec::new("t").queue("q").priority(9))
        .await
        .unwrap();

    // Success frees a place.
    let first = store
        .claim("q", "w", 1, Duration::from_secs(30))
        .await
        .unwrap();
    let success = Outcome::Success(tether_store::encode(&"ok").unwrap());
    store.finish(&first[0].lease, &success).await.unwrap();
    let third = store.enqueue(&ready("alice")).await.unwrap().id;
    over(store.enqueue(&ready("alice")).await);
    // A lease that lapses goes back to pending: still counted.
    let claimed = store
        .claim("q", "w", 1, Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(claimed[0].lease.id, second);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(store.reap("q", 10).await.unwrap().requeued, vec![second]);
    over(store.enqueue(&ready("alice")).await);
    // Failure for good frees a place; re-queueing the dead job takes it back.
    let fatal = Outcome::Error {
        retryable: false,
        retry_delay: Duration::ZERO,
        message: "no".into(),
        code: ErrorCode::Custom("No".into()),
        info: vec![],
    };
    let claimed = store
        .claim("q", "w", 3, Duration::from_secs(30))
        .await
        .unwrap();
    let lease = &claimed.iter().find(|c| c.lease.id == second).unwrap().lease;
    store.finish(lease, &fatal).await.unwrap();
    let fourth = store.enqueue(&ready("alice")).await.unwrap().id;
    store.retry_dead("q", second, Some("alice")).await.unwrap();
    over(store.enqueue(&ready("alice")).await);
    // Cancels free places.
    store.cancel("q", fourth, None).await.unwrap();
    store.cancel("q", second, None).await.unwrap();
    store.enqueue(&ready("alice")).await.unwrap();
    over(store.enqueue(&ready("alice")).await);
    let _ = third;
    assert_eq!(
        store.check_consistency("q").await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_pending_quota_follows_every_transition() {
    pending_quota_follows_every_transition(Topology::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_pending_quota_follows_every_transition() {
    pending_quota_follows_every_transition(Topology::Cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_past_the_horizon_writes_nothing() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = store_with(&redis, |c| c.horizon = Duration::from_secs(3600)).await;
    let late = JobSpec::new("t").delay(Duration::from_secs(7200));
    let refused = store.enqueue(&late).await;
    assert!(
        matches!(refused, Err(StoreError::BeyondHorizon { .. })),
        "{refused:?}"
    );
    assert_eq!(
        refused.unwrap_err().to_string(),
        "BeyondHorizon: a job may start at most 1 hours ahead"
    );
    let far = JobSpec::new("t").run_at("9999-01-01T00:00:00Z".parse().unwrap());
    let batch = store.enqueue_many(&[JobSpec::new("t"), far]).await;
    assert!(matches!(batch, Err(StoreError::BeyondHorizon { .. })));
    assert!(
        store
            .list(&ListQuery::default())
            .await
            .unwrap()
            .jobs
            .is_empty()
    );
    store
        .enqueue(&JobSpec::new("t").delay(Duration::from_secs(3000)))
        .await
        .unwrap();
}

async fn idle_queues_are_forgotten(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = store_with(&redis, |c| c.retention = Duration::from_millis(1)).await;
    let other = store_with(&redis, |_| {}).await;
    // A queue whose jobs ended and expired: one cancelled, one run (its lease gone,
    // `leases` holds its pin alone).
    for producer in [&store, &other] {
        let id = producer
            .enqueue(&JobSpec::new("t").queue("junk"))
            .await
            .unwrap()
            .id;
        store.cancel("junk", id, None).await.unwrap();
    }
    store
        .enqueue(&JobSpec::new("t").queue("junk"))
        .await
        .unwrap();
    let run = store
        .claim("junk", "w", 1, Duration::from_secs(30))
        .await
        .unwrap();
    let ok = Outcome::Success(tether_store::encode(&1).unwrap());
    store.finish(&run[0].lease, &ok).await.unwrap();
    let leases = "tether:{junk}:leases";
    let mut node = redis.connection_for(leases);
    let pinned: i64 = redis::cmd("EXISTS")
        .arg(leases)
        .arg("tether:{junk}:waiting")
        .query(&mut node)
        .unwrap();
    assert_eq!(pinned, 2, "both hold their pins alone");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(store.expire("junk", 10).await.unwrap(), 3);
    // A queue with a job, an empty queue a worker serves, an empty one used just now.
    store
        .enqueue(&JobSpec::new("t").queue("kept"))
        .await
        .unwrap();
    store.ensure_queue("served").await.unwrap();
    let worker = tether_store::WorkerInfo {
        types: None,
        id: "w1".into(),
        host: "h".into(),
        pid: 1,
        queues: vec!["served".into()],
        concurrency: 1,
        started_at: chrono::Utc::now(),
        jobs: vec![],
    };
    store
        .put_worker(&worker, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        store
            .forget_idle_queues(Duration::from_secs(3600))
            .await
            .unwrap(),
        Vec::<String>::new(),
        "junk was used within the hour"
    );
    assert_eq!(
        store.forget_idle_queues(Duration::ZERO).await.unwrap(),
        vec!["junk".to_owned()]
    );
    let pinned: i64 = redis::cmd("EXISTS")
        .arg(leases)
        .arg("tether:{junk}:waiting")
        .query(&mut node)
        .unwrap();
    assert_eq!(
        pinned, 0,
        "the pins of a forgotten queue's leases and waiting are deleted with it"
    );
    assert_eq!(store.queues().await.unwrap(), ["kept", "served"]);
    // An enqueue registers it again, also from a process that had it set up before,
    // and workers can claim from it.
    let id = other
        .enqueue(&JobSpec::new("t").queue("junk"))
        .await
        .unwrap()
        .id;
    assert_eq!(store.queues().await.unwrap(), ["junk", "kept", "served"]);
    let claimed = store
        .claim("junk", "w", 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed[0].lease.id, id);
    for queue in ["junk", "kept", "served"] {
        assert_eq!(
            store.check_consistency(queue).await.unwrap(),
            Vec::<String>::new()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_idle_queues_are_forgotten() {
    idle_queues_are_forgotten(Topology::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_idle_queues_are_forgotten() {
    idle_queues_are_forgotten(Topology::Cluster).await;
}

async fn scoped_keys_and_forced_cancels(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = store_with(&redis, |c| c.retention = Duration::from_millis(1)).await;
    let keyed = |owner: &str| ready(owner).idempotency_key("k").cancelable(false);
    let alices = store.enqueue(&keyed("alice")).await.unwrap();
    let bobs = store.enqueue(&keyed("bob")).await.unwrap();
    assert!(alices.created && bobs.created && alices.id != bobs.id);
    let again = store.enqueue(&keyed("alice")).await.unwrap();
    assert_eq!((again.id, again.created), (alices.id, false));
    // Non-cancelable: refused unless forced.
    let refused = store.cancel("q", alices.id, Some("alice")).await;
    assert!(
        matches!(refused, Err(StoreError::NotSupported)),
        "{refused:?}"
    );
    store.cancel_with("q", alices.id, None, true).await.unwrap();
    let claimed = store
        .claim("q", "w", 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed[0].lease.id, bobs.id);
    store.cancel_with("q", bobs.id, None, true).await.unwrap();
    let renewed = store
        .renew(
            "q",
            &[(bobs.id, claimed[0].lease.token.clone())],
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(renewed.1, [tether_store::RenewStatus::CancelRequested]);
    // Expiry takes the owner's key and index entry with the job: the key is free again.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(store.expire("q", 10).await.unwrap(), 1);
    let fresh = store.enqueue(&keyed("alice")).await.unwrap();
    assert!(fresh.created && fresh.id != alices.id);
    if let TestRedis::Single(server) = &redis {
        let mut conn = server.connection();
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*alice*").query(&mut conn).unwrap();
        keys.sort();
        // The fresh job waits in alice's fairness group's list.
        assert_eq!(
            keys,
            [
                "tether:{q}:oidem:5:alice:k",
                "tether:{q}:owner:alice",
                "tether:{q}:rdy:5:alice"
            ]
        );
        let index: Vec<String> = redis::cmd("ZRANGE")
            .arg("tether:{q}:owner:alice")
            .arg(0)
            .arg(-1)
            .query(&mut conn)
            .unwrap();
        assert_eq!(index, [fresh.id.to_string()]);
    }
    assert_eq!(
        store.check_consistency("q").await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_scoped_keys_and_forced_cancels() {
    scoped_keys_and_forced_cancels(Topology::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_scoped_keys_and_forced_cancels() {
    scoped_keys_and_forced_cancels(Topology::Cluster).await;
}
