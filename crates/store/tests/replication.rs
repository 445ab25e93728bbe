//! Enqueues that wait for replicas (`min_replicas`) must not hold up the store's other
//! calls: `WAIT` blocks the connection it is sent on until the replicas answer or its
//! timeout passes.

use std::time::{Duration, Instant};

use tether_model::JobSpec;
use tether_store::{Store, StoreConfig, StoreError};
use tether_testkit::{RedisOptions, RedisServer, eventually_blocking};

/// A master and a replica that has caught up with it.
fn master_and_replica() -> (RedisServer, RedisServer) {
    let master = RedisServer::start(RedisOptions::default());
    let replica = RedisServer::start(RedisOptions {
        extra_args: vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            master.port().to_string(),
        ],
        ..Default::default()
    });
    let mut conn = master.connection();
    eventually_blocking(Duration::from_secs(10), "replica never came online", || {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut conn)
            .unwrap();
        if info.contains("state=online") {
            Ok(())
        } else {
            Err(info)
        }
    });
    (master, replica)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_waiting_for_a_paused_replica_does_not_delay_other_calls() {
    let (master, replica) = master_and_replica();
    let mut config = StoreConfig::new(master.url());
    config.min_replicas = 1;
    config.replication_timeout = Duration::from_secs(2);
    let store = Store::connect(config).await.unwrap();
    let first = store
        .enqueue(&JobSpec::new("noop"))
        .await
        .expect("replicated");

    replica.pause();
    let waiting = tokio::spawn({
        let store = store.clone();
        async move { store.enqueue(&JobSpec::new("noop")).await }
    });
    // Let the enqueue reach Redis and its WAIT start blocking.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the WAIT should still be waiting");

    let began = Instant::now();
    store.ping().await.unwrap();
    let ping = began.elapsed();
    let began = Instant::now();
    let job = store.get("default", first.id).await.unwrap();
    let get = began.elapsed();
    let stats = store.stats("default").await.unwrap();
    let refused = waiting.await.unwrap();
    replica.resume();

    assert!(job.is_some() && stats.pending == 2, "{stats:?}");
    // Both must answer at loopback speed, not after the 2 s WAIT.
    assert!(
        ping < Duration::from_millis(300) && get < Duration::from_millis(300),
        "PING answered after {ping:?}, get after {get:?}, behind the enqueue's WAIT"
    );
    assert!(
        matches!(
            refused,
            Err(StoreError::NotReplicated {
                confirmed: 0,
                wanted: 1
            })
        ),
        "{refused:?}"
    );
    // And replica-waiting enqueues keep working once the replica is back.
    store
        .enqueue(&JobSpec::new("noop"))
        .await
        .expect("replicated again");
}

/// Several replica-waiting enqueues at once each wait on a connection of their own,
/// so they finish together rather than one WAIT after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_replica_waiting_enqueues_wait_side_by_side() {
    let (master, replica) = master_and_replica();
    let mut config = StoreConfig::new(master.url());
    config.min_replicas = 1;
    config.replication_timeout = Duration::from_millis(700);
    let store = Store::connect(config).await.unwrap();
    let spec = JobSpec::new("noop");
    // Loads the function library: a first call without it would make each enqueue wait twice.
    store.enqueue(&spec).await.expect("replicated");
    replica.pause();
    let began = Instant::now();
    let results = futures::future::join_all((0..4).map(|_| store.enqueue(&spec))).await;
    let took = began.elapsed();
    replica.resume();
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(StoreError::NotReplicated { .. }))),
        "{results:?}"
    );
    assert!(
        took < Duration::from_millis(1_400),
        "4 enqueues waited {took:?}: their WAITs ran one after another"
    );
}
