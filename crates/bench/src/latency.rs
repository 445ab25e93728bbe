//! Latencies: how long a job waits for a worker, how late a schedule fires.

use std::time::{Duration, Instant};

use tether_producer::{JobSpec, Overlap, ScheduleSpec, Trigger};

use crate::process::{jobs_of, noop, until_done};
use crate::target::Target;
use crate::workers::{Workers, wait_for_workers};

/// The value at fraction `p` (0 to 1) of `sorted`; NaN (`null` in the JSON) when empty.
pub(crate) fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Microseconds since the epoch by the machine clock, as the `stamp` job reads it.
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// How long jobs waited, in ms.
pub(crate) struct Waits {
    /// From just before the enqueue call to the start of the handler, to the µs.
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    /// `started_at − created_at` of the same jobs (whole ms on the Redis clock).
    pub records_p50: f64,
    pub records_p99: f64,
}

/// Enqueues `stamp` jobs at `rate` per second for `secs` with one worker running and
/// measures their waits: from just before the enqueue call to the start of the
/// handler, which answers the time it started. Both ends read this machine's clock
/// (the bench and its worker run on it), to the microsecond, and the wait includes the
/// enqueue's round trip and the claim's; the records' own times (whole milliseconds on
/// the Redis clock, from the enqueue script to the claim script) are measured beside.
pub(crate) async fn wait_latency(target: &Target, rate: usize, secs: u64) -> Result<Waits, String> {
    let queue = "bench-wait";
    let _pool = Workers::start(&target.url, queue, 1, 64)?;
    wait_for_workers(target, queue, 1).await?;
    // Arrivals spread over every millisecond (the timer's resolution), not sent in
    // bursts: a job sent behind a burst would count the burst's own enqueues as its wait.
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut pending = Vec::new();
    let rate = rate.max(1) as u64;
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    while Instant::now() < end {
        tick.tick().await;
        // The jobs due by now at `rate`, less those sent. A wait counts from the send
        // (read here, before the task that makes the call is spawned): the sends never
        // wait for Tether's answers, so a late send is this process's own delay, which
        // the 1 ms timer would otherwise add to every wait.
        let due = (start.elapsed().as_micros() as u64 * rate / 1_000_000 + 1) as usize;
        for _ in pending.len()..due {
            let producer = target.producer.clone();
            let sent_us = now_us();
            pending.push(tokio::spawn(async move {
                let id = producer.enqueue(JobSpec::new("stamp").queue(queue)).await?;
                Ok::<_, tether_producer::Error>((id, sent_us))
            }));
        }
    }
    let mut sent = Vec::with_capacity(pending.len());
    for p in pending {
        sent.push(
            p.await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?,
        );
    }
    until_done(target, queue, sent.len(), Duration::from_secs(120)).await?;
    let mut waits = Vec::with_capacity(sent.len());
    let mut records = Vec::with_capacity(sent.len());
    for (id, sent_us) in sent {
        let job = target
            .producer
            .get(id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("job vanished")?;
        let started_us = job
            .result
            .as_ref()
            .and_then(|r| r.get("started_us"))
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| format!("job {id} answered no start time: {:?}", job.result))?;
        waits.push(started_us.saturating_sub(sent_us) as f64 / 1000.0);
        let started = job.started_at.ok_or("job never started")?;
        records.push((started - job.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0);
    }
    waits.sort_by(f64::total_cmp);
    records.sort_by(f64::total_cmp);
    Ok(Waits {
        p50: pct(&waits, 0.5),
        p99: pct(&waits, 0.99),
        max: *waits.last().unwrap_or(&0.0),
        records_p50: pct(&records, 0.5),
        records_p99: pct(&records, 0.99),
    })
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

#[cfg(test)]
mod tests {
    use super::pct;

    #[test]
    fn percentiles_of_no_sample_are_not_a_number() {
        assert!(pct(&[], 0.99).is_nan());
        assert_eq!(pct(&[1.0, 2.0, 3.0], 0.5), 2.0);
    }
}
