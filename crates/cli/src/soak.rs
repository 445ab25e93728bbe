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

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use tether_producer::{JobId, JobSpec, RetryPolicy, Status};
use tether_store::{Store, StoreConfig};

use crate::bench::{Target, Workers, wait_for_workers};

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct SoakOptions {
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

/// The kinds of the mix and the state each ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Noop,
    Sleep,
    Flaky,
    Progress,
    Import,
    Fail,
    Cancelled,
}

impl Kind {
    /// Out of every 100 jobs: 70 noop, 8 sleep, 5 flaky, 5 progress, 5 import,
    /// 4 failing for good, 3 long jobs cancelled while they wait or run.
    fn of(i: u64) -> Kind {
        match i % 100 {
            0..70 => Kind::Noop,
            70..78 => Kind::Sleep,
            78..83 => Kind::Flaky,
            83..88 => Kind::Progress,
            88..93 => Kind::Import,
            93..97 => Kind::Fail,
            _ => Kind::Cancelled,
        }
    }

    fn expected(self) -> Status {
        match self {
            Kind::Fail => Status::Failure,
            Kind::Cancelled => Status::Cancelled,
            _ => Status::Success,
        }
    }

    fn spec(self, i: u64) -> JobSpec {
        let queue = QUEUES[(i % QUEUES.len() as u64) as usize];
        let (job_type, input) = match self {
            Kind::Noop => ("noop", Value::Null),
            Kind::Sleep => ("sleep", json!({"ms": 10 + i % 40})),
            Kind::Flaky => ("flaky", json!({"fail_times": 1})),
            Kind::Progress => ("progress", json!({"steps": 4, "step_ms": 10})),
            Kind::Import => ("import", json!({"size_mb": 3, "chunk_ms": 10})),
            Kind::Fail => (
                "fail",
                json!({"message": "soak failure", "code": "SoakFailure", "fatal": true}),
            ),
            Kind::Cancelled => ("progress", json!({"steps": 50, "step_ms": 20})),
        };
        JobSpec::new(job_type)
            .queue(queue)
            .input_json(input)
            .backoff(RetryPolicy {
                initial_ms: 100,
                factor: 2.0,
                cap_ms: 1_000,
                jitter: 0.2,
            })
    }
}

/// An acknowledged job not yet seen final.
struct Open {
    id: JobId,
    queue: &'static str,
    kind: Kind,
    acknowledged: Instant,
}

/// What the follower saw since the last minute line, and in all.
#[derive(Default)]
struct Seen {
    finished_this_minute: u64,
    waits_this_minute: Vec<f64>,
    finished: u64,
    unexpected: Vec<String>,
    /// Acknowledged, then gone before anyone saw it final.
    vanished: Vec<JobId>,
    /// Acknowledged and not (yet) seen final.
    open: Vec<JobId>,
}

