//! `tether bench --soak DURATION`: a steady mixed workload for a long time, to see
//! whether anything grows that should not — Redis memory, retained jobs, worker
//! memory, wait latency — and whether every acknowledged job still ends.
//!
//! Two `tether worker` processes serve two queues; this process enqueues the demo
//! mix (noop, sleep, flaky, progress, import, a few failing jobs and a few it
//! cancels) at a steady rate, with a short retention so that finished jobs expire
//! during the run. Every acknowledged id is followed until it is seen final; what
//! is not final after the drain period is lost. Each minute it prints throughput,
//! wait p50/p99, Redis `used_memory`, retained jobs and the workers' RSS; at the
//! end the memory slope over the second half, lost jobs and the consistency check.

mod figures;
mod follow;
mod mix;
mod sample;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_producer::JobSpec;
use tether_store::{Store, StoreConfig};

pub use figures::{Minute, SoakFigures};

use crate::target::Target;
use crate::workers::{Workers, wait_for_workers};
use figures::slope_per_minute;
use follow::{Open, Seen, follow};
use mix::Kind;
use sample::{minute, processing_rate, used_memory};

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub duration: Duration,
    /// Jobs enqueued per second; `None`: half the measured processing rate.
    pub rate: Option<f64>,
    /// Per-minute lines go to stderr (stdout carries one JSON object at the end).
    pub json: bool,
}

const QUEUES: [&str; 2] = ["soak-a", "soak-b"];
const WORKERS: usize = 2;
const CONCURRENCY: usize = 32;
/// Short, so that finished jobs expire during the run and expiry is exercised.
const RETENTION: Duration = Duration::from_secs(30);
/// The longest every acknowledged job may take to end once enqueueing stops.
const DRAIN: Duration = Duration::from_secs(60);
/// A job is first looked at this long after it was acknowledged.
const FIRST_LOOK: Duration = Duration::from_millis(500);

/// Runs the soak against the Redis at `url` (a private `redis-server` when `None`),
/// printing a line per minute, and returns its figures.
pub async fn run(options: SoakOptions, url: Option<String>) -> Result<SoakFigures, String> {
    let target = Target::start(url, false).await?;
    let mut config = StoreConfig::new(target.url.clone());
    config.retention = RETENTION;
    let store = Store::connect(config).await.map_err(|e| e.to_string())?;
    // The workers read the retention from a config file of their own.
    let config_path = std::env::temp_dir().join(format!("tether-soak-{}.toml", std::process::id()));
    std::fs::write(
        &config_path,
        format!("[store]\nretention = \"{}s\"\n", RETENTION.as_secs()),
    )
    .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
    let config_arg = config_path.display().to_string();
    let queues = QUEUES.join(",");
    let workers = Workers::start_with(
        &target.url,
        WORKERS,
        &[
            "--queue",
            &queues,
            "--concurrency",
            &CONCURRENCY.to_string(),
            "--config",
            &config_arg,
        ],
    );
    let result = soak(&options, &store, &target, workers).await;
    let _ = std::fs::remove_file(&config_path);
    result
}

