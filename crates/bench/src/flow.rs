//! Flow control's cost and effect: draining many fairness groups against the same jobs
//! without any, a queue under a rate limit, and a priority-0 job's wait behind a
//! backlog of priority-9 jobs.

use std::time::{Duration, Instant};

use tether_producer::{JobSpec, LimitsPatch};

use crate::latency::pct;
use crate::process::{jobs_of, noop, steady_rate, until_done};
use crate::target::Target;
use crate::workers::{Workers, wait_for_workers};

/// Groups in the round-robin run.
pub(crate) const GROUPS: usize = 1_000;

/// What [`flow`] measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct FlowFigures {
    pub(crate) plain_jobs_per_s: f64,
    pub(crate) groups_jobs_per_s: f64,
    pub(crate) rate_limit_per_s: u32,
    pub(crate) rate_achieved_per_s: f64,
    pub(crate) rate_busiest_second: usize,
    pub(crate) priority_wait_p50_ms: f64,
    pub(crate) priority_wait_p99_ms: f64,
    pub(crate) priority_wait_max_ms: f64,
    pub(crate) priority_backlog: usize,
}

/// Enqueues `specs` in batches of 1,000, all due at one moment, and returns then.
async fn prefill(target: &Target, specs: Vec<JobSpec>) -> Result<(), String> {
    let due = chrono::Utc::now() + chrono::Duration::milliseconds(1500 + specs.len() as i64 / 20);
    for batch in specs.chunks(1000) {
        let batch: Vec<JobSpec> = batch.iter().map(|s| s.clone().run_at(due)).collect();
        target
            .producer
            .enqueue_many(batch)
            .await
            .map_err(|e| e.to_string())?;
    }
    tokio::time::sleep((due - chrono::Utc::now()).to_std().unwrap_or_default()).await;
    Ok(())
}

/// Drains `specs` (all of queue `queue`) with one worker at concurrency 64; steady jobs/s.
async fn drain(target: &Target, queue: &str, specs: Vec<JobSpec>) -> Result<f64, String> {
    let n = specs.len();
    let _pool = Workers::start(&target.url, queue, 1, 64)?;
    wait_for_workers(target, queue, 1).await?;
    prefill(target, specs).await?;
    until_done(target, queue, n, Duration::from_secs(600)).await?;
    steady_rate(target, queue, n).await
}

pub(crate) async fn flow(
    target: &Target,
    jobs: usize,
    rate: u32,
    backlog: usize,
) -> Result<FlowFigures, String> {
    let mut out = FlowFigures::default();

    // The same jobs, without and with 1,000 groups (each a list and a ring member).
    let plain: Vec<JobSpec> = (0..jobs).map(|_| noop("bench-flow-plain")).collect();
    out.plain_jobs_per_s = drain(target, "bench-flow-plain", plain).await?;
    let grouped: Vec<JobSpec> = (0..jobs)
        .map(|i| noop("bench-flow-groups").group(format!("g{}", i % GROUPS)))
        .collect();
    out.groups_jobs_per_s = drain(target, "bench-flow-groups", grouped).await?;

    // A rate limit over a backlog of 3 seconds' worth.
    let queue = "bench-flow-rate";
    let limit = LimitsPatch {
        rate: Some(Some(rate)),
        ..Default::default()
    };
    target
        .producer
        .set_queue_settings(queue, &limit)
        .await
        .map_err(|e| e.to_string())?;
    let n = rate as usize * 3;
    out.rate_limit_per_s = rate;
    drain(target, queue, (0..n).map(|_| noop(queue)).collect()).await?;
    let starts = starts_of(target, queue).await?;
    out.rate_busiest_second = busiest_second(&starts);
    // Starts per second over the windows they fill: a rate limit admits R at once and
    // then R per sliding second, so n starts span (n / R − 1) s and fill n / R windows.
    let span = (starts[starts.len() - 1] - starts[0]).num_milliseconds() as f64 / 1000.0;
    out.rate_achieved_per_s = starts.len() as f64 / (span + 1.0);

    // Priority-0 jobs, one every 20 ms, behind a backlog of priority-9 jobs.
    let queue = "bench-flow-priority";
    let _pool = Workers::start(&target.url, queue, 1, 64)?;
    wait_for_workers(target, queue, 1).await?;
    let low: Vec<JobSpec> = (0..backlog).map(|_| noop(queue).priority(9)).collect();
    prefill(target, low).await?;
    let mut urgent = Vec::new();
    for _ in 0..50 {
        let id = target
            .producer
            .enqueue(noop(queue).priority(0))
            .await
            .map_err(|e| e.to_string())?;
        urgent.push(id);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let mut waits = Vec::new();
    for id in urgent {
        let job = loop {
            let job = target
                .producer
                .get(id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("job vanished")?;
            if job.started_at.is_some() || started.elapsed() > Duration::from_secs(60) {
                break job;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let begun = job.started_at.ok_or("a priority-0 job never started")?;
        waits.push((begun - job.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0);
    }
    waits.sort_by(f64::total_cmp);
    out.priority_wait_p50_ms = pct(&waits, 0.5);
    out.priority_wait_p99_ms = pct(&waits, 0.99);
    out.priority_wait_max_ms = pct(&waits, 1.0);
    out.priority_backlog = backlog;
    until_done(target, queue, backlog + 50, Duration::from_secs(600)).await?;
    Ok(out)
}

/// The start times of every job of `queue`, in order.
async fn starts_of(
    target: &Target,
    queue: &str,
) -> Result<Vec<chrono::DateTime<chrono::Utc>>, String> {
    let mut starts: Vec<_> = jobs_of(target, queue)
        .await?
        .iter()
        .filter_map(|j| j.started_at)
        .collect();
    starts.sort();
    if starts.is_empty() {
        return Err(format!("{queue}: no job started"));
    }
    Ok(starts)
}

/// The most of `starts` (sorted) in any 1,000 ms window (from each start forward).
fn busiest_second(starts: &[chrono::DateTime<chrono::Utc>]) -> usize {
    let second = chrono::Duration::milliseconds(1000);
    (0..starts.len())
        .map(|i| {
            starts[i..]
                .iter()
                .take_while(|t| **t - starts[i] < second)
                .count()
        })
        .max()
        .unwrap_or(0)
}
