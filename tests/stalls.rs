//! The worker's own lease bookkeeping under stalls and sustained load: a displaced
//! attempt stops at once, the self-fence keeps its own clock whatever Redis does,
//! and reap and expiry keep pace with big backlogs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_model::{JobSpec, Status};
use tether_producer::{JobId, Producer};
use tether_store::{Store, StoreConfig};
use tether_suite::*;
use tether_testkit::{FaultProxy, RedisOptions, RedisServer};
use tether_worker::{CancellationToken, JobContext, JobError, OneStep, Worker, WorkerConfig};

const T: Duration = Duration::from_secs(30);

/// One attempt as the handler saw it: which worker, which attempt, when it started,
/// and when it ended (returned or was dropped).
#[derive(Debug, Clone)]
struct Run {
    worker: &'static str,
    attempt: u32,
    started: Instant,
    ended: Option<Instant>,
}

#[derive(Clone, Default)]
struct Runs(Arc<Mutex<Vec<Run>>>);

impl Runs {
    fn start(&self, worker: &'static str, attempt: u32) -> RunGuard {
        let mut runs = self.0.lock().unwrap();
        runs.push(Run {
            worker,
            attempt,
            started: Instant::now(),
            ended: None,
        });
        RunGuard {
            runs: self.clone(),
            index: runs.len() - 1,
        }
    }

    fn snapshot(&self) -> Vec<Run> {
        self.0.lock().unwrap().clone()
    }
}

/// Marks its run ended when dropped: a handler stopped by the runtime is dropped.
struct RunGuard {
    runs: Runs,
    index: usize,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.runs.0.lock().unwrap()[self.index].ended = Some(Instant::now());
    }
}

/// Sleeps `ms` (per attempt: the input's `ms[attempt - 1]`, else the last), logging its run.
struct Tracked {
    worker: &'static str,
    runs: Runs,
}

impl OneStep for Tracked {
    type Input = Vec<u64>;
    type Output = ();
    async fn run(&self, ctx: &JobContext, ms: Vec<u64>) -> Result<(), JobError> {
        let _run = self.runs.start(self.worker, ctx.attempt());
        let i = (ctx.attempt() as usize).saturating_sub(1).min(ms.len() - 1);
        tokio::time::sleep(Duration::from_millis(ms[i])).await;
        Ok(())
    }
}

fn start_worker(
    store: Store,
    name: &'static str,
    runs: &Runs,
    configure: impl FnOnce(tether_worker::WorkerBuilder) -> tether_worker::WorkerBuilder,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let builder = Worker::builder(store)
        .queues(["stalls"])
        .concurrency(4)
        .shutdown_grace(Duration::from_millis(200))
        .handler(
            "tracked",
            Tracked {
                worker: name,
                runs: runs.clone(),
            },
        );
    let worker = configure(builder).build().expect("worker config");
    let stop = CancellationToken::new();
    let token = stop.clone();
    let handle = tokio::spawn(async move { worker.run(token).await.expect("worker run") });
    (stop, handle)
}

fn tracked(ms: &[u64]) -> JobSpec {
    JobSpec::new("tracked")
        .queue("stalls")
        .input(&ms.to_vec())
        .unwrap()
        .max_attempts(10)
}

