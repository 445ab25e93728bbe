//! The Lua scripts against the model's state machine: random operation
//! sequences run on both, and Redis must accept and refuse exactly what the
//! model does and end in the same state.

use std::time::Duration;

use proptest::prelude::*;
use tether_model::machine::{JobState, Op};
use tether_model::{ErrorCode, JobSpec, Status, progress};
use tether_store::{Claimed, FinishOutcome, Outcome, Store, StoreConfig};
use tether_testkit::{RedisOptions, RedisServer};

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Claim),
        1 => (-50i64..200).prop_map(Op::Progress),
        2 => Just(Op::Complete),
        2 => any::<bool>().prop_map(|transient| Op::Fail { transient }),
        1 => Just(Op::CancelObserved),
        2 => Just(Op::Cancel),
        1 => Just(Op::LeaseExpired),
        1 => Just(Op::Release),
        1 => Just(Op::Snooze),
        1 => Just(Op::Retry),
    ]
}

/// Applies `op` to Redis; returns whether Redis accepted it.
async fn apply(
    store: &Store,
    redis: &RedisServer,
    queue: &str,
    spec_id: tether_model::JobId,
    lease: &mut Option<Claimed>,
    op: Op,
) -> bool {
    // Leases last until `LeaseExpired` moves their deadline into the past (as time
    // would): a lapsed lease is lost at once, so a short TTL would lose every lease.
    let ttl = Duration::from_secs(60);
    let finish = |outcome: Outcome| {
        let lease = lease.clone();
        async move {
            let Some(c) = lease else { return false };
            matches!(
                store.finish(&c.lease, &outcome).await,
                Ok(FinishOutcome::Recorded | FinishOutcome::Retrying | FinishOutcome::Dead)
            )
        }
    };
    match op {
        Op::Claim => {
            let claimed = store.claim(queue, "w", 10, ttl).await.unwrap();
            assert!(claimed.len() <= 1);
            let accepted = !claimed.is_empty();
            if accepted {
                *lease = claimed.into_iter().next();
            }
            accepted
        }
        Op::Progress(p) => match lease {
            Some(c) => {
                store
                    .progress(&c.lease, ttl, progress::clamp(p), Some("step"), None)
                    .await
                    .unwrap()
                    != tether_store::RenewStatus::Lost
            }
            None => false,
        },
        Op::Complete => finish(Outcome::Success(tether_store::encode(&42).unwrap())).await,
        Op::Fail { transient } => {
            finish(Outcome::Error {
                retryable: transient,
                retry_delay: Duration::ZERO,
                message: "boom".into(),
                code: ErrorCode::Custom("Boom".into()),
                info: vec!["detail".into()],
            })
            .await
        }
        Op::CancelObserved => {
            finish(Outcome::Cancelled {
                message: "stopped".into(),
            })
            .await
        }
        Op::Cancel => store.cancel(queue, spec_id, None).await.is_ok(),
        Op::LeaseExpired => {
            let _: i64 = redis::cmd("ZADD")
                .arg(format!("tether:{{{queue}}}:leases"))
                .arg("XX")
                .arg(1)
                .arg(spec_id.to_string())
                .query(&mut redis.connection())
                .unwrap();
            !store.reap(queue, 10).await.unwrap().is_empty()
        }
        Op::Release => match lease {
            Some(c) => {
                store
                    .release(queue, &[(c.lease.id, c.lease.token.clone())])
                    .await
                    .unwrap()
                    == 1
            }
            None => false,
        },
        Op::Snooze => match lease {
            Some(c) => store.snooze(&c.lease, Duration::ZERO).await.is_ok_and(|o| {
                // `AlreadyEnded` (this lease had ended) writes nothing.
                o == tether_store::SnoozeOutcome::Snoozed
                    || o == tether_store::SnoozeOutcome::Cancelled
            }),
            None => false,
        },
        Op::Retry => store.retry_dead(queue, spec_id, None).await.is_ok(),
    }
}

#[test]
fn scripts_follow_the_state_machine() {
    let redis = RedisServer::start(RedisOptions::default());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt
        .block_on(Store::connect(StoreConfig::new(redis.url())))
        .unwrap();
    let case = std::sync::atomic::AtomicU32::new(0);
    let config = ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    };
    // Priority and group choose where a ready job waits (the stream or a list), so
    // every transition runs on both paths.
    proptest!(config, |(max in 1u32..4, cancelable: bool, priority in 0u8..10, grouped: bool,
                        ops in proptest::collection::vec(op(), 1..30))| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let queue = format!("mb{n}");
        rt.block_on(async {
            let mut spec = JobSpec::new("t").queue(&queue).max_attempts(max).cancelable(cancelable)
                .priority(priority);
            if grouped {
                spec = spec.group("g");
            }
            let id = store.enqueue(&spec).await.unwrap().id;
            let mut model = JobState::new(max, cancelable);
            let mut lease = None;
            for (step, op) in ops.iter().enumerate() {
                let expected = model.apply(*op).is_ok();
                let accepted = apply(&store, &redis, &queue, id, &mut lease, *op).await;
                let job = store.get(&queue, id).await.unwrap().unwrap();
                let ctx = format!("step {step} {op:?} after {:?}", &ops[..step]);
                assert_eq!(accepted, expected, "accept/refuse differs at {ctx}");
                assert_eq!(job.status, model.status, "status at {ctx}");
                assert_eq!(job.attempts, model.attempts, "attempts at {ctx}");
                assert_eq!(job.dead, model.dead, "dead at {ctx}");
                assert_eq!(job.cancel_requested, model.cancel_requested, "cancel_requested at {ctx}");
                let problems = store.check_consistency(&queue).await.unwrap();
                assert!(problems.is_empty(), "inconsistent at {ctx}: {problems:?}");
                // The indexes and counters agree with the record.
                let stats = store.stats(&queue).await.unwrap();
                let one = |s: Status| u64::from(model.status == s);
                assert_eq!(
                    (stats.pending + stats.scheduled, stats.processing, stats.success, stats.failure, stats.cancelled, stats.dead),
                    (one(Status::Pending), one(Status::Processing), one(Status::Success), one(Status::Failure),
                     one(Status::Cancelled), u64::from(model.dead)),
                    "queue stats at {ctx}"
                );
                if job.status.is_final() {
                    assert_eq!(job.progress, 100, "progress at {ctx}");
                    assert!(job.finished_at.is_some() && job.expires_at.is_some());
                } else {
                    assert_eq!(job.progress, model.progress, "progress at {ctx}");
                }
            }
        });
    });
}
