//! The heartbeat: renews every in-flight lease, one call per queue, and refreshes
//! this worker's registration. Each queue's renewal and the registration run on
//! their own, so a slow queue (its master failing over) or a slow registration
//! never holds up another queue's renewals. Stopping jobs whose renewal is late is
//! not the heartbeat's job: each job task runs its own self-fence clock (see
//! `job::self_fence`), so a heartbeat stuck on a stalled connection cannot delay it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tether_model::JobId;
use tether_store::{LeaseToken, WorkerInfo};
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::context::Slot;

/// What is in flight: the queues whose renewal has not answered yet, and the registration.
#[derive(Default)]
struct InFlight {
    renewals: Mutex<HashSet<String>>,
    registering: std::sync::atomic::AtomicBool,
}

pub(super) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(shared.config.heartbeat_every());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let in_flight = Arc::new(InFlight::default());
    loop {
        tokio::select! { _ = tick.tick() => {}, _ = stop.cancelled() => return }
        let mut by_queue: HashMap<String, Vec<Arc<Slot>>> = HashMap::new();
        for slot in shared.attempts() {
            // A stopped attempt needs no renewal.
            if !slot.lost.is_cancelled() {
                by_queue
                    .entry(slot.lease.queue.clone())
                    .or_default()
                    .push(slot);
            }
        }
        for (queue, slots) in by_queue {
            // The previous renewal of this queue has not answered: sending another
            // behind it on the same connection would not land sooner.
            if in_flight.renewals.lock().unwrap().insert(queue.clone()) {
                let (shared, in_flight) = (shared.clone(), in_flight.clone());
                tokio::spawn(async move {
                    renew(&shared, &queue, &slots).await;
                    in_flight.renewals.lock().unwrap().remove(&queue);
                });
            }
        }
        if !in_flight.registering.swap(true, Ordering::AcqRel) {
            let (shared, in_flight) = (shared.clone(), in_flight.clone());
            tokio::spawn(async move {
                register(&shared).await;
                in_flight.registering.store(false, Ordering::Release);
            });
        }
    }
}

/// Renews the leases of one queue's attempts in one call.
async fn renew(shared: &Shared, queue: &str, slots: &[Arc<Slot>]) {
    let sent_at = Instant::now();
    let leases: Vec<(JobId, LeaseToken)> = slots
        .iter()
        .map(|s| (s.lease.id, s.lease.token.clone()))
        .collect();
    match shared
        .store
        .renew(queue, &leases, shared.config.lease_ttl)
        .await
    {
        Ok((deadline, statuses)) => {
            for (slot, status) in slots.iter().zip(statuses) {
                slot.on_renewal(status, sent_at);
                slot.deadline_ms.store(deadline, Ordering::Relaxed);
            }
            shared
                .metrics
                .lease_renewals
                .with_label_values(&[queue])
                .inc_by(slots.len() as u64);
        }
        Err(e) => {
            shared.redis_error("renew");
            tracing::warn!(%queue, error = %e, "lease renewal failed");
        }
    }
}

/// Publishes this worker's self-description: its queues, job types and in-flight jobs
/// with their last known lease deadlines.
pub(super) async fn register(shared: &Shared) {
    let mut types: Vec<String> = shared.handlers.keys().cloned().collect();
    types.sort();
    let jobs = shared
        .attempts()
        .iter()
        .map(|s| {
            let ms = s.deadline_ms.load(Ordering::Relaxed);
            let at = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
            (s.lease.queue.clone(), s.lease.id, at)
        })
        .collect();
    let info = WorkerInfo {
        id: shared.id.clone(),
        host: shared.host.clone(),
        pid: std::process::id(),
        queues: shared.config.queues.clone(),
        types: Some(types),
        concurrency: shared.config.concurrency,
        started_at: shared.started_at,
        jobs,
    };
    if let Err(e) = shared
        .store
        .put_worker(&info, shared.config.heartbeat_every() * 3)
        .await
    {
        tracing::debug!(error = %e, "worker registration not refreshed");
    }
}
