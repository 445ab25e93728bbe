//! The walk over a queue's index of jobs (bulk actions, search): every job read once
//! in each direction and in creation order, through hundreds of jobs created in one
//! millisecond (one enqueue batch) and across the deletion of the job a cursor names,
//! whether it waits delayed (in the index from its enqueue) or on the stream since its
//! enqueue (in the index only once it leaves the stream).

use std::collections::HashSet;
use std::time::Duration;

use tether_model::{JobId, JobSpec};
use tether_store::{IndexPos, Store, StoreConfig, WalkOrder};
use tether_testkit::{RedisEndpoint, TestRedis, Topology};

const LEASE: Duration = Duration::from_secs(60);

/// Walks the whole queue in steps of `step`; after the `delete_at`-th step, deletes
/// the job the cursor names (cancelled first) before going on.
async fn walk_all(
    store: &Store,
    queue: &str,
    order: WalkOrder,
    step: usize,
    delete_at: Option<usize>,
) -> (Vec<String>, Option<String>) {
    let (mut read, mut pos, mut deleted) = (Vec::new(), None::<IndexPos>, None);
    let mut places: Vec<(i64, String)> = Vec::new();
    for n in 0.. {
        let walked = store
            .walk_jobs(queue, None, order, pos.as_ref(), step)
            .await
            .unwrap();
        assert!(walked.read <= step);
        read.extend(walked.jobs.iter().map(|j| j.id.to_string()));
        places.extend(
            walked
                .jobs
                .iter()
                .map(|j| (j.created_at.timestamp_millis(), j.id.to_string())),
        );
        let Some(next) = walked.next else { break };
        if delete_at == Some(n) {
            let id: JobId = next.id.parse().unwrap();
            store.cancel(queue, id, None).await.unwrap();
            store.delete_final(queue, id, None).await.unwrap();
            deleted = Some(next.id.clone());
        }
        pos = Some(next);
        assert!(n < 10_000, "the walk does not end");
    }
    // In creation order (ms, then id), whichever structure each job was read from.
    let in_order = places.windows(2).all(|w| match order {
        WalkOrder::OldestFirst => w[0] < w[1],
        WalkOrder::NewestFirst => w[0] > w[1],
    });
    assert!(in_order, "{order:?} by {step}: not in creation order");
    (read, deleted)
}

