//! One attempt of one job: run the handler under its lease, then record the outcome.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use rand::Rng;
use tether_model::{ErrorCode, RetryPolicy, Status};
use tether_store::{Claimed, FinishOutcome, Lease, LeaseError, Outcome};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::Shared;
use super::finisher::FinishRequest;
use crate::JobError;
use crate::context::{JobContext, Slot};
use crate::trace::AttemptTrace;

/// How long a job of a type this worker lacks waits before it is offered again, so
/// the worker that has the handler gets a chance to claim it.
const HANDBACK_DELAY: Duration = Duration::from_millis(250);

pub(super) async fn run(
    shared: Arc<Shared>,
    claimed: Claimed,
    slot: Arc<Slot>,
    permit: OwnedSemaphorePermit,
) {
    let lease = claimed.lease.clone();
    let (queue, job_type) = (lease.queue.clone(), claimed.job_type.clone());
    let m = &shared.metrics;
    m.started.with_label_values(&[&queue, &job_type]).inc();
    m.wait
        .with_label_values(&[&queue])
        .observe((claimed.started_at_ms - claimed.ready_at_ms).max(0) as f64 / 1000.0);
    // Whatever happens below, even a panic outside the handler, the attempt's
    // bookkeeping is undone and its slot of capacity returned.
    let _attempt = AttemptGuard::new(&shared, &slot, permit);
    let started = Instant::now();

    let trace = AttemptTrace::start(&shared.store, &claimed).await;
    let outcome = execute(&shared, claimed, &slot, &trace).await;
    let (ended, error) = describe(&outcome, &trace);
    let outcome_span = trace.step("outcome");
    let recorded = match outcome {
        Some(Ran::Outcome(outcome)) => match record(&shared, &lease, &job_type, outcome).await {
            Some(result) => Some(result),
            None => {
                // Shutdown's grace period ended before the outcome could be written:
                // hand the lease back (a no-op if the outcome did land).
                shared.abandoned.lock().unwrap().push(lease.clone());
                None
            }
        },
        Some(Ran::HandedBack) => None,
        Some(Ran::Snoozed(delay)) => match shared.store.snooze(&lease, delay).await {
            Ok(_) => None,
            Err(LeaseError::Lost) => Some(Err(LeaseError::Lost)),
            Err(e) => {
                tracing::warn!(job = %lease.id, error = %e, "snooze not recorded; the lease will lapse and the job run again");
                None
            }
        },
        None => None,
    };
    let ended = match &recorded {
        Some(Ok(FinishOutcome::Retrying)) => "retrying",
        Some(Ok(FinishOutcome::Dead)) => "dead",
        _ => ended,
    };
    let lost = match recorded {
        Some(Err(LeaseError::Lost)) => true,
        Some(Err(e)) => {
            tracing::error!(job = %lease.id, error = %e, "outcome not recorded; the lease will lapse and the job run again");
            false
        }
        Some(Ok(FinishOutcome::Retrying)) => {
            m.retries.with_label_values(&[&queue, &job_type]).inc();
            false
        }
        Some(Ok(_)) => false,
        // Nothing was written: the lease was lost (or fenced), or it was handed back.
        None => slot.lost.is_cancelled(),
    };
    if lost {
        m.lease_lost.with_label_values(&[&queue]).inc();
        tracing::warn!(job = %lease.id, "lease lost: nothing was recorded; the job runs again under a newer lease");
    }
    let ended = if lost { "lost" } else { ended };
    if ended == "cancelled" {
        cancel_children(&shared, &lease).await;
    }
    outcome_span.outcome(ended);
    drop(outcome_span);
    trace.finish(ended, error.as_deref());
    m.duration
        .with_label_values(&[&queue, &job_type])
        .observe(started.elapsed().as_secs_f64());
}

/// A job that ended cancelled cancels its subtree: its canceller did too, but children
/// it spawned after the canceller's walk (before its heartbeat stopped it) were not
/// seen by it. Nothing to do for a job without children (one read).
async fn cancel_children(shared: &Shared, lease: &Lease) {
    if let Err(e) = shared
        .store
        .cancel_subtree(&lease.queue, lease.id, None, false)
        .await
    {
        shared.redis_error("cascade");
        tracing::debug!(job = %lease.id, error = %e, "cancelling the children of a cancelled job failed");
    }
}

