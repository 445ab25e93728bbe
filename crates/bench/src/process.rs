//! Processing runs: worker processes draining noop jobs, timed and costed.

use std::time::{Duration, Instant};

use tether_producer::{JobSpec, Producer};

use crate::target::{ServerStats, Target};
use crate::workers::{Workers, wait_for_workers};

pub(crate) fn noop(queue: &str) -> JobSpec {
    JobSpec::new("noop").queue(queue)
}

pub(crate) fn rate(n: usize, since: Instant) -> f64 {
    n as f64 / since.elapsed().as_secs_f64()
}

/// Enqueues `n` noop jobs in batches of 1,000, due at `due` when given.
pub(crate) async fn bulk_enqueue(
    producer: &Producer,
    queue: &str,
    n: usize,
    due: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(), String> {
    let spec = match due {
        Some(due) => noop(queue).run_at(due),
        None => noop(queue),
    };
    for start in (0..n).step_by(1000) {
        let batch = (n - start).min(1000);
        producer
            .enqueue_many(vec![spec.clone(); batch])
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Queues `n` jobs on each of `queues` before the workers may claim any: they are
/// enqueued due at one moment, and this returns at that moment.
async fn prefill(target: &Target, queues: &[String], n: usize) -> Result<(), String> {
    let total = (n * queues.len()) as i64;
    let due = chrono::Utc::now() + chrono::Duration::milliseconds(1500 + total / 20);
    for queue in queues {
        bulk_enqueue(&target.producer, queue, n, Some(due)).await?;
    }
    tokio::time::sleep((due - chrono::Utc::now()).to_std().unwrap_or_default()).await;
    Ok(())
}

/// Polls until `n` jobs of `queue` finished; returns how many polls it took. Fewer than
/// `n` successes is reported and leaves the target unverified.
pub(crate) async fn until_done(
    target: &Target,
    queue: &str,
    n: usize,
    limit: Duration,
) -> Result<usize, String> {
    let deadline = Instant::now() + limit;
    let mut polls = 0;
    loop {
        polls += 1;
        let stats = target.store.stats(queue).await.map_err(|e| e.to_string())?;
        if stats.success + stats.failure + stats.cancelled >= n as u64 {
            if stats.success != n as u64 {
                eprintln!("{queue}: {} successes of {n}", stats.success);
                target.miscounted();
            }
            return Ok(polls);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{queue}: only {} of {n} done within {limit:?}",
                stats.success
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One processing run: `workers` processes at `concurrency` drain `n` noop jobs.
pub(crate) struct Run {
    pub(crate) jobs_per_s: f64,
    /// What Redis spent on the run (the poller's own commands taken out).
    pub(crate) cost: ServerStats,
    pub(crate) rss_mib: f64,
}

/// Drains `n` noop jobs of queue `bench-<label>`; with `prefill`, all of them are
/// queued before the workers may claim any.
pub(crate) async fn processing(
    target: &Target,
    label: &str,
    n: usize,
    workers: usize,
    concurrency: usize,
    prefill: bool,
) -> Result<Run, String> {
    let queue = format!("bench-{label}");
    let pool = Workers::start(&target.url, &queue, workers, concurrency)?;
    wait_for_workers(target, &queue, workers).await?;
    if prefill {
        self::prefill(target, std::slice::from_ref(&queue), n).await?;
    }
    let before = target.info().await?;
    let started = Instant::now();
    if !prefill {
        bulk_enqueue(&target.producer, &queue, n, None).await?;
    }
    let polls = until_done(target, &queue, n, Duration::from_secs(600)).await?;
    let secs = started.elapsed().as_secs_f64();
    let mut cost = target.info().await? - before;
    cost.calls -= polls as f64 * 5.0 + 2.0; // the poller's own commands and INFO
    let rss_mib = pool.peak_rss_mib();
    Ok(Run {
        jobs_per_s: n as f64 / secs,
        cost,
        rss_mib,
    })
}

/// Every retained job of `queue` (summaries), a page of 1,000 at a time.
pub(crate) async fn jobs_of(
    target: &Target,
    queue: &str,
) -> Result<Vec<tether_producer::Job>, String> {
    let mut jobs = Vec::new();
    let mut marker = None;
    loop {
        let page = target
            .producer
            .list(tether_producer::ListQuery {
                queues: vec![queue.to_owned()],
                limit: 1000,
                marker,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        jobs.extend(page.jobs);
        marker = page.next_marker;
        if marker.is_none() {
            return Ok(jobs);
        }
    }
}

/// Jobs/s between the first and the last recorded outcome of `queue`'s `n` jobs.
pub(crate) async fn steady_rate(target: &Target, queue: &str, n: usize) -> Result<f64, String> {
    let edge = |sort_dir| async move {
        let page = target
            .producer
            .list(tether_producer::ListQuery {
                queues: vec![queue.to_owned()],
                sort_key: tether_producer::SortKey::UpdatedAt,
                sort_dir,
                limit: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        page.jobs
            .first()
            .and_then(|j| j.finished_at)
            .ok_or_else(|| format!("{queue}: no finished job"))
    };
    let first = edge(tether_producer::SortDir::Asc).await?;
    let last = edge(tether_producer::SortDir::Desc).await?;
    let span = (last - first).num_milliseconds().max(1) as f64 / 1000.0;
    Ok((n - 1) as f64 / span)
}

/// Drains `per_queue` noop jobs from each of `queues`, one worker process per queue at
/// concurrency 64, all jobs queued before the workers may claim; returns jobs/s.
pub(crate) async fn drain_queues(
    target: &Target,
    queues: &[String],
    per_queue: usize,
) -> Result<f64, String> {
    let pools = queues
        .iter()
        .map(|q| Workers::start(&target.url, q, 1, 64))
        .collect::<Result<Vec<_>, _>>()?;
    for q in queues {
        wait_for_workers(target, q, 1).await?;
    }
    prefill(target, queues, per_queue).await?;
    let started = Instant::now();
    for q in queues {
        until_done(target, q, per_queue, Duration::from_secs(600)).await?;
    }
    let jobs_per_s = rate(per_queue * queues.len(), started);
    drop(pools);
    Ok(jobs_per_s)
}