/// Follows acknowledged jobs until each is seen final (or gone); returns once the
/// sender is dropped and nothing is open.
async fn follow(
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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Least-squares slope of `(seconds, bytes)`, in bytes per minute.
fn slope_per_minute(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let cov: f64 = points
        .iter()
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    let var: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    if var == 0.0 { 0.0 } else { cov / var * 60.0 }
}

async fn used_memory(store: &Store) -> Result<f64, String> {
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

/// Drains `n` mixed jobs (no cancels) with the soak's workers; returns jobs/s.
async fn processing_rate(store: &Store, n: u64) -> Result<f64, String> {
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

async fn outcomes(store: &Store) -> Result<u64, String> {
    let mut total = 0;
    for queue in QUEUES {
        let s = store.stats(queue).await.map_err(|e| e.to_string())?;
        total += s.success + s.failure + s.cancelled;
    }
    Ok(total)
}

/// `tether bench --soak`: runs, prints the figures (a table, or one JSON object),
/// and fails unless the run is verified.
pub(crate) async fn command(options: SoakOptions, url: Option<String>) -> Result<(), String> {
    let json = options.json;
    let figures = run(options, url).await?;
    if json {
        println!("{figures}");
    } else {
        print!("{}", table(&figures));
    }
    if figures["verified"] == true {
        Ok(())
    } else {
        Err("the soak lost jobs, a job ended unexpectedly, or the check failed".into())
    }
}

/// Runs the soak and returns its figures as one JSON object (`verified`: no job
/// lost, none ended otherwise than expected, the consistency check clean).
pub(crate) async fn run(options: SoakOptions, url: Option<String>) -> Result<Value, String> {
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
) -> Result<Value, String> {
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
    let mut minutes: Vec<Value> = Vec::new();
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
    let p99 = |m: &Value| m["wait_p99_ms"].as_f64().unwrap_or(f64::NAN);
    let p99_ratio = match (minutes.first(), minutes.last()) {
        (Some(first), Some(last)) => p99(last) / p99(first),
        _ => f64::NAN,
    };
    let verified = lost.is_empty() && seen.unexpected.is_empty() && problems.is_empty();
    Ok(json!({
        "mode": "soak",
        "duration_s": options.duration.as_secs_f64(),
        "rate_per_s": rate,
        "measured_process_jobs_per_s": measured,
        "workers": WORKERS,
        "concurrency": CONCURRENCY,
        "retention_s": RETENTION.as_secs(),
        "minutes": minutes,
        "acknowledged": acknowledged,
        "finished": seen.finished,
        "lost": lost.len(),
        "lost_examples": lost.iter().take(10).collect::<Vec<_>>(),
        "unexpected": seen.unexpected.len(),
        "unexpected_examples": seen.unexpected.iter().take(10).collect::<Vec<_>>(),
        "memory_samples": samples.len(),
        "memory_slope_bytes_per_min": slope,
        "memory_slope_pct_per_min": slope_pct,
        "p99_wait_last_vs_first_minute": p99_ratio,
        "check": if problems.is_empty() { "clean".to_owned() } else { format!("{} problems", problems.len()) },
        "check_problems": problems.iter().take(20).collect::<Vec<_>>(),
        "target_met": verified && slope_pct.abs() < 1.0 && p99_ratio <= 2.0,
        "verified": verified,
    }))
}

/// One minute's figures (the JSON entry and the printed line); resets its counters.
async fn minute(
    store: &Store,
    workers: &Workers,
    seen: &Mutex<Seen>,
    index: usize,
    since: Instant,
) -> Result<(Value, String), String> {
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
    let entry = json!({
        "minute": index,
        "seconds": secs,
        "jobs_per_s": finished as f64 / secs,
        "wait_p50_ms": percentile(&waits, 0.5),
        "wait_p99_ms": percentile(&waits, 0.99),
        "redis_used_memory_bytes": memory,
        "retained_jobs": retained,
        "worker_rss_mib": rss,
    });
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
    Ok((entry, line))
}

/// The final figures as lines (per-minute lines were printed as they came).
pub(crate) fn table(figures: &Value) -> String {
    let f = |k: &str| figures[k].as_f64().unwrap_or(f64::NAN);
    let mut out = String::new();
    out.push_str(&format!(
        "jobs acknowledged {}, finished {}, lost {}, ended unexpectedly {}\n",
        figures["acknowledged"], figures["finished"], figures["lost"], figures["unexpected"]
    ));
    for example in figures["lost_examples"].as_array().into_iter().flatten() {
        out.push_str(&format!("  lost: {}\n", example.as_str().unwrap_or("")));
    }
    for example in figures["unexpected_examples"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "  unexpected: {}\n",
            example.as_str().unwrap_or("")
        ));
    }
    out.push_str(&format!(
        "Redis memory slope over the second half: {:.0} bytes/min ({:.2} % of used_memory per minute)\n",
        f("memory_slope_bytes_per_min"),
        f("memory_slope_pct_per_min")
    ));
    out.push_str(&format!(
        "wait p99, last minute vs first: {:.2} ×\n",
        f("p99_wait_last_vs_first_minute")
    ));
    out.push_str(&format!(
        "tether check: {}\n",
        figures["check"].as_str().unwrap_or("?")
    ));
    for p in figures["check_problems"].as_array().into_iter().flatten() {
        out.push_str(&format!("  {}\n", p.as_str().unwrap_or("")));
    }
    out.push_str(&format!(
        "target (slope under 1 %/min, no loss, clean check, p99 within 2× of the first minute): {}\n",
        if figures["target_met"] == true { "met" } else { "not met" }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_a_flat_series() {
        let rising: Vec<(f64, f64)> = (0..10)
            .map(|i| (i as f64 * 6.0, 1000.0 + i as f64 * 60.0))
            .collect();
        assert!((slope_per_minute(&rising) - 600.0).abs() < 1e-6);
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 5.0)).collect();
        assert_eq!(slope_per_minute(&flat), 0.0);
    }

    #[test]
    fn the_mix_has_every_kind() {
        let kinds: Vec<Kind> = (0..100).map(Kind::of).collect();
        for k in [
            Kind::Noop,
            Kind::Sleep,
            Kind::Flaky,
            Kind::Progress,
            Kind::Import,
            Kind::Fail,
            Kind::Cancelled,
        ] {
            assert!(kinds.contains(&k), "{k:?}");
        }
    }
}
