//! The consistency check walks a queue in bounded steps (a long script blocks every
//! client of Redis) and still finds every kind of disagreement, wherever it lies.
//! Runs on one Redis and on a three-master cluster.

use std::time::Duration;

use redis::Commands;
use tether_model::{JobId, JobSpec};
use tether_store::{Outcome, Store, StoreConfig};
use tether_testkit::{RedisEndpoint, TestRedis, Topology};

const LONG: Duration = Duration::from_secs(60);

/// `n` jobs of `queue`: a half pending, a quarter processing, a quarter finished
/// (their ids in that order).
async fn fill(store: &Store, queue: &str, n: usize) -> (Vec<JobId>, Vec<JobId>, Vec<JobId>) {
    let ids: Vec<JobId> = store
        .enqueue_many(&vec![JobSpec::new("t").queue(queue); n])
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let claimed = store.claim(queue, "w", n / 2, LONG).await.unwrap();
    let ok = Outcome::Success(tether_store::encode(&1).unwrap());
    let finished: Vec<_> = claimed[..n / 4].iter().map(|c| (&c.lease, &ok)).collect();
    store.finish_many(queue, &finished).await.unwrap();
    let lease_ids: Vec<JobId> = claimed.iter().map(|c| c.lease.id).collect();
    let leased: std::collections::HashSet<_> = lease_ids.iter().collect();
    let pending = ids.into_iter().filter(|id| !leased.contains(id)).collect();
    (
        pending,
        lease_ids[n / 4..].to_vec(),
        lease_ids[..n / 4].to_vec(),
    )
}

async fn no_step_blocks_redis(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "walk";
    fill(&store, queue, 20_000).await;
    let mut node = redis.connection_for("tether:{walk}:jobs");
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "slowlog-log-slower-than", "100000"])
        .query(&mut node)
        .unwrap();
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query(&mut node).unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut node)
        .unwrap();
    let problems = store.check_consistency(queue).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut node)
        .unwrap();
    let fcall = info
        .lines()
        .find(|l| l.starts_with("cmdstat_fcall:"))
        .expect("the check ran scripts");
    let field = |name: &str| -> f64 {
        fcall
            .split([':', ','])
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .unwrap()
    };
    let (calls, per_call) = (field("calls"), field("usec_per_call"));
    // A step is about 1 ms of Redis time on an idle machine; the margins absorb a
    // loaded one (a walk in one script takes about half a second here).
    assert!(
        per_call < 5_000.0,
        "{calls} steps of {per_call} µs each on average while checking 20,000 jobs"
    );
    let slow: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg(&["GET", "10"])
        .query(&mut node)
        .unwrap();
    assert!(
        slow.is_empty(),
        "commands of 100 ms or more while checking 20,000 jobs: {slow:?}"
    );
}

#[tokio::test]
async fn no_step_of_the_check_blocks_one_redis() {
    no_step_blocks_redis(Topology::Single).await;
}

#[tokio::test]
async fn no_step_of_the_check_blocks_a_cluster() {
    no_step_blocks_redis(Topology::Cluster).await;
}

