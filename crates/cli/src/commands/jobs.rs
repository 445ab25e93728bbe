//! The commands on one job: `get`, `cancel`, `retry`, `label`, `watch`.

use futures::StreamExt;
use tether_producer::{CancelOutcome, JobId, Producer, Status};

use super::{CliResult, err};
use crate::output;

pub(crate) async fn get(id: JobId, json: bool, producer: &Producer) -> CliResult {
    let job = producer
        .get(id)
        .await
        .map_err(err)?
        .ok_or_else(|| format!("no job {id}"))?;
    output::job(&job, json);
    Ok(())
}

pub(crate) async fn cancel(id: JobId, force: bool, producer: &Producer) -> CliResult {
    let outcome = if force {
        producer.force_cancel(id).await
    } else {
        producer.cancel(id).await
    }
    .map_err(err)?;
    println!(
        "{id}: {}",
        match outcome {
            CancelOutcome::Cancelled => "cancelled",
            CancelOutcome::Requested =>
                "cancel requested; the worker stops it at its next heartbeat",
            _ => "cancel accepted",
        }
    );
    Ok(())
}

pub(crate) async fn retry(id: JobId, producer: &Producer) -> CliResult {
    producer.retry(id).await.map_err(err)?;
    println!("{id}: re-queued");
    Ok(())
}

pub(crate) async fn label(
    id: JobId,
    name: Option<String>,
    description: Option<String>,
    producer: &Producer,
) -> CliResult {
    if let Some(name) = name {
        producer.set_name(id, &name).await.map_err(err)?;
    }
    if let Some(desc) = description {
        producer.set_description(id, &desc).await.map_err(err)?;
    }
    Ok(())
}

/// Follows the job with a progress bar (or prints each event as a JSON line)
/// until it finishes; fails unless it succeeded.
pub(crate) async fn watch(id: JobId, json: bool, producer: &Producer) -> CliResult {
    let mut events = std::pin::pin!(producer.watch(id).await.map_err(err)?);
    let bar = (!json).then(|| output::job_bar(id));
    let mut last = None;
    while let Some(event) = events.next().await {
        let event = event.map_err(err)?;
        if json {
            println!(
                "{}",
                serde_json::json!({ "event": event.name(), "job": event.job() })
            );
        } else if let Some(bar) = &bar {
            output::update_job_bar(bar, event.job());
        }
        last = Some(event.job().clone());
    }
    if let (Some(bar), Some(job)) = (bar, last) {
        bar.finish_and_clear();
        output::job(&job, false);
        if job.status != Status::Success {
            return Err(format!("job {id} ended {}", job.status));
        }
    }
    Ok(())
}
