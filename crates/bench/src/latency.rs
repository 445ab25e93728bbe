//! Latencies: how long a job waits for a worker, how late a schedule fires.

use std::time::{Duration, Instant};

use tether_producer::{Overlap, ScheduleSpec, Trigger};

use crate::process::{jobs_of, noop, until_done};
use crate::target::Target;
use crate::workers::{Workers, wait_for_workers};

/// The value at fraction `p` (0 to 1) of `sorted`, which must not be empty.
pub(crate) fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Enqueues at `rate` per second for `secs` with one worker running; returns wait p50/p99/max (ms).
pub(crate) async fn wait_latency(
    target: &Target,
    rate: usize,
    secs: u64,
) -> Result<(f64, f64, f64), String> {
    let queue = "bench-wait";
    let _pool = Workers::start(&target.url, queue, 1, 64)?;
    wait_for_workers(target, queue, 1).await?;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let per_tick = (rate / 100).max(1);
    let mut pending = Vec::new();
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        tick.tick().await;
        for _ in 0..per_tick {
            let producer = target.producer.clone();
            pending.push(tokio::spawn(
                async move { producer.enqueue(noop(queue)).await },
            ));
        }
    }
    let mut ids = Vec::with_capacity(pending.len());
    for p in pending {
        ids.push(
            p.await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?,
        );
    }
    until_done(target, queue, ids.len(), Duration::from_secs(120)).await?;
    let mut waits = Vec::with_capacity(ids.len());
    for id in ids {
        let job = target
            .producer
            .get(id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("job vanished")?;
        let started = job.started_at.ok_or("job never started")?;
        waits.push((started - job.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0);
    }
    waits.sort_by(f64::total_cmp);
    Ok((
        pct(&waits, 0.5),
        pct(&waits, 0.99),
        *waits.last().unwrap_or(&0.0),
    ))
}

/// Firing lag of schedules (fire time to enqueue, on the Redis clock): ten
/// every-second schedules fire for `secs` while two worker processes run the
/// scheduler. Returns (firings, p50 ms, p99 ms).
pub(crate) async fn schedule_lag(target: &Target, secs: u64) -> Result<(usize, f64, f64), String> {
    let queue = "bench-sched";
    let _pool = Workers::start(&target.url, queue, 2, 16)?;
    wait_for_workers(target, queue, 2).await?;
    let names: Vec<String> = (0..10).map(|i| format!("bench-{i}")).collect();
    for name in &names {
        let spec = ScheduleSpec::new(
            name.as_str(),
            noop(queue),
            Trigger::every(Duration::from_secs(1)).map_err(|e| e.to_string())?,
        )
        .overlap(Overlap::Allow);
        target
            .producer
            .create_schedule(spec)
            .await
            .map_err(|e| e.to_string())?;
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    for name in &names {
        target
            .producer
            .delete_schedule(name)
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut lags: Vec<f64> = jobs_of(target, queue)
        .await?
        .iter()
        .filter_map(|job| {
            let fire = job.fire_time?;
            Some((job.created_at - fire).num_microseconds().unwrap_or(0) as f64 / 1000.0)
        })
        .collect();
    if lags.is_empty() {
        return Err("no schedule fired".into());
    }
    lags.sort_by(f64::total_cmp);
    Ok((lags.len(), pct(&lags, 0.5), pct(&lags, 0.99)))
}
