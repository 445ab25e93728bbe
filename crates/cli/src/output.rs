//! Human and JSON output of the read commands.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tether_producer::{Job, JobId, Page, Producer, QueueStats, WorkerInfo};

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| "-".into())
}

pub(crate) fn job(job: &Job, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(job).expect("job serialises")
        );
        return;
    }
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut rows: Vec<(&str, String)> = vec![
        ("id", job.id.to_string()),
        ("queue", job.queue.clone()),
        ("type", job.job_type.clone()),
        ("status", job.status.to_string()),
        (
            "phase",
            job.phase
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "progress",
            format!("{}% {}", job.progress, opt(&job.progress_message)),
        ),
        ("attempts", format!("{}/{}", job.attempts, job.max_attempts)),
        ("priority", job.priority.to_string()),
        ("group", opt(&job.group)),
        (
            "start by",
            job.start_by
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "-".into()),
        ),
        ("worker", opt(&job.worker)),
        ("owner", opt(&job.owner)),
        ("name", opt(&job.name)),
        ("input", job.input.to_string()),
        (
            "result",
            job.result
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "message",
            if job.message.is_empty() {
                "-".into()
            } else {
                job.message.clone()
            },
        ),
        (
            "error_code",
            job.error_code
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        ("cancel_requested", job.cancel_requested.to_string()),
        ("created_at", time(Some(job.created_at))),
        ("started_at", time(job.started_at)),
        ("finished_at", time(job.finished_at)),
        ("run_at", time(job.run_at)),
        ("eta", time(job.eta)),
        ("lease_expires_at", time(job.lease_expires_at)),
        ("expires_at", time(job.expires_at)),
    ];
    if let Some(ms) = job.lease_timeout_ms {
        // Driven by its creator (`tether task`), not run by a worker.
        rows.push((
            "external",
            format!(
                "lease {}",
                humantime::format_duration(std::time::Duration::from_millis(ms))
            ),
        ));
    }
    let rows = rows.into_iter().chain(
        job.schedule
            .as_ref()
            .map(|s| [("schedule", s.clone()), ("fire_time", time(job.fire_time))])
            .into_iter()
            .flatten(),
    );
    for (k, v) in rows {
        println!("{k:>17}  {v}");
    }
}

pub(crate) fn page(page: &Page, json: bool) {
    if json {
        let value = serde_json::json!({
            "jobs": page.jobs,
            "next_marker": page.next_marker.map(|m| m.to_string()),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("page serialises")
        );
        return;
    }
    println!(
        "{:<36}  {:<12} {:<10} {:<10} {:>4} {:>5}  {:<24}  MESSAGE",
        "ID", "QUEUE", "TYPE", "STATUS", "PCT", "TRIES", "CREATED"
    );
    for j in &page.jobs {
        println!(
            "{:<36}  {:<12} {:<10} {:<10} {:>3}% {:>2}/{:<2}  {:<24}  {}",
            j.id,
            j.queue,
            j.job_type,
            j.status,
            j.progress,
            j.attempts,
            j.max_attempts,
            time(Some(j.created_at)),
            j.message
        );
    }
    if let Some(marker) = page.next_marker {
        println!("(more: --marker {marker})");
    }
}

fn stats_json(stats: &[QueueStats]) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = stats
        .iter()
        .map(|s| {
            (
                s.queue.clone(),
                serde_json::json!({
                    "pending": s.pending, "scheduled": s.scheduled, "processing": s.processing,
                    "dead": s.dead, "success": s.success, "failure": s.failure, "cancelled": s.cancelled,
                    "enqueued": s.enqueued,
                }),
            )
        })
        .collect();
    serde_json::Value::Object(map)
}

fn stats_table(stats: &[QueueStats], rates: Option<&[f64]>) {
    println!(
        "{:<20} {:>9} {:>9} {:>10} {:>7} {:>9} {:>9} {:>9}{}",
        "QUEUE",
        "PENDING",
        "SCHEDULED",
        "PROCESSING",
        "DEAD",
        "SUCCESS",
        "FAILURE",
        "CANCELLED",
        if rates.is_some() { "   DONE/S" } else { "" }
    );
    for (i, s) in stats.iter().enumerate() {
        let rate = rates.map(|r| format!(" {:>9.1}", r[i])).unwrap_or_default();
        println!(
            "{:<20} {:>9} {:>9} {:>10} {:>7} {:>9} {:>9} {:>9}{rate}",
            s.queue,
            s.pending,
            s.scheduled,
            s.processing,
            s.dead,
            s.success,
            s.failure,
            s.cancelled
        );
    }
}

pub(crate) async fn stats(
    producer: &Producer,
    queues: &[String],
    json: bool,
    watch: bool,
) -> Result<(), String> {
    let read = || async { producer.stats(queues).await.map_err(|e| e.to_string()) };
    if !watch {
        let stats = read().await?;
        if json {
            println!("{}", stats_json(&stats))
        } else {
            stats_table(&stats, None)
        }
        return Ok(());
    }
    let mut previous: Option<(Instant, Vec<QueueStats>)> = None;
    loop {
        let stats = read().await?;
        let now = Instant::now();
        let rates: Option<Vec<f64>> = previous.as_ref().map(|(at, before)| {
            let secs = now.duration_since(*at).as_secs_f64().max(0.001);
            stats
                .iter()
                .map(|s| {
                    let done = |q: &QueueStats| (q.success + q.failure + q.cancelled) as f64;
                    let prev = before
                        .iter()
                        .find(|b| b.queue == s.queue)
                        .map(done)
                        .unwrap_or(done(s));
                    ((done(s) - prev) / secs).max(0.0)
                })
                .collect()
        });
        if json {
            println!("{}", stats_json(&stats));
        } else {
            if std::io::stdout().is_terminal() {
                print!("\x1b[2J\x1b[H");
            }
            stats_table(&stats, rates.as_deref());
        }
        previous = Some((now, stats));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

pub(crate) fn workers(workers: &[WorkerInfo], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(workers).expect("workers serialise")
        );
        return;
    }
    if workers.is_empty() {
        println!("no live workers");
    }
    for w in workers {
        println!(
            "{}  host={} pid={} queues={} jobs={}/{} since {}",
            w.id,
            w.host,
            w.pid,
            w.queues.join(","),
            w.jobs.len(),
            w.concurrency,
            time(Some(w.started_at))
        );
        for (queue, id, lease) in &w.jobs {
            println!(
                "    {id}  queue={queue}  lease until {}",
                time(Some(*lease))
            );
        }
    }
}

/// A counter bar on stderr (hidden when stderr is not a terminal).
pub(crate) fn progress_bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

pub(crate) fn job_bar(id: JobId) -> ProgressBar {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(100)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:40}] {pos:>3}% {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_prefix(id.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

pub(crate) fn update_job_bar(bar: &ProgressBar, job: &Job) {
    bar.set_position(u64::from(job.progress));
    let eta = job
        .eta
        .filter(|_| !job.status.is_final())
        .map(|t| format!(" eta {}", t.format("%H:%M:%S")))
        .unwrap_or_default();
    let phase = job
        .phase
        .map(|p| format!("[{}] ", p.as_str()))
        .unwrap_or_default();
    bar.set_message(format!(
        "{} {phase}{}{eta}",
        job.status,
        job.progress_message.clone().unwrap_or_default()
    ));
}