/// How an attempt ended, for its span: a word, and an error's message while traced.
fn describe(ran: &Option<Ran>, trace: &AttemptTrace) -> (&'static str, Option<String>) {
    match ran {
        Some(Ran::Outcome(Outcome::Success(_))) => ("success", None),
        Some(Ran::Outcome(Outcome::Cancelled { .. })) => ("cancelled", None),
        Some(Ran::Outcome(Outcome::Error { message, .. })) => {
            ("failure", trace.is_on().then(|| message.clone()))
        }
        Some(Ran::Outcome(_)) => ("failure", None),
        Some(Ran::HandedBack) => ("handed_back", None),
        Some(Ran::Snoozed(_)) => ("snoozed", None),
        None => ("stopped", None),
    }
}

/// Undoes an attempt's bookkeeping when its task ends, however it ends.
struct AttemptGuard<'a> {
    shared: &'a Shared,
    slot: &'a Arc<Slot>,
    _permit: OwnedSemaphorePermit,
}

impl<'a> AttemptGuard<'a> {
    fn new(shared: &'a Shared, slot: &'a Arc<Slot>, permit: OwnedSemaphorePermit) -> Self {
        shared
            .metrics
            .in_flight
            .with_label_values(&[&slot.lease.queue])
            .inc();
        AttemptGuard {
            shared,
            slot,
            _permit: permit,
        }
    }
}

impl Drop for AttemptGuard<'_> {
    fn drop(&mut self) {
        self.shared
            .metrics
            .in_flight
            .with_label_values(&[&self.slot.lease.queue])
            .dec();
        self.shared.end_attempt(self.slot);
    }
}

/// How an attempt ended without being recorded as an outcome.
enum Ran {
    Outcome(Outcome),
    /// Another worker runs this type: the lease was handed back.
    HandedBack,
    /// The handler asked to run again after a delay, without spending the attempt.
    Snoozed(Duration),
}

/// Runs the handler; `None` means write nothing (lease lost or fenced, or shutdown's
/// hand-back).
async fn execute(
    shared: &Shared,
    claimed: Claimed,
    slot: &Arc<Slot>,
    trace: &AttemptTrace,
) -> Option<Ran> {
    let policy = claimed.backoff;
    let attempt = claimed.attempts;
    let Some(handler) = shared.handlers.get(&claimed.job_type).cloned() else {
        return tokio::select! {
            ran = unknown_type(shared, &claimed) => Some(ran),
            _ = shared.abandon.cancelled() => {
                shared.abandoned.lock().unwrap().push(claimed.lease.clone());
                None
            }
        };
    };
    if claimed.input.len() > shared.config.max_payload_bytes {
        let e = JobError::reserved(
            ErrorCode::PayloadTooLarge,
            false,
            format!(
                "input is {} bytes; this worker accepts at most {}",
                claimed.input.len(),
                shared.config.max_payload_bytes
            ),
        );
        return Some(Ran::Outcome(error_outcome(e, &policy, attempt)));
    }
    let timeout = claimed.timeout;
    let ctx = JobContext::new(
        shared.store.clone(),
        claimed,
        slot.clone(),
        shared.config.lease_ttl,
        shared.metrics.clone(),
        trace.clone(),
    );
    let run = AssertUnwindSafe(handler.run(&ctx)).catch_unwind();
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        biased;
        _ = slot.lost.cancelled() => None,
        _ = self_fence(slot, shared.config.lease_ttl) => {
            tracing::warn!(job = %slot.lease.id, "lease not confirmed renewed in time: stopping the job (self-fence)");
            // The lease is left to lapse: the reaper takes the job back and counts the
            // attempt, which did run (handing it back would run it again uncounted).
            slot.lost.cancel();
            None
        }
        _ = shared.abandon.cancelled() => {
            shared.abandoned.lock().unwrap().push(slot.lease.clone());
            None
        }
        _ = slot.cancel.cancelled() => Some(Outcome::Cancelled { message: "cancelled on request".into() }),
        _ = deadline => {
            let t = timeout.unwrap_or_default();
            let e = JobError::reserved(ErrorCode::Timedout, true, format!("timed out after {:.3}s", t.as_secs_f64()));
            Some(error_outcome(e, &policy, attempt))
        }
        result = run => Some(match result {
            Ok(Err(JobError { snooze: Some(delay), .. })) => return Some(Ran::Snoozed(delay)),
            Ok(Ok(output)) => Outcome::Success(output),
            Ok(Err(e)) => error_outcome(e, &policy, attempt),
            Err(panic) => {
                let text = panic.downcast_ref::<&str>().map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".into());
                let e = JobError::reserved(ErrorCode::HandlerPanicked, true, format!("handler panicked: {text}"));
                error_outcome(e, &policy, attempt)
            }
        }),
    };
    outcome.map(Ran::Outcome)
}

