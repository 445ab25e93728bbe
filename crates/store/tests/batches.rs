//! Batched scripts answer each job on its own, and a whole batch is safe to resend.

use std::time::Duration;

use tether_model::{ErrorCode, JobSpec, Status};
use tether_store::{FinishOutcome, LeaseError, Outcome, Store, StoreConfig, encode};
use tether_testkit::{RedisOptions, RedisServer};

#[tokio::test]
async fn a_finish_batch_fences_each_job_and_survives_a_resend() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let done = store
        .enqueue_many(&vec![JobSpec::new("t"); 3])
        .await
        .unwrap();
    assert!(done.iter().all(|d| d.created));
    let claimed = store
        .claim("default", "w", 3, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    // The third lease lapses and is reaped: its holder is now stale. (The others are
    // renewed before they lapse: a lapsed lease cannot be renewed.)
    let mut leases: Vec<_> = claimed.iter().map(|c| c.lease.clone()).collect();
    leases.sort_by_key(|l| l.id);
    store
        .renew(
            "default",
            &[
                (leases[0].id, leases[0].token.clone()),
                (leases[1].id, leases[1].token.clone()),
            ],
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        store.reap("default", 10).await.unwrap().requeued,
        vec![leases[2].id]
    );

    let success = Outcome::Success(encode(&"ok").unwrap());
    let retry = Outcome::Error {
        retryable: true,
        retry_delay: Duration::ZERO,
        message: "again".into(),
        code: ErrorCode::Custom("Again".into()),
        info: vec![],
    };
    let batch = [
        (&leases[0], &success),
        (&leases[1], &retry),
        (&leases[2], &success),
    ];
    let first = store.finish_many("default", &batch).await.unwrap();
    assert!(matches!(
        first.as_slice(),
        [
            Ok(FinishOutcome::Recorded),
            Ok(FinishOutcome::Retrying),
            Err(LeaseError::Lost)
        ]
    ));
    let resent = store.finish_many("default", &batch).await.unwrap();
    assert!(matches!(
        resent.as_slice(),
        [
            Ok(FinishOutcome::AlreadyRecorded {
                status: Some(Status::Success)
            }),
            Ok(FinishOutcome::AlreadyRecorded {
                status: Some(Status::Pending)
            }),
            Err(LeaseError::Lost)
        ]
    ));
    let statuses: Vec<Status> = {
        let mut out = Vec::new();
        for l in &leases {
            out.push(store.get("default", l.id).await.unwrap().unwrap().status);
        }
        out
    };
    assert_eq!(
        statuses,
        vec![Status::Success, Status::Pending, Status::Pending]
    );
    assert_eq!(
        store.stats("default").await.unwrap().success,
        1,
        "one outcome recorded once"
    );
}

#[tokio::test]
async fn an_enqueue_batch_keeps_order_and_idempotency_keys_within_it() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let specs = vec![
        JobSpec::new("a").queue("q1"),
        JobSpec::new("b").queue("q2").idempotency_key("k"),
        JobSpec::new("c").queue("q1"),
        JobSpec::new("d").queue("q2").idempotency_key("k"),
    ];
    let done = store.enqueue_many(&specs).await.unwrap();
    assert_eq!(done.len(), 4);
    assert_eq!(
        done[3].id, done[1].id,
        "the second use of a key returns the first job"
    );
    assert!(done[0].created && done[1].created && done[2].created && !done[3].created);
    for (spec, d) in specs.iter().zip(&done).take(3) {
        assert_eq!(
            store
                .get(&spec.queue, d.id)
                .await
                .unwrap()
                .unwrap()
                .job_type,
            spec.job_type,
            "results in input order"
        );
    }
    assert_eq!(store.stats("q2").await.unwrap().pending, 1);
}

/// The enqueue script counts the jobs it writes (`QueueStats::enqueued`), one count per
/// job written: not a duplicate idempotency key, not a resend of an id already written.
#[tokio::test]
async fn an_enqueue_counts_the_jobs_it_writes_and_nothing_else() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    assert_eq!(store.stats("c").await.unwrap().enqueued, 0);
    let spec = || JobSpec::new("t").queue("c");
    let first = store.enqueue(&spec()).await.unwrap();
    store
        .enqueue_many(&[
            spec(),
            spec().delay(Duration::from_secs(3600)),
            spec().idempotency_key("k"),
            spec().idempotency_key("k"),
        ])
        .await
        .unwrap();
    store.enqueue(&spec().idempotency_key("k")).await.unwrap();
    let resent = store.enqueue_as(&spec(), first.id).await.unwrap();
    assert!(!resent.written_now);
    let stats = store.stats("c").await.unwrap();
    assert_eq!((stats.enqueued, stats.pending + stats.scheduled), (4, 4));
    // Claims and outcomes leave it alone: it counts arrivals, not jobs present.
    let claimed = store
        .claim("c", "w", 10, Duration::from_secs(30))
        .await
        .unwrap();
    let ok = Outcome::Success(encode(&1).unwrap());
    store.finish(&claimed[0].lease, &ok).await.unwrap();
    assert_eq!(store.stats("c").await.unwrap().enqueued, 4);
}

/// One batch may name a job more than once: the same lease twice (a resend within the
/// batch: the first decides) and a stale lease of the same job, before and after the
/// live one. Each is answered on its own, and one outcome is recorded.
#[tokio::test]
async fn a_finish_batch_naming_a_job_twice_records_one_outcome() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    store.enqueue(&JobSpec::new("t")).await.unwrap();
    let ttl = Duration::from_millis(300);
    let first = store.claim("default", "w", 1, ttl).await.unwrap();
    let stale = first[0].lease.clone();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        store.reap("default", 10).await.unwrap().requeued,
        vec![stale.id]
    );
    let again = store
        .claim("default", "w", 1, Duration::from_secs(30))
        .await
        .unwrap();
    let live = again[0].lease.clone();
    assert_eq!(live.id, stale.id);
    assert_ne!(live.token, stale.token);

    let success = Outcome::Success(encode(&"ok").unwrap());
    // (The live lease's second send follows a stale one of the same job: it is found
    // past it.)
    let batch = [
        (&stale, &success),
        (&live, &success),
        (&stale, &success),
        (&live, &success),
    ];
    let answers = store.finish_many("default", &batch).await.unwrap();
    assert!(
        matches!(
            answers.as_slice(),
            [
                Err(LeaseError::Lost),
                Ok(FinishOutcome::Recorded),
                Err(LeaseError::Lost),
                Ok(FinishOutcome::AlreadyRecorded { status: None })
            ]
        ),
        "{answers:?}"
    );
    let job = store.get("default", live.id).await.unwrap().unwrap();
    assert_eq!(job.status, Status::Success);
    assert_eq!(store.stats("default").await.unwrap().success, 1);
}