fn say(json: bool, line: String) {
    if json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

async fn soak(
    options: &SoakOptions,
    store: &Store,
    target: &Target,
    workers: Result<Workers, String>,
) -> Result<SoakFigures, String> {
    let workers = workers?;
    for queue in QUEUES {
        wait_for_workers(target, queue, WORKERS).await?;
    }
    let measured = match options.rate {
        Some(_) => None,
        None => {
            say(options.json, "measuring the processing rate…".into());
            Some(processing_rate(store, 4_000).await?)
        }
    };
    let rate = options
        .rate
        .or(measured.map(|r| (r / 2.0).round()))
        .unwrap_or(100.0)
        .max(1.0);
    say(
        options.json,
        format!(
            "soak: {:?} at {rate:.0} jobs/s, {WORKERS} workers × concurrency {CONCURRENCY}, retention {}s",
            options.duration,
            RETENTION.as_secs()
        ),
    );

    let seen = Arc::new(Mutex::new(Seen::default()));
    let (send, receive) = tokio::sync::mpsc::unbounded_channel();
    let follower = tokio::spawn(follow(store.clone(), receive, seen.clone()));

    let sample_every =
        (options.duration / 40).clamp(Duration::from_secs(1), Duration::from_secs(5));
    let report_every = Duration::from_secs(60).min(options.duration);
    let began = Instant::now();
    let end = began + options.duration;
    let mut samples: Vec<(f64, f64)> = vec![(0.0, used_memory(store).await?)];
    let mut minutes = Vec::new();
    let mut minute_began = began;
    let mut next_sample = began + sample_every;
    let mut next_report = began + report_every;
    let mut sent = 0u64;
    let mut acknowledged = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let now = Instant::now();
        if now >= end {
            break;
        }
        // Steady: as many as the rate owes since the start, in one call.
        let owed = (rate * (now - began).as_secs_f64()) as u64;
        if owed > sent {
            let batch: Vec<(u64, Kind)> = (sent..owed).map(|i| (i, Kind::of(i))).collect();
            let specs: Vec<JobSpec> = batch.iter().map(|(i, k)| k.spec(*i)).collect();
            sent = owed;
            let done = store
                .enqueue_many(&specs)
                .await
                .map_err(|e| format!("enqueue: {e}"))?;
            let at = Instant::now();
            for ((_, kind), (spec, d)) in batch.iter().zip(specs.iter().zip(done)) {
                acknowledged += 1;
                let queue = QUEUES
                    .iter()
                    .find(|q| **q == spec.queue)
                    .copied()
                    .unwrap_or(QUEUES[0]);
                if *kind == Kind::Cancelled {
                    let store = store.clone();
                    let id = d.id;
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let _ = store.cancel(queue, id, None).await;
                    });
                }
                let _ = send.send(Open {
                    id: d.id,
                    queue,
                    kind: *kind,
                    acknowledged: at,
                });
            }
        }
        if now >= next_sample {
            next_sample += sample_every;
            samples.push(((now - began).as_secs_f64(), used_memory(store).await?));
        }
        if now >= next_report {
            next_report += report_every;
            let line = minute(store, &workers, &seen, minutes.len() + 1, minute_began).await?;
            minute_began = Instant::now();
            say(options.json, line.1);
            minutes.push(line.0);
        }
    }
    drop(send);
    if minute_began.elapsed() >= Duration::from_secs(1) {
        let line = minute(store, &workers, &seen, minutes.len() + 1, minute_began).await?;
        say(options.json, line.1);
        minutes.push(line.0);
    }
    samples.push((options.duration.as_secs_f64(), used_memory(store).await?));

    // Drain: every acknowledged job gets DRAIN to end.
    say(
        options.json,
        "enqueueing stopped; waiting for every job to end…".into(),
    );
    let mut follower = follower;
    if tokio::time::timeout(DRAIN, &mut follower).await.is_err() {
        follower.abort();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let mut lost: Vec<String> = seen
        .vanished
        .iter()
        .map(|id| format!("{id} (gone)"))
        .collect();
    lost.extend(seen.open.iter().map(|id| format!("{id} (not final)")));

    let mut problems = Vec::new();
    for queue in QUEUES {
        for p in store
            .check_consistency(queue)
            .await
            .map_err(|e| e.to_string())?
        {
            problems.push(format!("{queue}: {p}"));
        }
    }
    drop(workers);

    let half = options.duration.as_secs_f64() / 2.0;
    let second_half: Vec<(f64, f64)> = samples
        .iter()
        .copied()
        .filter(|(t, _)| *t >= half)
        .collect();
    let slope = slope_per_minute(&second_half);
    let mean_memory =
        second_half.iter().map(|p| p.1).sum::<f64>() / second_half.len().max(1) as f64;
    let slope_pct = if mean_memory > 0.0 {
        slope / mean_memory * 100.0
    } else {
        0.0
    };
    let p99_ratio = match (minutes.first(), minutes.last()) {
        (Some(first), Some(last)) => last.wait_p99_ms / first.wait_p99_ms,
        _ => f64::NAN,
    };
    let verified = lost.is_empty() && seen.unexpected.is_empty() && problems.is_empty();
    Ok(SoakFigures {
        mode: "soak",
        duration_s: options.duration.as_secs_f64(),
        rate_per_s: rate,
        measured_process_jobs_per_s: measured,
        workers: WORKERS,
        concurrency: CONCURRENCY,
        retention_s: RETENTION.as_secs(),
        minutes,
        acknowledged,
        finished: seen.finished,
        lost: lost.len(),
        lost_examples: lost.iter().take(10).cloned().collect(),
        unexpected: seen.unexpected.len(),
        unexpected_examples: seen.unexpected.iter().take(10).cloned().collect(),
        memory_samples: samples.len(),
        memory_slope_bytes_per_min: slope,
        memory_slope_pct_per_min: slope_pct,
        p99_wait_last_vs_first_minute: p99_ratio,
        check: if problems.is_empty() {
            "clean".to_owned()
        } else {
            format!("{} problems", problems.len())
        },
        check_problems: problems.iter().take(20).cloned().collect(),
        target_met: verified && slope_pct.abs() < 1.0 && p99_ratio <= 2.0,
        verified,
    })
}
