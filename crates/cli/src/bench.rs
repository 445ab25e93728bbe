//! `tether bench`: throughput, latency and cost per job, measured against a
//! private redis-server with real `tether worker` processes, from Redis's own
//! statistics. Every processing run counts its outcomes (`verified`).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_producer::{JobSpec, Producer};
use tether_store::{Store, StoreConfig};
use tether_testkit::{RedisCluster, RedisOptions, RedisServer};

/// Sizes of one bench run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub single_enqueues: usize,
    pub bulk_enqueues: usize,
    pub process_jobs: usize,
    pub concurrencies: Vec<usize>,
    pub worker_counts: Vec<usize>,
    pub arrival_rate: usize,
    pub arrival_secs: u64,
    pub backlog_jobs: usize,
    /// How long every-second schedules fire for the firing-lag measurement.
    pub schedule_secs: u64,
}

impl Plan {
    pub(crate) fn full() -> Plan {
        Plan {
            single_enqueues: 10_000,
            bulk_enqueues: 200_000,
            process_jobs: 20_000,
            concurrencies: vec![1, 16, 64, 256],
            worker_counts: vec![1, 2, 4],
            arrival_rate: 2_000,
            arrival_secs: 10,
            backlog_jobs: 100_000,
            schedule_secs: 20,
        }
    }

    /// Under a minute on a 2-core machine; for CI.
    pub(crate) fn quick() -> Plan {
        Plan {
            single_enqueues: 1_000,
            bulk_enqueues: 20_000,
            process_jobs: 5_000,
            concurrencies: vec![16, 64],
            worker_counts: vec![1, 2],
            arrival_rate: 1_000,
            arrival_secs: 2,
            backlog_jobs: 10_000,
            schedule_secs: 4,
        }
    }
}

/// A Redis to measure against, with a producer on it.
pub(crate) struct Target {
    pub(crate) url: String,
    store: Store,
    producer: Producer,
    /// Set when a run recorded fewer successes than it enqueued.
    miscounted: std::sync::atomic::AtomicBool,
    _server: Option<RedisServer>,
}

impl Target {
    pub(crate) async fn start(url: Option<String>, aof: bool) -> Result<Target, String> {
        let (url, server) = match url {
            Some(url) => (url, None),
            None => {
                let server = RedisServer::start(RedisOptions {
                    aof,
                    ..Default::default()
                });
                (server.url(), Some(server))
            }
        };
        let store = Store::connect(StoreConfig::new(url.clone()))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Target {
            url,
            producer: Producer::from_store(store.clone()),
            store,
            miscounted: Default::default(),
            _server: server,
        })
    }

    /// True when every run against this Redis counted all its outcomes as successes.
    fn verified(&self) -> bool {
        !self.miscounted.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn info(&self) -> Result<ServerStats, String> {
        let mut all = self
            .store
            .server_info("all")
            .await
            .map_err(|e| e.to_string())?;
        let num = |all: &HashMap<String, String>, k: &str| {
            all.get(k)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let calls = all
            .iter()
            .filter(|(k, _)| k.starts_with("cmdstat_"))
            .filter_map(|(_, v)| {
                v.split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))
                    .and_then(|c| c.parse::<f64>().ok())
            })
            .sum();
        let stats = ServerStats {
            calls,
            cpu_s: num(&all, "used_cpu_user") + num(&all, "used_cpu_sys"),
            net_bytes: num(&all, "total_net_input_bytes") + num(&all, "total_net_output_bytes"),
            memory: num(&all, "used_memory"),
        };
        all.clear();
        Ok(stats)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ServerStats {
    calls: f64,
    cpu_s: f64,
    net_bytes: f64,
    memory: f64,
}

impl std::ops::Sub for ServerStats {
    type Output = ServerStats;
    fn sub(self, o: ServerStats) -> ServerStats {
        ServerStats {
            calls: self.calls - o.calls,
            cpu_s: self.cpu_s - o.cpu_s,
            net_bytes: self.net_bytes - o.net_bytes,
            memory: self.memory - o.memory,
        }
    }
}

/// `tether worker` processes of this same binary.
pub(crate) struct Workers(Vec<Child>);

impl Workers {
    fn start(url: &str, queue: &str, count: usize, concurrency: usize) -> Result<Workers, String> {
        let concurrency_arg = concurrency.to_string();
        let claim_batch = concurrency.clamp(1, 256).to_string();
        Workers::start_with(
            url,
            count,
            &[
                "--queue",
                queue,
                "--concurrency",
                &concurrency_arg,
                "--claim-batch",
                &claim_batch,
            ],
        )
    }

    /// `count` workers on `url` with these `tether worker` arguments.
    pub(crate) fn start_with(url: &str, count: usize, args: &[&str]) -> Result<Workers, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut children = Vec::new();
        for _ in 0..count {
            let child = Command::new(&exe)
                .args(["worker", "--redis", url])
                .args(args)
                .args(["--log", "error"])
                .env_remove("TETHER_CONFIG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start a worker: {e}"))?;
            children.push(child);
        }
        Ok(Workers(children))
    }

    /// Resident memory of each worker now, MiB (from /proc).
    pub(crate) fn rss_mib(&self) -> Vec<f64> {
        self.0
            .iter()
            .map(|c| proc_status_kib(c.id(), "VmRSS:") / 1024.0)
            .collect()
    }

    /// Peak resident memory of the workers, MiB (from /proc).
    fn peak_rss_mib(&self) -> f64 {
        self.0
            .iter()
            .map(|c| proc_status_kib(c.id(), "VmHWM:"))
            .fold(0.0, f64::max)
            / 1024.0
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        for child in &mut self.0 {
            let _ = child.wait();
        }
    }
}

