//! What the soak reads from Redis and the workers as it goes.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tether_producer::JobSpec;
use tether_store::Store;

use super::QUEUES;
use super::figures::{Minute, percentile};
use super::follow::Seen;
use super::mix::Kind;
use crate::workers::Workers;

pub(super) async fn used_memory(store: &Store) -> Result<f64, String> {
    let info = store
        .server_info("memory")
        .await
        .map_err(|e| e.to_string())?;
    Ok(info
        .get("used_memory")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0))
}

async fn retained(store: &Store) -> Result<u64, String> {
    let mut total = 0;
    for queue in QUEUES {
        let s = store.stats(queue).await.map_err(|e| e.to_string())?;
        total += s.pending + s.scheduled + s.processing + s.success + s.failure + s.cancelled;
    }
    Ok(total)
}

async fn outcomes(store: &Store) -> Result<u64, String> {
    let mut total = 0;
    for queue in QUEUES {
        let s = store.stats(queue).await.map_err(|e| e.to_string())?;
        total += s.success + s.failure + s.cancelled;
    }
    Ok(total)
}

/// Drains `n` mixed jobs (no cancels) with the soak's workers; returns jobs/s.
pub(super) async fn processing_rate(store: &Store, n: u64) -> Result<f64, String> {
    let specs: Vec<JobSpec> = (0..n)
        .map(|i| match Kind::of(i) {
            Kind::Cancelled => Kind::Noop.spec(i),
            kind => kind.spec(i),
        })
        .collect();
    let before = outcomes(store).await?;
    let started = Instant::now();
    store
        .enqueue_many(&specs)
        .await
        .map_err(|e| e.to_string())?;
    let deadline = started + Duration::from_secs(300);
    while outcomes(store).await? < before + n {
        if Instant::now() > deadline {
            return Err("the calibration jobs did not finish within 5 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// One minute's figures (and the printed line); resets its counters.
pub(super) async fn minute(
    store: &Store,
    workers: &Workers,
    seen: &Mutex<Seen>,
    index: usize,
    since: Instant,
) -> Result<(Minute, String), String> {
    let secs = since.elapsed().as_secs_f64();
    let (finished, mut waits) = {
        let mut seen = seen.lock().unwrap();
        (
            std::mem::take(&mut seen.finished_this_minute),
            std::mem::take(&mut seen.waits_this_minute),
        )
    };
    waits.sort_by(f64::total_cmp);
    let memory = used_memory(store).await?;
    let retained = retained(store).await?;
    let rss = workers.rss_mib();
    let line = format!(
        "minute {index:>3}: {:>8.1} jobs/s   wait p50 {:>7.1} ms  p99 {:>8.1} ms   used_memory {:>7.1} MiB   retained {:>7} jobs   worker RSS {} MiB",
        finished as f64 / secs,
        percentile(&waits, 0.5),
        percentile(&waits, 0.99),
        memory / 1048576.0,
        retained,
        rss.iter()
            .map(|r| format!("{r:.1}"))
            .collect::<Vec<_>>()
            .join(" + "),
    );
    let entry = Minute {
        minute: index,
        seconds: secs,
        jobs_per_s: finished as f64 / secs,
        wait_p50_ms: percentile(&waits, 0.5),
        wait_p99_ms: percentile(&waits, 0.99),
        redis_used_memory_bytes: memory,
        retained_jobs: retained,
        worker_rss_mib: rss,
    };
    Ok((entry, line))
}