async fn every_job_once(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "walked";
    let delayed = JobSpec::new("t")
        .queue(queue)
        .delay(Duration::from_secs(600));
    // No worker reads this queue: these wait on the stream, with no `jobs` entry.
    let waiting = JobSpec::new("t").queue(queue);
    let mut all: Vec<String> = Vec::new();
    for (batch, spec) in [
        (1200, &delayed),
        (900, &waiting),
        (3, &delayed),
        (1, &waiting),
        (2, &waiting),
        (700, &delayed),
        (600, &waiting),
    ] {
        let ids = store
            .enqueue_many(&vec![spec.clone(); batch])
            .await
            .unwrap();
        all.extend(ids.iter().map(|e| e.id.to_string()));
    }
    // Not vacuous: many jobs share a creation time.
    let mut created: Vec<i64> = Vec::new();
    for id in &all {
        let job = store
            .get(queue, id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        created.push(job.created_at.timestamp_millis());
    }
    created.sort();
    let most_tied = created
        .chunk_by(|a, b| a == b)
        .map(<[i64]>::len)
        .max()
        .unwrap();
    assert!(
        most_tied >= 200,
        "at most {most_tied} jobs share a creation time"
    );

    for order in [WalkOrder::OldestFirst, WalkOrder::NewestFirst] {
        for step in [1, 64, 500] {
            if step == 1 && order == WalkOrder::NewestFirst {
                continue; // 3,406 steps of one: once is enough
            }
            let (read, _) = walk_all(&store, queue, order, step, None).await;
            let unique: HashSet<&String> = read.iter().collect();
            assert_eq!(
                unique.len(),
                read.len(),
                "{order:?} by {step}: a job read twice"
            );
            assert_eq!(read.len(), all.len(), "{order:?} by {step}: jobs missed");
        }
    }
    // The job a cursor names is deleted: the walk goes on from its place.
    let (read, deleted) = walk_all(&store, queue, WalkOrder::OldestFirst, 100, Some(6)).await;
    let deleted = deleted.expect("a job was deleted");
    let unique: HashSet<&String> = read.iter().collect();
    assert_eq!(unique.len(), read.len(), "a job read twice");
    let expected: HashSet<&String> = all.iter().collect();
    assert_eq!(
        unique, expected,
        "every job, the deleted one read before it was"
    );
    assert!(read.contains(&deleted));
    let (read, _) = walk_all(&store, queue, WalkOrder::NewestFirst, 100, None).await;
    assert_eq!(read.len(), all.len() - 1);
    assert!(!read.contains(&deleted));
    assert!(store.check_consistency(queue).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_walk_reads_every_job_once_on_one_redis() {
    every_job_once(Topology::Single).await;
}

#[tokio::test]
async fn a_walk_reads_every_job_once_on_a_cluster() {
    every_job_once(Topology::Cluster).await;
}

/// Jobs claimed while a walk goes (they leave the stream for the index, at the same
/// place): each is read once, those the walk had passed and those still ahead.
async fn claims_during_a_walk(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "claimed";
    let delayed = JobSpec::new("t")
        .queue(queue)
        .delay(Duration::from_secs(600));
    let waiting = JobSpec::new("t").queue(queue);
    let mut all: HashSet<String> = HashSet::new();
    for spec in [&waiting, &delayed, &waiting, &delayed, &waiting] {
        let ids = store.enqueue_many(&vec![spec.clone(); 100]).await.unwrap();
        all.extend(ids.iter().map(|e| e.id.to_string()));
    }
    for order in [WalkOrder::OldestFirst, WalkOrder::NewestFirst] {
        let (mut read, mut pos) = (Vec::new(), None::<IndexPos>);
        for n in 0.. {
            let walked = store
                .walk_jobs(queue, None, order, pos.as_ref(), 40)
                .await
                .unwrap();
            read.extend(walked.jobs.iter().map(|j| j.id.to_string()));
            let Some(next) = walked.next else { break };
            pos = Some(next);
            if n == 3 {
                // The stream's oldest 150: some read already (oldest first), some not.
                let claimed = store.claim(queue, "w", 150, LEASE).await.unwrap();
                assert_eq!(claimed.len(), 150);
            }
            assert!(n < 1_000, "the walk does not end");
        }
        let unique: HashSet<String> = read.iter().cloned().collect();
        assert_eq!(unique.len(), read.len(), "{order:?}: a job read twice");
        assert_eq!(unique, all, "{order:?}: jobs missed");
    }
    assert!(store.check_consistency(queue).await.unwrap().is_empty());
}

#[tokio::test]
async fn claims_during_a_walk_on_one_redis() {
    claims_during_a_walk(Topology::Single).await;
}

#[tokio::test]
async fn claims_during_a_walk_on_a_cluster() {
    claims_during_a_walk(Topology::Cluster).await;
}

/// Redis time of the walk's steps over 100,000 jobs (printed; `--nocapture`).
#[tokio::test]
#[ignore = "full tier: a measurement on 100,000 jobs"]
async fn measure_walk_steps_on_100k_jobs() {
    let redis = TestRedis::start(Topology::Single);
    let TestRedis::Single(server) = &redis else {
        unreachable!()
    };
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "measure";
    let delayed = JobSpec::new("t")
        .queue(queue)
        .delay(Duration::from_secs(600));
    // Half of them wait on the stream (no `jobs` entry): the walk reads both.
    let waiting = JobSpec::new("t").queue(queue);
    for i in 0..20 {
        let spec = if i % 2 == 0 { &delayed } else { &waiting };
        store.enqueue_many(&vec![spec.clone(); 5000]).await.unwrap();
    }
    let mut node = server.connection();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut node)
        .unwrap();
    let began = std::time::Instant::now();
    let (mut steps, mut read, mut pos) = (0, 0, None::<IndexPos>);
    loop {
        let walked = store
            .walk_jobs(queue, None, WalkOrder::OldestFirst, pos.as_ref(), 500)
            .await
            .unwrap();
        steps += 1;
        read += walked.jobs.len();
        match walked.next {
            Some(next) => pos = Some(next),
            None => break,
        }
    }
    let wall = began.elapsed();
    assert_eq!(read, 100_000);
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut node)
        .unwrap();
    let usec = |command: &str| -> (f64, f64) {
        let line = info
            .lines()
            .find(|l| l.starts_with(&format!("cmdstat_{command}:")))
            .unwrap_or_default();
        let field = |name: &str| {
            line.split([':', ','])
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
                .unwrap_or(0.0)
        };
        (field("usec"), field("usec_per_call"))
    };
    let (zrange, zrange_per) = usec("zrange");
    let (hmget, hmget_per) = usec("hmget");
    let (zscore, _) = usec("zscore");
    let (xrange, xrange_per) = usec("xrange");
    let total = zrange + hmget + zscore + xrange;
    println!("walk of 100,000 jobs (half on the stream) in {steps} steps of 500: {wall:?} wall");
    println!(
        "Redis time: {:.1} ms in all, {:.0} µs per step (ZRANGE {zrange_per:.0} µs, XRANGE {xrange_per:.0} µs, HMGET {hmget_per:.1} µs per job)",
        total / 1000.0,
        total / steps as f64
    );
    // Each step is one ZRANGE, one XRANGE or a few (to the end of a millisecond) and one
    // pipeline of single-key reads: no command of a step holds Redis for long.
    assert!(zrange_per < 10_000.0 && xrange_per < 10_000.0 && hmget_per < 1_000.0);
}
