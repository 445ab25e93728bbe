//! The heartbeat: renews every in-flight lease, one call per queue, and refreshes
//! this worker's registration. Stopping jobs whose renewal is late is not its job:
//! each job task runs its own self-fence clock (see `job::self_fence`), so a
//! heartbeat stuck on a stalled connection cannot delay it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tether_model::JobId;
use tether_store::WorkerInfo;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::context::Slot;

pub(super) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(shared.config.heartbeat_every());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! { _ = tick.tick() => {}, _ = stop.cancelled() => return }
        beat(&shared).await;
    }
}

/// One heartbeat: renew every lease, one call per queue, then refresh the registration.
async fn beat(shared: &Shared) {
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
    let sent_at = Instant::now();
    let renewals = by_queue.iter().map(|(queue, slots)| async move {
        let leases: Vec<(JobId, u64)> = slots.iter().map(|s| (s.lease.id, s.lease.epoch)).collect();
        match shared
            .store
            .renew(queue, &leases, shared.config.lease_ttl)
            .await
        {
            Ok((deadline, statuses)) => {
                for (slot, status) in slots.iter().zip(statuses) {
                    slot.on_renewal(status, sent_at);
                }
                shared
                    .metrics
                    .lease_renewals
                    .with_label_values(&[queue])
                    .inc_by(slots.len() as u64);
                Some((queue, slots, deadline))
            }
            Err(e) => {
                shared.redis_error("renew");
                tracing::warn!(%queue, error = %e, "lease renewal failed");
                None
            }
        }
    });
    let renewed = futures::future::join_all(renewals).await;
    let jobs = renewed
        .into_iter()
        .flatten()
        .flat_map(|(queue, slots, deadline)| {
            let at = chrono::DateTime::from_timestamp_millis(deadline).unwrap_or_default();
            slots
                .iter()
                .map(move |s| (queue.clone(), s.lease.id, at))
                .collect::<Vec<_>>()
        })
        .collect();
    register(shared, jobs).await;
}

/// Publishes this worker's self-description: its queues, job types and in-flight jobs.
pub(super) async fn register(
    shared: &Shared,
    jobs: Vec<(String, JobId, chrono::DateTime<chrono::Utc>)>,
) {
    let mut types: Vec<String> = shared.handlers.keys().cloned().collect();
    types.sort();
    let info = WorkerInfo {
        id: shared.id.clone(),
        host: shared.host.clone(),
        pid: std::process::id(),
        queues: shared.config.queues.clone(),
        types,
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
