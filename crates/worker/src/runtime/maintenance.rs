//! Maintenance that any worker runs (there is no leader; the scripts make concurrent
//! runs harmless): promote due delayed jobs, take back lapsed leases, delete records
//! past retention, sample queue depths. Each runs in passes of bounded script calls
//! until a pass comes back short, so it keeps pace with any backlog.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tether_model::JobId;
use tether_store::{LeaseToken, StoreError};
use tokio_util::sync::CancellationToken;

use super::Shared;

/// Jobs handled by one script call: short enough not to hold Redis up (a few ms).
const PASS: usize = 1000;
/// Jobs promoted by one script call: fewer, since each is made ready (a record write and
/// its list or stream entry) and a claim for a priority-0 job may be queued behind it
/// (about a millisecond per call).
const PROMOTE_PASS: usize = 250;
/// Longest run of passes of one kind in a row, so the others are not starved.
const MAX_RUN: Duration = Duration::from_secs(2);
const MAX_PROMOTE_PAUSE: Duration = Duration::from_millis(500);
const PAUSE_BETWEEN_PASSES: Duration = Duration::from_millis(2);

/// Promotes due delayed jobs (retries, hand-backs, delayed starts) on its own task, so
/// that a long reap or expiry run never delays them: at most every 500 ms, and at the
/// next due time when that is sooner.
pub(super) async fn promote_loop(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let mut pause = MAX_PROMOTE_PAUSE;
        for queue in &shared.config.queues {
            if let Some(next_due) = promote(&shared, queue).await {
                pause = pause.min(next_due.max(Duration::from_millis(5)));
            }
            expire_unstarted(&shared, queue).await;
        }
        tokio::select! { _ = tokio::time::sleep(pause) => {}, _ = stop.cancelled() => return }
    }
}

/// Reaps, expires and samples every queue once per reap interval (± 20 %, so that
/// workers started together spread out).
pub(super) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let mut cascades = HashMap::new();
    loop {
        for queue in &shared.config.queues {
            reap(&shared, queue).await;
            lapse_external(&shared, queue).await;
            finish_cascades(&shared, queue, &mut cascades).await;
            expire(&shared, queue).await;
            sample(&shared, queue).await;
        }
        let jitter = rand::rng().random_range(0.8..1.2);
        let pause = shared.config.reap_interval.mul_f64(jitter);
        tokio::select! { _ = tokio::time::sleep(pause) => {}, _ = stop.cancelled() => return }
    }
}

/// Calls `pass` until it handles fewer than `size` jobs, fails, or [`MAX_RUN`] is
/// spent. Returns the total handled and the last pass's answer.
async fn in_passes<T, F, Fut>(
    shared: &Shared,
    op: &str,
    queue: &str,
    size: usize,
    mut pass: F,
) -> (usize, Option<T>)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(usize, T), StoreError>>,
{
    let started = Instant::now();
    let mut total = 0;
    loop {
        match pass().await {
            Ok((n, last)) => {
                total += n;
                if n < size || started.elapsed() >= MAX_RUN {
                    return (total, Some(last));
                }
                // Let the claims and renewals queued behind these scripts through.
                tokio::time::sleep(PAUSE_BETWEEN_PASSES).await;
            }
            Err(e) => {
                shared.redis_error(op);
                tracing::debug!(%queue, error = %e, "{op} failed");
                return (total, None);
            }
        }
    }
}

/// Returns how long until the next delayed job is due, if any.
async fn promote(shared: &Shared, queue: &str) -> Option<Duration> {
    let (_, last) = in_passes(shared, "promote", queue, PROMOTE_PASS, || async {
        shared.store.promote(queue, PROMOTE_PASS).await
    })
    .await;
    last.flatten()
}

/// Fails the jobs not started by their start deadline, wherever they wait: no worker
/// has to find them first (every 500 ms at most, with promotion).
async fn expire_unstarted(shared: &Shared, queue: &str) {
    let (expired, _) = in_passes(shared, "expire", queue, PASS, || async {
        Ok((shared.store.expire_unstarted(queue, PASS).await?.len(), ()))
    })
    .await;
    if expired > 0 {
        shared
            .metrics
            .expired
            .with_label_values(&[queue])
            .inc_by(expired as u64);
    }
}

async fn reap(shared: &Shared, queue: &str) {
    let taken_back = std::sync::atomic::AtomicUsize::new(0);
    in_passes(shared, "reap", queue, PASS, || async {
        let reaped = shared.store.reap(queue, PASS).await?;
        taken_back.fetch_add(reaped.len(), std::sync::atomic::Ordering::Relaxed);
        // A pass is full when it looked at PASS lease entries, stale ones included.
        Ok((reaped.len() + reaped.stale, ()))
    })
    .await;
    let taken_back = taken_back.into_inner();
    if taken_back > 0 {
        shared
            .metrics
            .lease_expired
            .with_label_values(&[queue])
            .inc_by(taken_back as u64);
        tracing::warn!(%queue, jobs = taken_back, "took back jobs whose lease lapsed");
    }
}

