//! The claim loop of one queue: lease what capacity allows, spawn a task per job,
//! and block on a dedicated connection while the queue is empty.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use rand::Rng;
use tether_store::{ClaimBatch, HeldBack};
use tokio_util::sync::CancellationToken;

use super::{Shared, job};
use crate::context::Slot;
use crate::metrics::THROTTLE_LIMITS;
use crate::retry::store_backoff;

type Backoff = <backon::ExponentialBuilder as BackoffBuilder>::Backoff;

/// Bounds on the pause after a claim that flow control held back (the claim says how
/// long; a paused queue or a concurrency limit says 100 ms).
const MIN_HELD_PAUSE: Duration = Duration::from_millis(2);
const MAX_HELD_PAUSE: Duration = Duration::from_secs(1);
const MAX_HELD_SPREAD: Duration = Duration::from_millis(10);

pub(super) async fn run(shared: Arc<Shared>, queue: String, stop: CancellationToken) {
    let mut waiter = shared.store.waiter();
    let mut backoff: Option<Backoff> = None;
    let idle_wait = Duration::from_secs(2);
    loop {
        let mut permit = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            permit = shared.capacity.clone().acquire_owned() => permit.expect("semaphore never closed"),
        };
        let extra = shared
            .capacity
            .available_permits()
            .min(shared.config.claim_batch - 1);
        if extra > 0
            && let Ok(more) = shared.capacity.clone().try_acquire_many_owned(extra as u32)
        {
            permit.merge(more);
        }
        let asked = permit.num_permits();
        // The lease can only have started after the claim was sent: the self-fence
        // clock of every job in this batch starts here, not when the reply arrives.
        let sent_at = Instant::now();
        let claimed = shared
            .store
            .claim_batch(&queue, &shared.id, asked, shared.config.lease_ttl)
            .await;
        let pause = match claimed {
            Ok(ClaimBatch {
                jobs, held_back, ..
            }) => {
                backoff = None;
                let emptied = jobs.len() < asked;
                for claimed in jobs {
                    let one = permit.split(1).expect("a permit per claimed job");
                    let slot = Arc::new(Slot::new(claimed.lease.clone(), sent_at));
                    slot.deadline_ms.store(
                        claimed.lease_deadline_ms,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    // Registered before the task starts, so a newer attempt always
                    // displaces an older one.
                    if shared.start_attempt(slot.clone()) {
                        shared
                            .jobs
                            .spawn(job::run(shared.clone(), claimed, slot, one));
                    }
                }
                drop(permit);
                let then = match held_back {
                    Some(held) => held_back_then(&shared, &queue, &held),
                    None if !emptied => Then::Claim,
                    // The claim emptied the stream: block until something new arrives.
                    None => Then::Wait(idle_wait),
                };
                match then {
                    Then::Claim => continue,
                    Then::Sleep(pause) => pause,
                    Then::Wait(timeout) => {
                        match tokio::select! { r = waiter.wait(&queue, timeout) => r, _ = stop.cancelled() => return }
                        {
                            Ok(_) => continue,
                            Err(e) => {
                                shared.redis_error("wait");
                                tracing::warn!(%queue, error = %e, "waiting for jobs failed");
                                next_pause(&mut backoff)
                            }
                        }
                    }
                }
            }
            Err(e) => {
                drop(permit);
                shared.redis_error("claim");
                tracing::warn!(%queue, error = %e, "claim failed");
                next_pause(&mut backoff)
            }
        };
        tokio::select! { _ = tokio::time::sleep(pause) => {}, _ = stop.cancelled() => return }
    }
}

/// What the claim loop does next.
enum Then {
    /// Claim again at once.
    Claim,
    /// Sleep this long, then claim.
    Sleep(Duration),
    /// Block on the stream for a new entry, at most this long, then claim.
    Wait(Duration),
}

/// A claim that flow control held back: counted by the limit that bound, then the
/// pause the claim asked for. Ready jobs wait for a limit or a resume, so the stream
/// (which holds them) would wake the loop at once; only behind a group limit may other
/// groups' new jobs start, so there a new entry still wakes it.
fn held_back_then(shared: &Shared, queue: &str, held: &HeldBack) -> Then {
    if held.limit == "scan" {
        // The claim read its budget of entries (stale or held ones): go on.
        return Then::Claim;
    }
    let limit = if THROTTLE_LIMITS.contains(&held.limit.as_str()) {
        held.limit.as_str()
    } else {
        "other"
    };
    shared
        .metrics
        .throttled
        .with_label_values(&[queue, limit])
        .inc();
    // Workers told the same time spread out by up to a tenth of the pause (10 ms at
    // most), and never come early: a rate window's slot opens at the time told, and
    // every millisecond after it is a start lost (a ±10 % jitter cost a rate limit
    // about 5 % of its starts).
    let pause = held.retry_after.clamp(MIN_HELD_PAUSE, MAX_HELD_PAUSE);
    let spread = (pause / 10).min(MAX_HELD_SPREAD);
    let pause = pause + spread.mul_f64(rand::rng().random_range(0.0..1.0));
    if held.limit.starts_with("group_") {
        Then::Wait(pause)
    } else {
        Then::Sleep(pause)
    }
}

fn next_pause(state: &mut Option<Backoff>) -> Duration {
    state
        .get_or_insert_with(|| store_backoff().build())
        .next()
        .unwrap_or(Duration::from_secs(2))
}