/// Makes the job's lease lapse now and reaps it, as a reaper would after a stall the
/// holder did not notice (a clock step, renewals lost in a failover).
async fn lapse_and_reap(redis: &RedisServer, store: &Store, id: JobId) {
    let mut conn = redis.connection();
    eventually(T, format!("could not reap {id}"), async || {
        let _: i64 = redis::cmd("ZADD")
            .arg("tether:{stalls}:leases")
            .arg("XX")
            .arg(1)
            .arg(id.to_string())
            .query(&mut conn)
            .unwrap();
        // A renewal may land between the two calls; then try again.
        let reaped = store.reap("stalls", 100).await.unwrap();
        if reaped.contains(&id) {
            Ok(())
        } else {
            Err(format!("reaped {reaped:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_displaced_attempt_stops_at_once_and_the_new_attempt_keeps_its_lease() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = store(&redis).await;
    let producer = Producer::from_store(store.clone());
    let runs = Runs::default();
    let (stop, handle) = start_worker(store.clone(), "w", &runs, |b| {
        b.lease_ttl(Duration::from_millis(1200))
            .reap_interval(Duration::from_millis(200))
    });
    // Attempt 1 runs 2 s; attempt 2 runs 3 s, longer than a lease: it needs renewals.
    let id = producer.enqueue(tracked(&[2000, 3000])).await.unwrap();
    until_job(&producer, id, T, |j| j.status == Status::Processing).await;
    let displaced_at = Instant::now();
    lapse_and_reap(&redis, &store, id).await;

    let job = finished(&producer, id, T).await;
    stop.cancel();
    handle.await.unwrap();
    let runs = runs.snapshot();
    assert_eq!(job.status, Status::Success, "{job:#?}\n{runs:#?}");
    assert_eq!(
        job.attempts, 2,
        "the new attempt kept its lease to the end: {runs:#?}"
    );
    let first = runs.iter().find(|r| r.attempt == 1).unwrap();
    let second = runs.iter().find(|r| r.attempt == 2).unwrap();
    let stopped = first.ended.expect("attempt 1 ended") - displaced_at;
    assert!(
        first.ended.unwrap() <= second.started + Duration::from_millis(200),
        "attempt 1 was still running {stopped:?} after it was displaced: {runs:#?}"
    );
    assert_consistent(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_connection_freezes_stops_its_job_before_the_lease_can_lapse() {
    let redis = RedisServer::start(RedisOptions::default());
    let proxy = FaultProxy::start(redis.port());
    let frozen_store = Store::connect(StoreConfig::new(proxy.url())).await.unwrap();
    let producer = producer(&redis).await;
    let runs = Runs::default();
    let ttl = Duration::from_millis(1500);
    let (stop_a, handle_a) = start_worker(frozen_store, "frozen", &runs, |b| {
        b.lease_ttl(ttl).reap_interval(Duration::from_millis(200))
    });
    let id = producer.enqueue(tracked(&[4000])).await.unwrap();
    // Freeze once the handler runs: a `processing` status alone shows the claim, whose
    // reply may still be on its way through the proxy.
    eventually(
        T,
        "the job never started on the worker to freeze",
        async || {
            let started = runs.snapshot();
            if started.iter().any(|r| r.worker == "frozen") {
                Ok(())
            } else {
                Err(format!("{started:?}"))
            }
        },
    )
    .await;
    proxy.stall(true);
    let frozen_at = Instant::now();
    let (stop_b, handle_b) = start_worker(store(&redis).await, "healthy", &runs, |b| {
        b.lease_ttl(ttl).reap_interval(Duration::from_millis(200))
    });

    let job = finished(&producer, id, T).await;
    let runs = runs.snapshot();
    proxy.stall(false);
    stop_b.cancel();
    stop_a.cancel();
    handle_b.await.unwrap();
    handle_a.await.unwrap();
    assert_eq!(job.status, Status::Success);
    let frozen = runs.iter().find(|r| r.worker == "frozen").unwrap();
    let healthy = runs.iter().find(|r| r.worker == "healthy").unwrap();
    let fenced_after = frozen.ended.expect("the frozen worker's run ended") - frozen_at;
    assert!(
        fenced_after < ttl,
        "the frozen worker stopped its job {fenced_after:?} after its connection froze; its lease lapses within {ttl:?}"
    );
    assert!(
        frozen.ended.unwrap() < healthy.started,
        "the job ran on both workers at once: {runs:#?}"
    );
    assert_consistent(&redis).await;
}

/// Leases `n` jobs to a worker that never comes back, with a lease of `ttl`.
async fn leased_to_a_dead_worker(store: &Store, n: usize, ttl: Duration) -> Instant {
    let specs = vec![tracked(&[0]); n];
    store.enqueue_many(&specs).await.unwrap();
    let mut leased = 0;
    while leased < n {
        leased += store
            .claim("stalls", "dead-worker", 500.min(n - leased), ttl)
            .await
            .unwrap()
            .len();
    }
    Instant::now() + ttl
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_five_thousand_jobs_are_all_taken_back_within_one_reap_interval() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = store(&redis).await;
    let lapses_at = leased_to_a_dead_worker(&store, 5000, Duration::from_secs(1)).await;
    let reap_interval = Duration::from_millis(1500);
    let runs = Runs::default();
    // One slot, so this worker takes back the jobs but barely runs them.
    let (stop, handle) = start_worker(store.clone(), "reaper", &runs, |b| {
        b.concurrency(1).reap_interval(reap_interval)
    });
    let producer = Producer::from_store(store.clone());
    // The first reap pass may come up to 20 % late (jitter).
    let bound = reap_interval.mul_f64(1.2) + Duration::from_millis(800);
    loop {
        let stats = producer.stats(&["stalls".to_owned()]).await.unwrap();
        if stats[0].processing <= 1 {
            break;
        }
        let late = Instant::now().saturating_duration_since(lapses_at);
        assert!(
            late < bound,
            "{} jobs still leased to the dead worker {late:?} after their leases lapsed",
            stats[0].processing
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_keeps_pace_with_thousands_of_finished_jobs() {
    let redis = RedisServer::start(RedisOptions::default());
    let mut config = StoreConfig::new(redis.url());
    config.retention = Duration::from_secs(1);
    let store = Store::connect(config).await.unwrap();
    let producer = Producer::from_store(store.clone());
    let n = 8000;
    let specs = vec![tracked(&[0]); n];
    let reap_interval = Duration::from_millis(1000);
    let runs = Runs::default();
    let (stop, handle) = start_worker(store.clone(), "w", &runs, |b| {
        b.concurrency(64).reap_interval(reap_interval)
    });
    store.enqueue_many(&specs).await.unwrap();
    let queue = ["stalls".to_owned()];
    // Expiry starts while the jobs still run: wait until none is left to run.
    eventually(T, "the jobs did not all run", async || {
        let s = &producer.stats(&queue).await.unwrap()[0];
        if s.pending + s.scheduled + s.processing == 0 {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    // Every record is past retention 1 s later; the next reap pass must delete them all.
    let bound = Duration::from_secs(1) + reap_interval.mul_f64(1.2) + Duration::from_millis(1500);
    let what = "expired records still there after the last job finished";
    eventually(bound, what, async || {
        match producer.stats(&queue).await.unwrap()[0].success {
            0 => Ok(()),
            retained => Err(format!("{retained} retained")),
        }
    })
    .await;
    stop.cancel();
    handle.await.unwrap();
    assert_consistent(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_a_type_another_live_worker_has_is_handed_back_without_spending_an_attempt() {
    let redis = RedisServer::start(RedisOptions::default());
    let producer = producer(&redis).await;
    let runs = Runs::default();
    let (stop, handle) = start_worker(store(&redis).await, "has-it", &runs, |b| b);
    // This worker lacks "tracked": it serves the queue with the demo handlers only.
    let lacking = InProcessWorker::start(&redis, |b| b.queues(["stalls"]).concurrency(8)).await;
    eventually(T, "workers did not register", async || {
        match producer.workers().await.unwrap().len() {
            2.. => Ok(()),
            n => Err(format!("{n} registered")),
        }
    })
    .await;
    let ids: Vec<JobId> = producer
        .enqueue_many((0..50).map(|_| tracked(&[10]).max_attempts(1)).collect())
        .await
        .unwrap();
    // Each job goes to either worker, so how often it is handed back is a coin toss
    // each time, with a delay that doubles up to 2 s: the slowest of 50 takes about
    // 6 tosses, 16 s here, and more on a busy machine.
    let jobs = all_finished(&producer, &ids, Duration::from_secs(90)).await;
    let offered_to_lacking: f64 = lacking
        .metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("tether_jobs_started_total{") && l.contains("stalls"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    stop.cancel();
    handle.await.unwrap();
    lacking.shutdown().await;
    assert!(
        offered_to_lacking > 0.0,
        "the worker without the handler claimed none of the jobs: the test proves nothing"
    );
    for job in &jobs {
        assert_eq!(
            job.status,
            Status::Success,
            "a worker without the handler must hand it back: {job:#?}"
        );
        assert_eq!(job.attempts, 1, "handing back spends no attempt: {job:#?}");
    }
    // With no live worker for the type, it fails at once.
    let lonely = InProcessWorker::start(&redis, |b| b.queues(["stalls"])).await;
    let id = producer
        .enqueue(JobSpec::new("nobody-has-it").queue("stalls"))
        .await
        .unwrap();
    let job = finished(&producer, id, T).await;
    lonely.shutdown().await;
    assert_eq!(job.status, Status::Failure);
    assert_eq!(
        job.error_code.as_ref().map(|c| c.as_str()),
        Some("UnknownJobType")
    );
    assert_consistent(&redis).await;
}

#[test]
fn settings_that_cannot_work_are_refused_at_start() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let redis = RedisServer::start(RedisOptions::default());
    let store = rt.block_on(store(&redis));
    let heartbeat_past_ttl = Worker::builder(store.clone())
        .config(WorkerConfig {
            lease_ttl: Duration::from_secs(3),
            heartbeat: Some(Duration::from_secs(3)),
            ..WorkerConfig::default()
        })
        .build();
    let e = heartbeat_past_ttl.expect_err("a heartbeat of the whole lease is refused");
    assert!(e.to_string().contains("heartbeat"), "{e}");
    let huge_batch = Worker::builder(store.clone())
        .config(WorkerConfig {
            claim_batch: 1_000_000,
            ..WorkerConfig::default()
        })
        .build();
    let e = huge_batch.expect_err("a claim batch no script can take is refused");
    assert!(e.to_string().contains("claim batch"), "{e}");
    let twice = Worker::builder(store).queues(["a", "a"]).build();
    assert!(
        twice.is_err(),
        "a queue listed twice would get two claim loops"
    );
}