async fn every_disagreement_is_found(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "broken";
    let (pending, processing, _) = fill(&store, queue, 3_000).await;
    let k = |name: &str| format!("tether:{{{queue}}}:{name}");
    let mut conn = redis.connection_for(&k("jobs"));
    let unleased = processing[400];
    let _: () = conn.zrem(k("leases"), unleased.to_string()).unwrap();
    let ghost = JobId::new();
    let _: () = conn.zadd(k("leases"), ghost.to_string(), 1).unwrap();
    let _: () = conn.hincr(k("counts"), "success", 1).unwrap();
    let unready = pending[1_400];
    // A plain job waits with no record (layout 4): its value in `waiting` names its entry
    // (layout 5: in 8 bytes).
    let waiting: Vec<u8> = conn
        .hget(k("waiting"), unready.as_uuid().as_bytes())
        .unwrap();
    let (sid, _) = tether_testkit::split_waiting_value(&waiting);
    let _: () = conn.xdel(k("stream"), &[&sid]).unwrap();
    let stray = JobId::new();
    let _: () = conn
        .xadd(k("stream"), "*", &[("j", stray.to_string())])
        .unwrap();
    let recordless = JobId::new();
    let middle: f64 = conn.zscore(k("jobs"), processing[10].to_string()).unwrap();
    let _: () = conn
        .zadd(k("jobs"), recordless.to_string(), middle)
        .unwrap();
    let done_pending = pending[700];
    let _: () = conn.zadd(k("done"), done_pending.to_string(), 1).unwrap();

    let problems = store.check_consistency(queue).await.unwrap();
    let text = problems.join("\n");
    for expected in [
        format!("processing job {unleased} has no lease"),
        format!("leases holds unknown job {ghost}"),
        "counts.success is 751, records say 750".to_owned(),
        format!("pending job {unready} is neither ready nor scheduled"),
        format!("stream holds unknown job {stray}"),
        format!("job {recordless} is indexed but has no record"),
        format!("pending job {done_pending} is in done"),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(problems.len(), 7, "{text}");
}

#[tokio::test]
async fn every_disagreement_is_found_on_one_redis() {
    every_disagreement_is_found(Topology::Single).await;
}

#[tokio::test]
async fn every_disagreement_is_found_on_a_cluster() {
    every_disagreement_is_found(Topology::Cluster).await;
}

/// Figures for the documentation: Redis time per step of the check on 100,000 retained
/// jobs, from SLOWLOG (every command logged). With `TETHER_OLD_CHECK` naming a file
/// holding a single-pass check script, that script is timed on the same data too.
/// `cargo test -p tether-store --release --test consistency_walk -- --ignored --nocapture`
#[tokio::test]
#[ignore = "full tier: 100,000 jobs, figures for the documentation"]
async fn measure_check_steps_on_100k_jobs() {
    let redis = TestRedis::start(Topology::Single);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "measure";
    fill(&store, queue, 100_000).await;
    let mut node = redis.connection_for("tether:{measure}:jobs");
    let _: () = redis::cmd("CONFIG")
        .arg(&[
            "SET",
            "slowlog-log-slower-than",
            "50",
            "slowlog-max-len",
            "100000",
        ])
        .query(&mut node)
        .unwrap();
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query(&mut node).unwrap();
    let began = std::time::Instant::now();
    let problems = store.check_consistency(queue).await.unwrap();
    let wall = began.elapsed();
    assert!(problems.is_empty(), "{problems:?}");
    let log: Vec<(i64, i64, i64, Vec<String>)> = redis::cmd("SLOWLOG")
        .arg(&["GET", "-1"])
        .query::<Vec<redis::Value>>(&mut node)
        .unwrap()
        .into_iter()
        .filter_map(|entry| {
            redis::from_redis_value::<(i64, i64, i64, Vec<String>)>(entry.clone())
                .ok()
                .or_else(|| {
                    let (a, b, c, d, _, _): (i64, i64, i64, Vec<String>, String, String) =
                        redis::from_redis_value(entry).ok()?;
                    Some((a, b, c, d))
                })
        })
        .collect();
    println!("{} commands logged", log.len());
    let mut by_phase: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for (_, _, micros, args) in &log {
        let name = match args.first().map(String::as_str) {
            Some("FCALL") if args.len() > 12 => args[11].clone(),
            Some(other) => other.to_owned(),
            None => continue,
        };
        by_phase.entry(name).or_default().push(*micros);
    }
    println!("check of 100,000 retained jobs: {:?} wall", wall);
    println!("phase      steps   mean µs   max µs   total ms");
    let mut total = 0;
    for (phase, times) in &by_phase {
        let sum: i64 = times.iter().sum();
        total += sum;
        println!(
            "{phase:<9} {:>6} {:>9} {:>8} {:>10.1}",
            times.len(),
            sum / times.len() as i64,
            times.iter().max().unwrap(),
            sum as f64 / 1000.0
        );
    }
    println!("all steps: {:.1} ms of Redis time", total as f64 / 1000.0);
    if let Ok(path) = std::env::var("TETHER_OLD_CHECK") {
        let script = redis::Script::new(&std::fs::read_to_string(path).unwrap());
        let mut inv = script.prepare_invoke();
        for name in [
            "stream", "delayed", "leases", "jobs", "done", "dead", "counts",
        ] {
            inv.key(format!("tether:{{{queue}}}:{name}"));
        }
        inv.arg(format!("tether:{{{queue}}}:"));
        let began = std::time::Instant::now();
        let old: Vec<String> = inv.invoke(&mut node).unwrap();
        println!(
            "single-pass check: {:?} ({} problems)",
            began.elapsed(),
            old.len()
        );
    }
}
