//! The finisher of one queue: records the outcomes that arrived while its previous
//! call was in flight in one fenced script call, and answers each job on its own.

use std::sync::Arc;

use tether_store::{FinishOutcome, Lease, LeaseError, Outcome};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::retry::with_store_retries;

/// Most outcomes recorded in one call.
const MAX_BATCH: usize = 256;

/// An outcome to record, and where to send what the script answered
/// (`None`: shutdown's grace period ended before it could be written).
pub(super) struct FinishRequest {
    pub(super) lease: Lease,
    pub(super) outcome: Outcome,
    pub(super) reply: oneshot::Sender<Option<Result<FinishOutcome, LeaseError>>>,
}

/// Resends through Redis outages (the script makes resends safe).
pub(super) async fn run(
    shared: Arc<Shared>,
    queue: String,
    mut inbox: mpsc::UnboundedReceiver<FinishRequest>,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            request = inbox.recv() => match request { Some(r) => r, None => return },
            _ = stop.cancelled() => return,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let pairs: Vec<(&Lease, &Outcome)> = batch.iter().map(|r| (&r.lease, &r.outcome)).collect();
        let result =
            with_store_retries(&shared.abandon, || shared.store.finish_many(&queue, &pairs)).await;
        drop(pairs);
        match result {
            Some(Ok(results)) => {
                for (request, result) in batch.into_iter().zip(results) {
                    let _ = request.reply.send(Some(result));
                }
            }
            Some(Err(e)) => {
                shared.redis_error("finish");
                // Every waiter gets the error itself, so it can still tell its kind.
                for request in batch {
                    let _ = request.reply.send(Some(Err(LeaseError::Store(e.clone()))));
                }
            }
            None => {
                for request in batch {
                    let _ = request.reply.send(None);
                }
            }
        }
    }
}