/// The self-fence's margin: the lease is taken to be safe for `lease_ttl` less this,
/// to cover timer and scheduling delays and small clock differences.
fn fence_margin(ttl: Duration) -> Duration {
    (ttl / 10).max(Duration::from_millis(100))
}

/// Completes when the lease may lapse in Redis: `lease_ttl` (less a margin for clock
/// drift) after the last renewal that was confirmed, counted from when it was sent.
/// It runs on this task's own clock, so a stalled connection cannot delay it.
async fn self_fence(slot: &Slot, ttl: Duration) {
    let safe_for = ttl - fence_margin(ttl);
    loop {
        let until = *slot.renewed_at.lock().unwrap() + safe_for;
        if Instant::now() >= until {
            return;
        }
        tokio::time::sleep_until(until.into()).await;
    }
}

fn error_outcome(e: JobError, policy: &RetryPolicy, attempt: u32) -> Outcome {
    Outcome::Error {
        retryable: e.transient,
        retry_delay: policy.delay(attempt, rand::rng().random()),
        message: e.message,
        code: e.code,
        info: e.info,
    }
}

/// A job of a type this worker has no handler for: while another live worker serving
/// this queue may have one, hand it back (no attempt spent; each hand-back of the same
/// job waits longer); otherwise fail the job at once with `UnknownJobType`.
async fn unknown_type(shared: &Shared, claimed: &Claimed) -> Ran {
    let queue = &claimed.lease.queue;
    if another_worker_may_run(shared, queue, &claimed.job_type).await {
        let lease = (claimed.lease.id, claimed.lease.token.clone());
        match shared
            .store
            .release_after(queue, &[lease], HANDBACK_DELAY)
            .await
        {
            Ok(n) if n > 0 => {
                tracing::debug!(job = %claimed.lease.id, job_type = %claimed.job_type, "handed back: another worker runs this type")
            }
            Ok(_) => {}
            Err(e) => {
                shared.redis_error("release");
                tracing::warn!(job = %claimed.lease.id, error = %e, "could not hand back; the lease will lapse");
            }
        }
        return Ran::HandedBack;
    }
    let known: HashSet<&String> = shared.handlers.keys().collect();
    let e = JobError::reserved(
        ErrorCode::UnknownJobType,
        false,
        format!(
            "no handler for job type {:?} on any live worker of this queue (this one has {known:?})",
            claimed.job_type
        ),
    );
    Ran::Outcome(error_outcome(e, &claimed.backoff, claimed.attempts))
}

/// Whether a live worker other than this one serves `queue` and has (or may have: a
/// worker that does not list its types) a handler for `job_type`. The registry is read
/// at most once per heartbeat period, however many such jobs arrive; when it cannot be
/// read, the answer is yes (keep the job rather than fail it for good).
async fn another_worker_may_run(shared: &Shared, queue: &str, job_type: &str) -> bool {
    let mut cached = shared.registry.lock().await;
    let fresh = cached
        .as_ref()
        .is_some_and(|(read_at, _)| read_at.elapsed() < shared.config.heartbeat_every());
    if !fresh {
        match shared.store.workers().await {
            Ok(workers) => *cached = Some((Instant::now(), workers)),
            Err(e) => {
                shared.redis_error("workers");
                tracing::debug!(error = %e, "cannot read the worker registry");
                return true;
            }
        }
    }
    let workers = cached
        .as_ref()
        .map(|(_, w)| w.as_slice())
        .unwrap_or_default();
    workers.iter().any(|w| {
        w.id != shared.id
            && w.queues.iter().any(|q| q == queue)
            && w.types
                .as_ref()
                .is_none_or(|types| types.iter().any(|t| t == job_type))
    })
}

