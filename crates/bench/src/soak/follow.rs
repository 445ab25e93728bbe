//! Follows every acknowledged job until it is seen final.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tether_producer::JobId;
use tether_store::Store;

use super::FIRST_LOOK;
use super::mix::Kind;

/// An acknowledged job not yet seen final.
pub(super) struct Open {
    pub(super) id: JobId,
    pub(super) queue: &'static str,
    pub(super) kind: Kind,
    pub(super) acknowledged: Instant,
}

/// What the follower saw since the last minute line, and in all.
#[derive(Default)]
pub(super) struct Seen {
    pub(super) finished_this_minute: u64,
    pub(super) waits_this_minute: Vec<f64>,
    pub(super) finished: u64,
    pub(super) unexpected: Vec<String>,
    /// Acknowledged, then gone before anyone saw it final.
    pub(super) vanished: Vec<JobId>,
    /// Acknowledged and not (yet) seen final.
    pub(super) open: Vec<JobId>,
}

/// Follows acknowledged jobs until each is seen final (or gone); returns once the
/// sender is dropped and nothing is open.
pub(super) async fn follow(
    store: Store,
    mut incoming: tokio::sync::mpsc::UnboundedReceiver<Open>,
    seen: Arc<Mutex<Seen>>,
) {
    use tokio::sync::mpsc::error::TryRecvError;
    let mut open: Vec<Open> = Vec::new();
    let mut closed = false;
    loop {
        loop {
            match incoming.try_recv() {
                Ok(job) => open.push(job),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        let (due, later): (Vec<Open>, Vec<Open>) = open
            .into_iter()
            .partition(|o| o.acknowledged.elapsed() >= FIRST_LOOK);
        open = later;
        let looked: Vec<_> = futures::stream::iter(due)
            .map(|o| {
                let store = store.clone();
                async move {
                    let job = store.get(o.queue, o.id).await;
                    (o, job)
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        {
            let mut seen = seen.lock().unwrap();
            for (o, job) in looked {
                match job {
                    Ok(None) => seen.vanished.push(o.id),
                    Ok(Some(job)) if job.status.is_final() => {
                        seen.finished += 1;
                        seen.finished_this_minute += 1;
                        if job.status != o.kind.expected() {
                            seen.unexpected.push(format!(
                                "{} {} ended {} ({:?})",
                                job.job_type, job.id, job.status, job.message
                            ));
                        }
                        // Wait = ready → first start; retried jobs also waited for backoff.
                        if job.attempts == 1
                            && let Some(started) = job.started_at
                        {
                            let wait = (started - job.created_at).num_microseconds().unwrap_or(0);
                            seen.waits_this_minute.push(wait as f64 / 1000.0);
                        }
                    }
                    // Not final yet, or a failed read: looked at again on the next pass.
                    _ => open.push(o),
                }
            }
            seen.open = open.iter().map(|o| o.id).collect();
        }
        if closed && open.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