/// Ends the external tasks whose driver stopped reporting progress within their lease
/// (`Timedout`), so that no driver has to call for it.
async fn lapse_external(shared: &Shared, queue: &str) {
    let ended = std::sync::atomic::AtomicUsize::new(0);
    in_passes(shared, "lapse", queue, PASS, || async {
        let lapsed = shared.store.lapse_external(queue, PASS).await?;
        let n = lapsed.failed.len() + lapsed.cancelled.len();
        ended.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        Ok((n + lapsed.stale, ()))
    })
    .await;
    let ended = ended.into_inner();
    if ended > 0 {
        tracing::info!(%queue, tasks = ended, "ended external tasks whose lease lapsed");
    }
}

/// How long a recorded cascade is left to its canceller before a worker finishes it
/// (walking a subtree of thousands of children takes a canceller a second or two).
const CASCADE_GRACE: Duration = Duration::from_secs(5);
/// Cascades looked at per queue and pass, oldest first.
const CASCADES_PER_PASS: usize = 20;

/// Finishes the cascades of cancels whose canceller died half-way (the API or a
/// producer killed while it walked the subtree): a cancelled parent still in its queue's
/// cascade set [`CASCADE_GRACE`] after this worker first saw it there has its subtree
/// cancelled (pending children at once, running ones at their next heartbeat), and is
/// then marked done. A walk that overlaps another (a worker's, the canceller's) cancels
/// nothing twice: each child's cancel is one script that checks its status.
async fn finish_cascades(
    shared: &Shared,
    queue: &str,
    seen: &mut HashMap<(String, JobId), Instant>,
) {
    let ids = match shared.store.cascades(queue, CASCADES_PER_PASS).await {
        Ok(ids) => ids,
        Err(e) => {
            shared.redis_error("cascade");
            tracing::debug!(%queue, error = %e, "reading the cascades failed");
            return;
        }
    };
    seen.retain(|(q, id), _| q != queue || ids.contains(id));
    for id in ids {
        let first = *seen
            .entry((queue.to_owned(), id))
            .or_insert_with(Instant::now);
        if first.elapsed() < CASCADE_GRACE {
            continue;
        }
        let finished = match shared.store.cancel_subtree(queue, id, None, false).await {
            Ok(n) => {
                tracing::info!(%queue, job = %id, cancelled = n, "finished the cascade of a cancel left half-way");
                shared.store.cascade_done(queue, id).await
            }
            Err(e) => Err(e),
        };
        match finished {
            Ok(()) => {
                seen.remove(&(queue.to_owned(), id));
            }
            Err(e) => {
                shared.redis_error("cascade");
                tracing::debug!(%queue, job = %id, error = %e, "finishing a cascade failed");
            }
        }
    }
}

async fn expire(shared: &Shared, queue: &str) {
    in_passes(shared, "expire", queue, PASS, || async {
        Ok((shared.store.expire(queue, PASS).await?, ()))
    })
    .await;
}

async fn sample(shared: &Shared, queue: &str) {
    if let Err(e) = shared.store.release_held(queue).await {
        shared.redis_error("release_held");
        tracing::debug!(%queue, error = %e, "putting back held jobs failed");
    }
    if let Ok(settings) = shared.store.queue_settings(queue).await {
        shared
            .metrics
            .queue_paused
            .with_label_values(&[queue])
            .set(i64::from(settings.paused));
    }
    read_counts(shared, queue).await;
}

/// Reads the queue's depths and its enqueue count (one pipelined read) into the gauges
/// and `tether_queue_enqueued_total`; a failed read leaves the last values.
pub(super) async fn read_counts(shared: &Shared, queue: &str) {
    if let Ok(stats) = shared.store.stats(queue).await {
        shared.metrics.queue_enqueued.set(queue, stats.enqueued);
        let g = &shared.metrics.queue_jobs;
        for (state, n) in [
            ("pending", stats.pending),
            ("scheduled", stats.scheduled),
            ("processing", stats.processing),
            ("dead", stats.dead),
        ] {
            g.with_label_values(&[queue, state]).set(n as i64);
        }
    }
}

/// Hands back the leases of jobs stopped at the end of the grace period.
pub(super) async fn release_abandoned(shared: &Shared) {
    let leases = std::mem::take(&mut *shared.abandoned.lock().unwrap());
    let mut by_queue: HashMap<String, Vec<(JobId, LeaseToken)>> = HashMap::new();
    for lease in leases {
        by_queue
            .entry(lease.queue)
            .or_default()
            .push((lease.id, lease.token));
    }
    for (queue, leases) in by_queue {
        match shared.store.release(&queue, &leases).await {
            Ok(n) => tracing::info!(%queue, released = n, "handed unfinished jobs back"),
            Err(e) => {
                tracing::warn!(%queue, error = %e, "could not hand jobs back; their leases will lapse")
            }
        }
    }
}
