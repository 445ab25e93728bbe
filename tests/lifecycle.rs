//! The job lifecycle through the library, with workers in this process and a
//! private Redis per test: every test runs twice, against one redis-server
//! (`single::…`) and against a three-master Redis Cluster (`cluster::…`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use serde_json::json;
use tether_model::{ErrorCode, JobInput, JobSpec, RetryPolicy, Status};
use tether_producer::{CancelOutcome, ListQuery, SortDir};
use tether_store::StoreError;
use tether_suite::*;
use tether_testkit::TestRedis;
use tether_worker::{Check, Handler, JobContext, JobError, OneStep, Step};

const T: Duration = Duration::from_secs(20);

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        initial_ms: 50,
        factor: 2.0,
        cap_ms: 200,
        jitter: 0.0,
    }
}

async fn success_records_the_result(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    let worker = InProcessWorker::start(&redis, |b| b).await;
    let id = producer
        .enqueue(JobSpec::new("sleep").input(&json!({"ms": 10})).unwrap())
        .await
        .unwrap();
    let job = finished(&producer, id, T).await;
    assert_eq!(job.status, Status::Success);
    assert_eq!(job.result, Some(json!({"slept_ms": 10})));
    assert_eq!(
        (job.progress, job.attempts, job.message.as_str()),
        (100, 1, "")
    );
    assert!(job.started_at.is_some() && job.finished_at.is_some() && job.expires_at.is_some());
    assert_eq!(
        job.eta, job.finished_at,
        "once finished, eta is the finish time"
    );
    assert!(!job.cancel_requested);

    // `stamp` answers when its handler started, by this machine's clock in µs (what
    // `tether bench` measures waits with).
    let before = tether_demo_handlers::now_us();
    let id = producer.enqueue(JobSpec::new("stamp")).await.unwrap();
    let job = finished(&producer, id, T).await;
    let after = tether_demo_handlers::now_us();
    let started = job.result.as_ref().and_then(|r| r["started_us"].as_u64());
    assert!(
        started.is_some_and(|us| before <= us && us <= after),
        "{before} ≤ {:?} ≤ {after}",
        job.result
    );
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

async fn fatal_failure_records_message_and_code(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    let worker = InProcessWorker::start(&redis, |b| b).await;
    let spec = JobSpec::new("fail")
        .input(&json!({"message": "disk on fire", "code": "DiskFire", "fatal": true}))
        .unwrap();
    let job = finished(&producer, producer.enqueue(spec).await.unwrap(), T).await;
    assert_eq!(job.status, Status::Failure);
    assert_eq!(job.message, "disk on fire");
    assert_eq!(job.error_code, Some(ErrorCode::Custom("DiskFire".into())));
    assert_eq!(job.attempts, 1, "fatal errors do not retry");
    assert!(job.dead);
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

async fn transient_failures_retry_with_backoff_until_success(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    let worker = InProcessWorker::start(&redis, |b| b).await;
    let backoff = RetryPolicy {
        initial_ms: 300,
        factor: 2.0,
        cap_ms: 10_000,
        jitter: 0.0,
    };
    let spec = JobSpec::new("flaky")
        .input(&json!({"fail_times": 2}))
        .unwrap()
        .backoff(backoff);
    let id = producer.enqueue(spec).await.unwrap();
    let job = finished(&producer, id, T).await;
    assert_eq!(job.status, Status::Success);
    assert_eq!(job.attempts, 3);
    assert_eq!(job.result, Some(json!({"attempts": 3})));
    // Two pauses of 300 ms and 600 ms lie between creation and the last start.
    let waited = job.started_at.unwrap() - job.created_at;
    assert!(
        waited >= chrono::Duration::milliseconds(900),
        "retried too early: {waited}"
    );
    assert_eq!(
        worker
            .metrics
            .retries
            .with_label_values(&["default", "flaky"])
            .get(),
        2
    );
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

/// Fails while `broken` is set.
struct Fragile {
    broken: Arc<AtomicBool>,
}

impl OneStep for Fragile {
    type Input = ();
    type Output = &'static str;
    async fn run(&self, _: &JobContext, _: ()) -> Result<&'static str, JobError> {
        if self.broken.load(Ordering::SeqCst) {
            Err(JobError::transient("dependency down").with_code("DependencyDown"))
        } else {
            Ok("fixed")
        }
    }
}

async fn exhausted_jobs_are_dead_until_retried_by_id(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    let broken = Arc::new(AtomicBool::new(true));
    let worker = InProcessWorker::start(&redis, |b| {
        b.handler(
            "fragile",
            Fragile {
                broken: broken.clone(),
            },
        )
    })
    .await;
    let id = producer
        .enqueue(
            JobSpec::new("fragile")
                .max_attempts(3)
                .backoff(fast_retry()),
        )
        .await
        .unwrap();
    let job = finished(&producer, id, T).await;
    assert_eq!(
        (job.status, job.attempts, job.dead),
        (Status::Failure, 3, true)
    );
    assert_eq!(
        job.error_code,
        Some(ErrorCode::Custom("DependencyDown".into()))
    );

    let dead = producer
        .list(ListQuery {
            dead_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        dead.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![id],
        "dead jobs stay listable"
    );
    assert_eq!(producer.stats(&[]).await.unwrap()[0].dead, 1);

    broken.store(false, Ordering::SeqCst);
    producer.retry(id).await.unwrap();
    let job = finished(&producer, id, T).await;
    assert_eq!(
        (job.status, job.attempts, job.dead),
        (Status::Success, 1, false)
    );
    assert_eq!(job.result, Some(json!("fixed")));
    assert_eq!(job.error_code, None);
    assert!(matches!(
        producer.retry(id).await,
        Err(tether_producer::Error::Store(StoreError::InvalidState(
            Status::Success
        )))
    ));
    let stats = &producer.stats(&[]).await.unwrap()[0];
    assert_eq!((stats.dead, stats.failure, stats.success), (0, 0, 1));
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

/// Counts its steps: handle once, then `checks` polls.
struct Counted {
    handles: Arc<AtomicU32>,
    checks: Arc<AtomicU32>,
}

impl Handler for Counted {
    type Input = u32;
    type Progress = Vec<u32>;
    type Output = Vec<u32>;
    async fn handle(&self, _: &JobContext, _: &u32) -> Result<Step<Vec<u32>, Vec<u32>>, JobError> {
        self.handles.fetch_add(1, Ordering::SeqCst);
        Ok(Step::Started(Vec::new()))
    }
    async fn check_complete(
        &self,
        ctx: &JobContext,
        polls: &u32,
        seen: &mut Vec<u32>,
    ) -> Result<Check<Vec<u32>>, JobError> {
        let n = self.checks.fetch_add(1, Ordering::SeqCst) + 1;
        seen.push(n);
        ctx.set_progress(i64::from(n * 100 / polls), format!("check {n}"))
            .await?;
        Ok(if n == *polls {
            Check::Done(seen.clone())
        } else {
            Check::Pending
        })
    }
    fn check_interval(&self) -> (Duration, Duration) {
        (Duration::from_millis(10), Duration::from_millis(40))
    }
}

async fn handle_runs_once_then_check_is_polled_with_the_progress_object(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    let (handles, checks) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let handler = Counted {
        handles: handles.clone(),
        checks: checks.clone(),
    };
    let worker = InProcessWorker::start(&redis, |b| b.handler("counted", handler)).await;
    let id = producer
        .enqueue(JobSpec::new("counted").input(&5u32).unwrap())
        .await
        .unwrap();
    let job = finished(&producer, id, T).await;
    assert_eq!(job.status, Status::Success);
    assert_eq!(
        job.result,
        Some(json!([1, 2, 3, 4, 5])),
        "the progress object carried state across polls"
    );
    assert_eq!(
        (
            handles.load(Ordering::SeqCst),
            checks.load(Ordering::SeqCst)
        ),
        (1, 5)
    );
    assert_eq!(job.phase, Some(tether_model::Phase::Check));
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

/// An input that names its job type, for enqueue and registration alike.
#[derive(serde::Serialize, serde::Deserialize)]
struct Shout {
    text: String,
}

impl JobInput for Shout {
    const TYPE: &'static str = "shout";
}

struct Shouter;

impl OneStep for Shouter {
    type Input = Shout;
    type Output = String;
    async fn run(&self, _: &JobContext, input: Shout) -> Result<String, JobError> {
        Ok(input.text.to_uppercase())
    }
}

async fn a_job_type_named_by_its_input_is_registered_and_enqueued_under_that_name(
    topology: Topology,
) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    let worker = InProcessWorker::start(&redis, |b| b.register(Shouter)).await;
    let spec = JobSpec::of(&Shout { text: "hi".into() }).unwrap();
    let job = finished(&producer, producer.enqueue(spec).await.unwrap(), T).await;
    assert_eq!(
        (job.job_type.as_str(), job.status, job.result),
        ("shout", Status::Success, Some(json!("HI")))
    );
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

async fn cancel_rules(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;

    // Pending: cancelled at once (no worker yet).
    let pending = producer.enqueue(JobSpec::new("noop")).await.unwrap();
    assert_eq!(
        producer.cancel(pending).await.unwrap(),
        CancelOutcome::Cancelled
    );
    let job = producer.get(pending).await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.error_code.clone()),
        (Status::Cancelled, Some(ErrorCode::RequestCanceled))
    );
    // Finished: InvalidState.
    assert!(matches!(
        producer.cancel(pending).await,
        Err(tether_producer::Error::Store(StoreError::InvalidState(
            Status::Cancelled
        )))
    ));
    // Not cancelable: NotSupported.
    let fixed = producer
        .enqueue(
            JobSpec::new("noop")
                .cancelable(false)
                .delay(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert!(matches!(
        producer.cancel(fixed).await,
        Err(tether_producer::Error::Store(StoreError::NotSupported))
    ));

    // Running: stopped within one heartbeat, recorded cancelled once.
    let ttl = Duration::from_millis(900);
    let worker = InProcessWorker::start(&redis, |b| b.lease_ttl(ttl)).await;
    let spec = JobSpec::new("progress")
        .input(&json!({"steps": 200, "step_ms": 100}))
        .unwrap();
    let running = producer.enqueue(spec).await.unwrap();
    until_job(&producer, running, T, |j| {
        j.status == Status::Processing && j.progress > 0
    })
    .await;
    let asked = std::time::Instant::now();
    assert_eq!(
        producer.cancel(running).await.unwrap(),
        CancelOutcome::Requested
    );
    // A second cancel is the same request, unless the worker's progress report (every
    // 100 ms) saw the first one in between and the job has ended cancelled already.
    match producer.cancel(running).await {
        Ok(outcome) => assert_eq!(
            outcome,
            CancelOutcome::Requested,
            "a second cancel is the same request"
        ),
        Err(tether_producer::Error::Store(StoreError::InvalidState(Status::Cancelled))) => {}
        Err(e) => panic!("a second cancel: {e}"),
    }
    let job = finished(&producer, running, T).await;
    assert!(
        asked.elapsed() < ttl / 3 + Duration::from_millis(700),
        "took {:?}",
        asked.elapsed()
    );
    assert_eq!(
        (job.status, job.error_code),
        (Status::Cancelled, Some(ErrorCode::RequestCanceled))
    );
    assert_eq!(job.progress, 100);
    assert_eq!(producer.stats(&[]).await.unwrap()[0].cancelled, 2);
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

/// Ignores cancellation entirely: the runtime must still stop it.
struct Stubborn;

impl OneStep for Stubborn {
    type Input = ();
    type Output = ();
    async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(())
    }
}

async fn a_handler_that_ignores_cancel_is_stopped_anyway(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    let worker = InProcessWorker::start(&redis, |b| {
        b.lease_ttl(Duration::from_millis(600))
            .handler("stubborn", Stubborn)
    })
    .await;
    let id = producer.enqueue(JobSpec::new("stubborn")).await.unwrap();
    until_job(&producer, id, T, |j| j.status == Status::Processing).await;
    producer.cancel(id).await.unwrap();
    let job = finished(&producer, id, Duration::from_secs(3)).await;
    assert_eq!(job.status, Status::Cancelled);
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

/// Reports chosen progress values, then waits to be released.
struct Reporter {
    release: Arc<AtomicBool>,
}

impl OneStep for Reporter {
    type Input = Vec<i64>;
    type Output = ();
    async fn run(&self, ctx: &JobContext, values: Vec<i64>) -> Result<(), JobError> {
        for v in values {
            ctx.set_progress(v, format!("at {v}")).await?;
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        while !self.release.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

async fn progress_clamps_renews_the_lease_and_sets_eta(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    let release = Arc::new(AtomicBool::new(false));
    // A long heartbeat period, so only progress reports can move the lease deadline.
    let worker = InProcessWorker::start(&redis, |b| {
        b.lease_ttl(Duration::from_secs(30)).handler(
            "reporter",
            Reporter {
                release: release.clone(),
            },
        )
    })
    .await;
    let id = producer
        .enqueue(
            JobSpec::new("reporter")
                .input(&vec![-20i64, 40, 250])
                .unwrap(),
        )
        .await
        .unwrap();
    let first = until_job(&producer, id, T, |j| {
        j.progress_message.as_deref() == Some("at -20")
    })
    .await;
    assert_eq!(first.progress, 0, "below 0 clamps to 0");
    let second = until_job(&producer, id, T, |j| {
        j.progress_message.as_deref() == Some("at 40")
    })
    .await;
    assert_eq!(second.progress, 40);
    assert!(
        second.lease_expires_at > first.lease_expires_at,
        "a progress report renews the lease"
    );
    let eta = second.eta.expect("eta while running");
    assert!(eta > second.updated_at, "eta lies ahead while running");
    let third = until_job(&producer, id, T, |j| {
        j.progress_message.as_deref() == Some("at 250")
    })
    .await;
    assert_eq!(third.progress, 100, "above 100 clamps to 100");
    release.store(true, Ordering::SeqCst);
    let done = finished(&producer, id, T).await;
    assert_eq!(done.eta, done.finished_at);
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

async fn delayed_jobs_run_on_time_and_idempotency_keys_enqueue_once(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    let worker = InProcessWorker::start(&redis, |b| b).await;
    let delay = Duration::from_millis(1500);
    let id = producer
        .enqueue(JobSpec::new("noop").delay(delay))
        .await
        .unwrap();
    let scheduled = producer.get(id).await.unwrap().unwrap();
    assert_eq!(scheduled.status, Status::Pending);
    assert_eq!(producer.stats(&[]).await.unwrap()[0].scheduled, 1);
    let job = finished(&producer, id, T).await;
    let run_at = job.run_at.expect("run_at recorded");
    let started = job.started_at.unwrap();
    assert!(
        started >= run_at,
        "started {started} before run_at {run_at}"
    );
    assert!(
        started - run_at <= chrono::Duration::seconds(1),
        "started {} after run_at",
        started - run_at
    );

    let spec = JobSpec::new("noop").idempotency_key("order-17");
    let a = producer.enqueue(spec.clone()).await.unwrap();
    let b = producer.enqueue(spec).await.unwrap();
    assert_eq!(a, b);
    finished(&producer, a, T).await;
    assert_eq!(
        producer.stats(&[]).await.unwrap()[0].success,
        2,
        "the key enqueued one job"
    );
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

async fn graceful_shutdown_hands_unfinished_leases_back_at_once(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    let ttl = Duration::from_secs(30);
    let first = InProcessWorker::start(&redis, |b| {
        b.lease_ttl(ttl).shutdown_grace(Duration::from_millis(300))
    })
    .await;
    let spec = JobSpec::new("sleep").input(&json!({"ms": 1500})).unwrap();
    let ids = producer.enqueue_many(vec![spec; 4]).await.unwrap();
    for id in &ids {
        until_job(&producer, *id, T, |j| j.status == Status::Processing).await;
    }
    first.shutdown().await;
    for id in &ids {
        let job = producer.get(*id).await.unwrap().unwrap();
        assert_eq!(
            (job.status, job.attempts),
            (Status::Pending, 0),
            "handed back without spending an attempt"
        );
    }
    let handed_back = std::time::Instant::now();
    let second = InProcessWorker::start(&redis, |b| b.lease_ttl(ttl)).await;
    let jobs = all_finished(&producer, &ids, T).await;
    assert_eq!(count(&jobs, Status::Success), 4);
    assert!(
        handed_back.elapsed() < Duration::from_secs(6),
        "picked up well before lease_ttl"
    );
    second.shutdown().await;
    assert_consistent(&redis).await;
}

async fn bad_input_fails_the_job_not_the_worker(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = store(&redis).await;
    let producer = producer(&redis).await;
    let worker = InProcessWorker::start(&redis, |b| {
        b.config(tether_worker::WorkerConfig {
            max_payload_bytes: 1024,
            lease_ttl: Duration::from_secs(5),
            reap_interval: Duration::from_millis(300),
            ..Default::default()
        })
    })
    .await;
    let garbage = store
        .enqueue_encoded(&JobSpec::new("sleep"), Some(vec![0xc1, 0xff, 0x00]))
        .await
        .unwrap()
        .id;
    let unknown = producer
        .enqueue(JobSpec::new("no_such_type"))
        .await
        .unwrap();
    let big = producer
        .enqueue(JobSpec::new("noop").input(&"x".repeat(4096)).unwrap())
        .await
        .unwrap();
    let panics = producer
        .enqueue(JobSpec::new("panic").max_attempts(2).backoff(fast_retry()))
        .await
        .unwrap();
    let timeout = producer
        .enqueue(
            JobSpec::new("sleep")
                .input(&json!({"ms": 5000}))
                .unwrap()
                .timeout(Duration::from_millis(200))
                .max_attempts(1),
        )
        .await
        .unwrap();
    let fine = producer.enqueue(JobSpec::new("noop")).await.unwrap();
    let expect = [
        (garbage, ErrorCode::InvalidPayload, 1),
        (unknown, ErrorCode::UnknownJobType, 1),
        (big, ErrorCode::PayloadTooLarge, 1),
        (panics, ErrorCode::HandlerPanicked, 2),
        (timeout, ErrorCode::Timedout, 1),
    ];
    for (id, code, attempts) in expect {
        let job = finished(&producer, id, T).await;
        assert_eq!(
            (job.status, job.error_code.clone(), job.attempts),
            (Status::Failure, Some(code.clone()), attempts),
            "{code}"
        );
        assert!(!job.message.is_empty(), "{code} has a message");
    }
    assert_eq!(
        finished(&producer, fine, T).await.status,
        Status::Success,
        "other jobs are unaffected"
    );
    assert!(!worker.handle.is_finished(), "the worker keeps running");

    // The producer refuses what it can check itself, with typed errors.
    let huge = JobSpec::new("noop")
        .input(&"x".repeat(2 * 1024 * 1024))
        .unwrap();
    assert!(matches!(
        producer.enqueue(huge).await,
        Err(tether_producer::Error::Store(
            StoreError::PayloadTooLarge { .. }
        ))
    ));
    assert!(matches!(
        producer
            .enqueue(JobSpec::new("noop").queue("bad queue"))
            .await,
        Err(tether_producer::Error::Store(StoreError::Spec(_)))
    ));
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

async fn list_filters_sorts_and_pages_without_gaps(topology: Topology) {
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    let mut ids = Vec::new();
    for i in 0..23 {
        let t = if i % 3 == 0 { "sleep" } else { "noop" };
        let q = if i % 2 == 0 { "even" } else { "odd" };
        ids.push(
            producer
                .enqueue(
                    JobSpec::new(t)
                        .queue(q)
                        .owner(if i < 5 { "alice" } else { "bob" }),
                )
                .await
                .unwrap(),
        );
    }
    producer.cancel(ids[4]).await.unwrap();
    // Page through everything, oldest first, 5 at a time.
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let page = producer
            .list(ListQuery {
                limit: 5,
                marker,
                sort_dir: SortDir::Asc,
                ..Default::default()
            })
            .await
            .unwrap();
        seen.extend(page.jobs.iter().map(|j| j.id));
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    assert_eq!(
        seen, ids,
        "every job once, in creation order, across queues"
    );
    let newest = producer
        .list(ListQuery {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(newest.jobs[0].id, ids[22]);
    let sleeps = producer
        .list(ListQuery {
            job_type: Some("sleep".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sleeps.jobs.len(), 8);
    let cancelled = producer
        .list(ListQuery {
            status: Some(Status::Cancelled),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        cancelled.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[4]]
    );
    let alice = producer.for_owner("alice");
    let mine = alice
        .list(ListQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.jobs.len(), 5);
    assert!(
        alice.get(ids[10]).await.unwrap().is_none(),
        "another owner's job is invisible"
    );
    assert!(alice.cancel(ids[10]).await.unwrap_err().is_not_found());
    let even = producer
        .list(ListQuery {
            queues: vec!["even".into()],
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(even.jobs.len(), 12);
    assert!(
        even.jobs
            .iter()
            .all(|j| j.input.is_null() && j.result.is_none()),
        "summaries"
    );
    assert_consistent(&redis).await;
}

async fn finished_jobs_expire_with_their_index_entries(topology: Topology) {
    let redis = TestRedis::start(topology);
    let mut config = tether_store::StoreConfig::new(redis.url());
    config.retention = Duration::from_millis(500);
    let store = tether_store::Store::connect(config).await.unwrap();
    let producer = tether_producer::Producer::from_store(store.clone());
    let spec = JobSpec::new("noop").idempotency_key("once");
    let id = producer.enqueue(spec.clone()).await.unwrap();
    producer.cancel(id).await.unwrap();
    assert_eq!(
        producer.enqueue(spec.clone()).await.unwrap(),
        id,
        "key held while the record is retained"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(store.expire("default", 100).await.unwrap(), 1);
    assert!(producer.get(id).await.unwrap().is_none());
    assert!(
        producer
            .list(ListQuery::default())
            .await
            .unwrap()
            .jobs
            .is_empty()
    );
    let stats = &producer.stats(&[]).await.unwrap()[0];
    assert_eq!(stats.cancelled, 0);
    assert_ne!(
        producer.enqueue(spec).await.unwrap(),
        id,
        "the key is free again after expiry"
    );
    assert_consistent(&redis).await;
}

async fn watch_streams_progress_until_finished(topology: Topology) {
    use futures::StreamExt;
    let redis = TestRedis::start(topology);
    let producer = producer(&redis).await;
    let worker = InProcessWorker::start(&redis, |b| b).await;
    let id = producer
        .enqueue(
            JobSpec::new("import")
                .input(&json!({"size_mb": 5, "chunk_ms": 150}))
                .unwrap(),
        )
        .await
        .unwrap();
    let events: Vec<_> = producer
        .watch(id)
        .await
        .unwrap()
        .map(|e| e.unwrap())
        .collect()
        .await;
    let last = events.last().unwrap();
    assert!(matches!(last, tether_producer::Event::Finished(j) if j.status == Status::Success));
    let progress: Vec<u8> = events.iter().map(|e| e.job().progress).collect();
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress never goes back: {progress:?}"
    );
    assert!(
        progress.iter().filter(|p| (1..100).contains(*p)).count() >= 2,
        "intermediate progress seen: {progress:?}"
    );
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

/// A tenant cannot watch a job that is not its own, and trying writes nothing: a plain
/// pending job has no record (layout 4), and watching one gives it one.
async fn a_tenant_cannot_watch_another_owners_job(topology: Topology) {
    use redis::Commands;
    let redis = TestRedis::start(topology);
    let admin = producer(&redis).await;
    let id = admin.enqueue(JobSpec::new("noop")).await.unwrap();
    let record = format!("tether:{{default}}:job:{id}");
    let mallory = admin.for_owner("mallory");
    match mallory.watch(id).await {
        Err(e) if e.is_not_found() => {}
        Err(e) => panic!("watching another owner's job: {e}"),
        Ok(_) => panic!("a tenant watches another owner's job"),
    }
    let written: bool = redis.connection_for(&record).exists(&record).unwrap();
    assert!(!written, "a refused watch wrote the job's record");
    assert_consistent(&redis).await;
}

on_every_topology!(
    a_tenant_cannot_watch_another_owners_job,
    success_records_the_result,
    fatal_failure_records_message_and_code,
    transient_failures_retry_with_backoff_until_success,
    exhausted_jobs_are_dead_until_retried_by_id,
    handle_runs_once_then_check_is_polled_with_the_progress_object,
    a_job_type_named_by_its_input_is_registered_and_enqueued_under_that_name,
    cancel_rules,
    a_handler_that_ignores_cancel_is_stopped_anyway,
    progress_clamps_renews_the_lease_and_sets_eta,
    delayed_jobs_run_on_time_and_idempotency_keys_enqueue_once,
    graceful_shutdown_hands_unfinished_leases_back_at_once,
    bad_input_fails_the_job_not_the_worker,
    list_filters_sorts_and_pages_without_gaps,
    finished_jobs_expire_with_their_index_entries,
    watch_streams_progress_until_finished,
);
