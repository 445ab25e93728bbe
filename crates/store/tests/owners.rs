//! Owners share one Redis: an owner's list costs what that owner has, and an
//! owner's jobs cannot exhaust what others can do. Features that touch the
//! keyspace run on one Redis and on a three-master cluster.

use std::time::{Duration, Instant};

use tether_model::{JobSpec, Status};
use tether_store::{ListQuery, SortDir, SortKey, Store, StoreConfig};
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
    let _ = Status::Pending;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_owner_lists_page_across_queues() {
    owner_lists_page_across_queues(Topology::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_owner_lists_page_across_queues() {
    owner_lists_page_across_queues(Topology::Cluster).await;
}