/// Writes the outcome through the queue's finisher (batched with others finishing at the
/// same time). `None` when shutdown's grace period ended first.
async fn record(
    shared: &Shared,
    lease: &Lease,
    job_type: &str,
    outcome: Outcome,
) -> Option<Result<FinishOutcome, LeaseError>> {
    let kind = OutcomeKind::of(&outcome);
    let (reply, answer) = oneshot::channel();
    let request = FinishRequest {
        lease: lease.clone(),
        outcome,
        reply,
    };
    shared.finishers.get(&lease.queue)?.send(request).ok()?;
    let result = answer.await.ok()??;
    if let Some(status) = finished_status(kind, &result) {
        shared
            .metrics
            .finished
            .with_label_values(&[&lease.queue, job_type, status])
            .inc();
    }
    Some(result)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutcomeKind {
    Success,
    Cancelled,
    Error,
}

impl OutcomeKind {
    fn of(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Success(_) => OutcomeKind::Success,
            Outcome::Cancelled { .. } => OutcomeKind::Cancelled,
            Outcome::Error { .. } => OutcomeKind::Error,
            // Only the three above are recorded today; anything newer counts as an error.
            _ => OutcomeKind::Error,
        }
    }
}

/// The final status an outcome was recorded as, for `tether_jobs_finished_total`;
/// `None` when it was not recorded now as a final status.
fn finished_status(
    kind: OutcomeKind,
    result: &Result<FinishOutcome, LeaseError>,
) -> Option<&'static str> {
    match (kind, result) {
        (_, Ok(FinishOutcome::Retrying) | Err(_)) => None,
        (OutcomeKind::Error, Ok(FinishOutcome::Dead)) => Some("failure"),
        // A failure that lost to a pending cancel is recorded as cancelled.
        (OutcomeKind::Error, Ok(FinishOutcome::Recorded)) => Some("cancelled"),
        (OutcomeKind::Success, Ok(FinishOutcome::Recorded)) => Some("success"),
        (OutcomeKind::Cancelled, Ok(FinishOutcome::Recorded)) => Some("cancelled"),
        // A resend after a lost reply: counted by what the first send recorded.
        (_, Ok(FinishOutcome::AlreadyRecorded { status })) => match status {
            Some(Status::Success) => Some("success"),
            Some(Status::Failure) => Some("failure"),
            Some(Status::Cancelled) => Some("cancelled"),
            _ => None,
        },
        (_, Ok(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resent_outcome_is_not_counted_as_another_status() {
        let already = |status| {
            Ok(FinishOutcome::AlreadyRecorded {
                status: Some(status),
            })
        };
        // A failure resent after its first send scheduled a retry, or failed it for good:
        // never counted as cancelled.
        assert_eq!(
            finished_status(OutcomeKind::Error, &already(Status::Pending)),
            None
        );
        assert_eq!(
            finished_status(OutcomeKind::Error, &already(Status::Failure)),
            Some("failure")
        );
        assert_eq!(
            finished_status(OutcomeKind::Success, &already(Status::Success)),
            Some("success")
        );
        assert_eq!(
            finished_status(OutcomeKind::Error, &Ok(FinishOutcome::Dead)),
            Some("failure")
        );
        assert_eq!(
            finished_status(OutcomeKind::Error, &Ok(FinishOutcome::Recorded)),
            Some("cancelled")
        );
        assert_eq!(
            finished_status(OutcomeKind::Error, &Ok(FinishOutcome::Retrying)),
            None
        );
    }
}