/// Proc status field `field` (kB) of process `pid`; 0 when unreadable.
fn proc_status_kib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(field)
                    .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            })
        })
        .unwrap_or(0.0)
}

pub(crate) async fn wait_for_workers(
    target: &Target,
    queue: &str,
    count: usize,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let workers = target.store.workers().await.map_err(|e| e.to_string())?;
        if workers
            .iter()
            .filter(|w| w.queues.iter().any(|q| q == queue))
            .count()
            >= count
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{count} workers did not register within 20 s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn noop(queue: &str) -> JobSpec {
    JobSpec::new("noop").queue(queue)
}

/// Enqueues `n` noop jobs in batches of 1,000, due at `due` when given.
async fn bulk_enqueue(
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
async fn until_done(
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
                target
                    .miscounted
                    .store(true, std::sync::atomic::Ordering::Relaxed);
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
struct Run {
    jobs_per_s: f64,
    cost: ServerStats,
    rss_mib: f64,
}

async fn processing(
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

/// Jobs/s between the first and the last recorded outcome of `queue`'s `n` jobs.
async fn steady_rate(target: &Target, queue: &str, n: usize) -> Result<f64, String> {
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

/// Enqueues at `rate` per second for `secs` with one worker running; returns wait p50/p99/max (ms).
async fn wait_latency(target: &Target, rate: usize, secs: u64) -> Result<(f64, f64, f64), String> {
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
    let pct = |p: f64| waits[((waits.len() as f64 - 1.0) * p).round() as usize];
    Ok((pct(0.5), pct(0.99), *waits.last().unwrap_or(&0.0)))
}

/// Firing lag of schedules (fire time to enqueue, on the Redis clock): ten
/// every-second schedules fire for `secs` while two worker processes run the
/// scheduler. Returns (firings, p50 ms, p99 ms).
async fn schedule_lag(target: &Target, secs: u64) -> Result<(usize, f64, f64), String> {
    use tether_producer::{ListQuery, Overlap, ScheduleSpec, Trigger};
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
    let mut lags = Vec::new();
    let mut marker = None;
    loop {
        let page = target
            .producer
            .list(ListQuery {
                queues: vec![queue.to_owned()],
                limit: 500,
                marker,
                ..ListQuery::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        for job in &page.jobs {
            if let Some(fire) = job.fire_time {
                lags.push((job.created_at - fire).num_microseconds().unwrap_or(0) as f64 / 1000.0);
            }
        }
        marker = page.next_marker;
        if marker.is_none() {
            break;
        }
    }
    if lags.is_empty() {
        return Err("no schedule fired".into());
    }
    lags.sort_by(f64::total_cmp);
    let pct = |p: f64| lags[((lags.len() as f64 - 1.0) * p).round() as usize];
    Ok((lags.len(), pct(0.5), pct(0.99)))
}

fn rate(n: usize, since: Instant) -> f64 {
    n as f64 / since.elapsed().as_secs_f64()
}

/// `redis-benchmark` on the same server, as the machine's ceiling (when installed).
fn redis_ceiling(url: &str) -> Value {
    let port = url
        .rsplit(':')
        .next()
        .unwrap_or("6379")
        .trim_end_matches('/');
    let run = |args: &[&str]| -> Option<f64> {
        let out = Command::new("redis-benchmark")
            .args(["-p", port, "-q", "-n", "100000"])
            .args(args)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .zip(text.split_whitespace().skip(1))
            .find_map(|(n, w)| (w == "requests").then(|| n.parse().ok()).flatten())
    };
    json!({
        "set_per_s": run(&["-t", "set"]),
        "set_pipelined_16_per_s": run(&["-t", "set", "-P", "16"]),
        "xadd_per_s": run(&["XADD", "bench-ceiling", "*", "f", "v"]),
        "xadd_pipelined_16_per_s": run(&["-P", "16", "XADD", "bench-ceiling", "*", "f", "v"]),
    })
}

/// Drains `per_queue` noop jobs from each of `queues`, one worker process per queue at
/// concurrency 64, all jobs queued before the workers may claim; returns jobs/s.
async fn drain_queues(target: &Target, queues: &[String], per_queue: usize) -> Result<f64, String> {
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

/// Noop throughput on a local 3-master Redis Cluster with 3 queues (one per master)
/// against one Redis with the same 3 queues, measured back to back.
pub(crate) async fn run_cluster(per_queue: usize) -> Result<Value, String> {
    let bar = crate::output::progress_bar(2, "bench --cluster");
    phase(&bar, "one Redis, 3 queues");
    let single = Target::start(None, false).await?;
    let queues: Vec<String> = (0..3).map(|i| format!("bench-cluster-{i}")).collect();
    let single_rate = drain_queues(&single, &queues, per_queue).await?;
    let single_verified = single.verified();
    drop(single);

    phase(&bar, "3-master cluster, 3 queues");
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 0))
        .await
        .map_err(|e| e.to_string())?;
    let queues = cluster.names_on_every_master("bench-cluster-", 1);
    let target = Target::start(Some(cluster.url()), false).await?;
    let cluster_rate = drain_queues(&target, &queues, per_queue).await?;
    bar.finish_and_clear();
    Ok(json!({
        "jobs": per_queue * 3,
        "single_jobs_per_s": single_rate,
        "cluster_jobs_per_s": cluster_rate,
        "cluster_vs_single_ratio": cluster_rate / single_rate,
        "verified": single_verified && target.verified(),
    }))
}

/// The cluster comparison as a small table.
pub(crate) fn cluster_table(figures: &Value) -> String {
    let f = |k: &str| figures[k].as_f64().unwrap_or(f64::NAN);
    format!(
        "{:<44}{:>12.0} jobs/s\n{:<44}{:>12.0} jobs/s\n{:<44}{:>12.2} ×\nverified (every run's outcomes counted): {}\n",
        format!("one Redis, 3 queues ({} noop jobs)", figures["jobs"]),
        f("single_jobs_per_s"),
        "3-master Redis Cluster, 3 queues",
        f("cluster_jobs_per_s"),
        "cluster vs one Redis",
        f("cluster_vs_single_ratio"),
        figures["verified"],
    )
}

fn phase(bar: &indicatif::ProgressBar, what: &str) {
    bar.set_message(what.to_owned());
    bar.inc(1);
}

/// Runs the whole plan and returns the figures as one JSON object.
pub(crate) async fn run(plan: Plan, url: Option<String>) -> Result<Value, String> {
    let bar = crate::output::progress_bar(13, "bench");
    let target = Target::start(url.clone(), false).await?;
    let mut out = serde_json::Map::new();

    phase(&bar, "enqueue, one at a time");
    let t = Instant::now();
    for _ in 0..plan.single_enqueues {
        target
            .producer
            .enqueue(noop("bench-single"))
            .await
            .map_err(|e| e.to_string())?;
    }
    out.insert(
        "enqueue_single_jobs_per_s".into(),
        json!(rate(plan.single_enqueues, t)),
    );

    phase(&bar, "enqueue from 64 tasks");
    let t = Instant::now();
    let per_task = plan.single_enqueues * 4 / 64;
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let producer = target.producer.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    producer.enqueue(noop("bench-concurrent")).await?;
                }
                Ok::<_, tether_producer::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    out.insert(
        "enqueue_concurrent_jobs_per_s".into(),
        json!(rate(per_task * 64, t)),
    );

    phase(&bar, "bulk enqueue");
    let memory_before = target.info().await?.memory;
    let t = Instant::now();
    bulk_enqueue(&target.producer, "bench-bulk", plan.bulk_enqueues, None).await?;
    out.insert(
        "bulk_enqueue_jobs_per_s".into(),
        json!(rate(plan.bulk_enqueues, t)),
    );
    let pending_memory = target.info().await?.memory - memory_before;
    out.insert(
        "redis_bytes_per_pending_job".into(),
        json!(pending_memory / plan.bulk_enqueues as f64),
    );

    let mut best = 0.0f64;
    let mut runs = serde_json::Map::new();
    for &c in &plan.concurrencies {
        phase(&bar, &format!("processing, 1 worker, concurrency {c}"));
        let n = if c == 1 {
            plan.process_jobs / 4
        } else {
            plan.process_jobs
        };
        let run = processing(&target, &format!("w1c{c}"), n, 1, c, false).await?;
        best = best.max(run.jobs_per_s);
        runs.insert(format!("1x{c}"), json!(run.jobs_per_s));
        if c == 64 {
            out.insert(
                "redis_cmds_per_job".into(),
                json!(run.cost.calls / n as f64),
            );
            out.insert(
                "redis_cpu_us_per_job".into(),
                json!(run.cost.cpu_s * 1e6 / n as f64),
            );
            out.insert(
                "redis_net_bytes_per_job".into(),
                json!(run.cost.net_bytes / n as f64),
            );
        }
        if c == *plan.concurrencies.last().unwrap_or(&64) {
            out.insert("worker_rss_mib".into(), json!(run.rss_mib));
        }
    }
    out.insert("process_jobs_per_s".into(), json!(best));
    for &w in plan.worker_counts.iter().filter(|w| **w > 1) {
        phase(&bar, &format!("processing, {w} workers"));
        let run = processing(
            &target,
            &format!("w{w}c64"),
            plan.process_jobs,
            w,
            64,
            false,
        )
        .await?;
        runs.insert(format!("{w}x64"), json!(run.jobs_per_s));
    }
    let one = runs.get("1x64").and_then(Value::as_f64).unwrap_or(best);
    if let Some(two) = runs.get("2x64").and_then(Value::as_f64) {
        out.insert("two_vs_one_workers_ratio".into(), json!(two / one));
    }
    out.insert("process_runs_jobs_per_s".into(), Value::Object(runs));

    phase(&bar, "backlog");
    // Both runs are compared at their steady rate (first to last recorded outcome,
    // on the Redis clock): a 1,000-job run lasts tens of milliseconds, so the
    // worker's wake-up and the poller's granularity would otherwise dominate it.
    let small = processing(&target, "backlog-small", 1_000, 1, 64, true).await?;
    let small_steady = steady_rate(&target, "bench-backlog-small", 1_000).await?;
    let large = processing(&target, "backlog-large", plan.backlog_jobs, 1, 64, true).await?;
    let large_steady = steady_rate(&target, "bench-backlog-large", plan.backlog_jobs).await?;
    out.insert("backlog_small_jobs_per_s".into(), json!(small_steady));
    out.insert("backlog_large_jobs_per_s".into(), json!(large_steady));
    out.insert(
        "backlog_100k_vs_1k_ratio".into(),
        json!(large_steady / small_steady),
    );
    out.insert(
        "backlog_cpu_us_per_job_small".into(),
        json!(small.cost.cpu_s * 1e6 / 1_000.0),
    );
    out.insert(
        "backlog_cpu_us_per_job_large".into(),
        json!(large.cost.cpu_s * 1e6 / plan.backlog_jobs as f64),
    );
    out.insert("backlog_large_jobs".into(), json!(plan.backlog_jobs));

    phase(&bar, "schedule firing lag");
    let (firings, lag_p50, lag_p99) = schedule_lag(&target, plan.schedule_secs).await?;
    out.insert("schedule_firings".into(), json!(firings));
    out.insert("schedule_lag_p50_ms".into(), json!(lag_p50));
    out.insert("schedule_lag_p99_ms".into(), json!(lag_p99));

    phase(&bar, "wait latency at a fixed arrival rate");
    let (p50, p99, max) = wait_latency(&target, plan.arrival_rate, plan.arrival_secs).await?;
    out.insert("wait_arrival_rate_per_s".into(), json!(plan.arrival_rate));
    out.insert("wait_p50_ms".into(), json!(p50));
    out.insert("wait_p99_ms".into(), json!(p99));
    out.insert("wait_max_ms".into(), json!(max));

    phase(&bar, "redis-benchmark ceiling");
    out.insert("redis_benchmark".into(), redis_ceiling(&target.url));

    let mut verified = target.verified();
    if url.is_none() {
        phase(&bar, "processing with AOF (appendfsync everysec)");
        let aof = Target::start(None, true).await?;
        let run = processing(&aof, "aof", plan.process_jobs, 1, 64, false).await?;
        out.insert("aof_process_jobs_per_s".into(), json!(run.jobs_per_s));
        out.insert(
            "aof_redis_cpu_us_per_job".into(),
            json!(run.cost.cpu_s * 1e6 / plan.process_jobs as f64),
        );
        verified &= aof.verified();
    }
    bar.finish_and_clear();
    out.insert("verified".into(), json!(verified));
    Ok(Value::Object(out))
}

/// The figures as a table.
pub(crate) fn table(figures: &Value) -> String {
    let f = |k: &str| {
        figures
            .get(k)
            .and_then(Value::as_f64)
            .map(|v| format!("{v:.1}"))
            .unwrap_or_else(|| "-".into())
    };
    let rows = [
        (
            "enqueue, one at a time (1 task)",
            "enqueue_single_jobs_per_s",
            "jobs/s",
        ),
        (
            "enqueue, one at a time (64 tasks)",
            "enqueue_concurrent_jobs_per_s",
            "jobs/s",
        ),
        ("bulk enqueue", "bulk_enqueue_jobs_per_s", "jobs/s"),
        (
            "processing, 1 worker, best concurrency",
            "process_jobs_per_s",
            "jobs/s",
        ),
        (
            "2 workers vs 1 (concurrency 64)",
            "two_vs_one_workers_ratio",
            "×",
        ),
        (
            "processing with large backlog vs 1,000",
            "backlog_100k_vs_1k_ratio",
            "×",
        ),
        ("wait p50 at fixed arrival rate", "wait_p50_ms", "ms"),
        ("wait p99 at fixed arrival rate", "wait_p99_ms", "ms"),
        ("wait max", "wait_max_ms", "ms"),
        ("schedule firing lag p50", "schedule_lag_p50_ms", "ms"),
        ("schedule firing lag p99", "schedule_lag_p99_ms", "ms"),
        (
            "Redis commands per job (incl. scripts)",
            "redis_cmds_per_job",
            "",
        ),
        ("Redis CPU per job", "redis_cpu_us_per_job", "µs"),
        ("Redis network per job", "redis_net_bytes_per_job", "bytes"),
        (
            "Redis memory per pending job",
            "redis_bytes_per_pending_job",
            "bytes",
        ),
        ("worker RSS at top concurrency", "worker_rss_mib", "MiB"),
        (
            "processing with AOF everysec",
            "aof_process_jobs_per_s",
            "jobs/s",
        ),
        (
            "Redis CPU per job with AOF",
            "aof_redis_cpu_us_per_job",
            "µs",
        ),
    ];
    let mut out = String::new();
    for (label, key, unit) in rows {
        out.push_str(&format!("{label:<42} {:>12} {unit}\n", f(key)));
    }
    if let Some(runs) = figures
        .get("process_runs_jobs_per_s")
        .and_then(Value::as_object)
    {
        for (k, v) in runs {
            out.push_str(&format!(
                "  processing workers×concurrency {k:<10} {:>12.1} jobs/s\n",
                v.as_f64().unwrap_or(0.0)
            ));
        }
    }
    if let Some(c) = figures.get("redis_benchmark") {
        out.push_str(&format!("redis-benchmark ceiling: {c}\n"));
    }
    out.push_str(&format!(
        "verified (every run's outcomes counted): {}\n",
        figures["verified"]
    ));
    out
}
