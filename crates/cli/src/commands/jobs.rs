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

/// The most levels and children per node `get --tree` prints.
const TREE_DEPTH: usize = 16;
const TREE_WIDTH: usize = 10_000;

/// Prints the job's tree: each node's status, progress and type, children indented (or
/// the tree as nested JSON).
pub(crate) async fn tree(id: JobId, json: bool, producer: &Producer) -> CliResult {
    let root = producer
        .get(id)
        .await
        .map_err(err)?
        .ok_or_else(|| format!("no job {id}"))?;
    let tree = node(root, 0, producer).await?;
    let mut text = String::new();
    if json {
        text = serde_json::to_string_pretty(&tree).map_err(err)? + "\n";
    } else {
        print_node(&mut text, &tree, "", "");
    }
    // Written at once; a reader that went away (`| head`) ends the output quietly.
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(err(e)),
        _ => Ok(()),
    }
}

fn node<'a>(
    job: tether_producer::Job,
    depth: usize,
    producer: &'a Producer,
) -> futures::future::BoxFuture<'a, Result<serde_json::Value, String>> {
    Box::pin(async move {
        let mut children = Vec::new();
        if job.subtask_count > 0 && depth < TREE_DEPTH {
            let mut marker = None;
            while children.len() < TREE_WIDTH {
                let page = producer.children(job.id, marker, 1000).await.map_err(err)?;
                marker = page.next_marker;
                for child in page.jobs {
                    children.push(node(child, depth + 1, producer).await?);
                }
                if marker.is_none() {
                    break;
                }
            }
        }
        Ok(serde_json::json!({
            "id": job.id,
            "type": job.job_type,
            "queue": job.queue,
            "status": job.status,
            "progress": job.progress,
            "subtask_count": job.subtask_count,
            "children": children,
        }))
    })
}

fn print_node(out: &mut String, node: &serde_json::Value, lead: &str, child_lead: &str) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "{lead}{} {:<10} {:>3}% {} ({})",
        node["id"].as_str().unwrap_or("?"),
        node["status"].as_str().unwrap_or("?"),
        node["progress"],
        node["type"].as_str().unwrap_or("?"),
        node["queue"].as_str().unwrap_or("?"),
    );
    let children = node["children"].as_array().cloned().unwrap_or_default();
    for (i, child) in children.iter().enumerate() {
        let last = i + 1 == children.len();
        let (branch, rest) = if last {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        print_node(
            out,
            child,
            &format!("{child_lead}{branch}"),
            &format!("{child_lead}{rest}"),
        );
    }
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
