//! The two bench runs: the whole plan on one Redis, and a cluster against one Redis.

use std::time::Instant;

use indicatif::ProgressBar;
use tether_testkit::RedisCluster;

use crate::figures::{ClusterFigures, Figures};
use crate::latency::{schedule_lag, wait_latency};
use crate::plan::Plan;
use crate::process::{bulk_enqueue, drain_queues, noop, processing, rate, steady_rate};
use crate::target::Target;

/// Phases [`run`] reports on its progress bar (a bar of this length).
pub const PHASES: u64 = 14;
/// Phases [`run_cluster`] reports on its progress bar.
pub const CLUSTER_PHASES: u64 = 2;

fn phase(bar: &ProgressBar, what: &str) {
    bar.set_message(what.to_owned());
    bar.inc(1);
}

/// Runs the whole plan against the Redis at `url` (a private `redis-server`, and a
/// second one with AOF, when `None`), reporting each phase on `bar`.
pub async fn run(plan: Plan, url: Option<String>, bar: &ProgressBar) -> Result<Figures, String> {
    let target = Target::start(url.clone(), false).await?;
    let mut out = Figures::default();

    phase(bar, "enqueue, one at a time");
    let t = Instant::now();
    for _ in 0..plan.single_enqueues {
        target
            .producer
            .enqueue(noop("bench-single"))
            .await
            .map_err(|e| e.to_string())?;
    }
    out.enqueue_single_jobs_per_s = rate(plan.single_enqueues, t);

    phase(bar, "enqueue from 64 tasks");
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
    out.enqueue_concurrent_jobs_per_s = rate(per_task * 64, t);

    phase(bar, "bulk enqueue");
    let memory_before = target.info().await?.memory;
    let t = Instant::now();
    bulk_enqueue(&target.producer, "bench-bulk", plan.bulk_enqueues, None).await?;
    out.bulk_enqueue_jobs_per_s = rate(plan.bulk_enqueues, t);
    let pending_memory = target.info().await?.memory - memory_before;
    out.redis_bytes_per_pending_job = pending_memory / plan.bulk_enqueues as f64;

    let mut best = 0.0f64;
    for &c in &plan.concurrencies {
        phase(bar, &format!("processing, 1 worker, concurrency {c}"));
        let n = if c == 1 {
            plan.process_jobs / 4
        } else {
            plan.process_jobs
        };
        let run = processing(&target, &format!("w1c{c}"), n, 1, c, false).await?;
        best = best.max(run.jobs_per_s);
        out.process_runs_jobs_per_s
            .insert(format!("1x{c}"), run.jobs_per_s);
        if c == 64 {
            out.redis_cmds_per_job = Some(run.cost.calls / n as f64);
            out.redis_cpu_us_per_job = Some(run.cost.cpu_s * 1e6 / n as f64);
            out.redis_net_bytes_per_job = Some(run.cost.net_bytes / n as f64);
        }
        if c == *plan.concurrencies.last().unwrap_or(&64) {
            out.worker_rss_mib = Some(run.rss_mib);
        }
    }
    out.process_jobs_per_s = best;
    for &w in plan.worker_counts.iter().filter(|w| **w > 1) {
        phase(bar, &format!("processing, {w} workers"));
        let run = processing(
            &target,
            &format!("w{w}c64"),
            plan.process_jobs,
            w,
            64,
            false,
        )
        .await?;
        out.process_runs_jobs_per_s
            .insert(format!("{w}x64"), run.jobs_per_s);
    }
    let runs = &out.process_runs_jobs_per_s;
    let one = runs.get("1x64").copied().unwrap_or(best);
    out.two_vs_one_workers_ratio = runs.get("2x64").map(|two| two / one);

    phase(bar, "backlog");
    // Both runs are compared at their steady rate (first to last recorded outcome,
    // on the Redis clock): a 1,000-job run lasts tens of milliseconds, so the
    // worker's wake-up and the poller's granularity would otherwise dominate it.
    let small = processing(&target, "backlog-small", 1_000, 1, 64, true).await?;
    let small_steady = steady_rate(&target, "bench-backlog-small", 1_000).await?;
    let large = processing(&target, "backlog-large", plan.backlog_jobs, 1, 64, true).await?;
    let large_steady = steady_rate(&target, "bench-backlog-large", plan.backlog_jobs).await?;
    out.backlog_small_jobs_per_s = small_steady;
    out.backlog_large_jobs_per_s = large_steady;
    out.backlog_100k_vs_1k_ratio = large_steady / small_steady;
    out.backlog_cpu_us_per_job_small = small.cost.cpu_s * 1e6 / 1_000.0;
    out.backlog_cpu_us_per_job_large = large.cost.cpu_s * 1e6 / plan.backlog_jobs as f64;
    out.backlog_large_jobs = plan.backlog_jobs;

    phase(bar, "schedule firing lag");
    let (firings, lag_p50, lag_p99) = schedule_lag(&target, plan.schedule_secs).await?;
    out.schedule_firings = firings;
    out.schedule_lag_p50_ms = lag_p50;
    out.schedule_lag_p99_ms = lag_p99;

    phase(bar, "wait latency at a fixed arrival rate");
    let waits = wait_latency(&target, plan.arrival_rate, plan.arrival_secs).await?;
    out.wait_arrival_rate_per_s = plan.arrival_rate;
    out.wait_p50_ms = waits.p50;
    out.wait_p99_ms = waits.p99;
    out.wait_max_ms = waits.max;
    out.wait_records_p50_ms = waits.records_p50;
    out.wait_records_p99_ms = waits.records_p99;

    phase(bar, "flow control: groups, a rate limit, priority");
    let flow = crate::flow::flow(
        &target,
        plan.flow_jobs,
        plan.flow_rate,
        plan.priority_backlog,
    )
    .await?;
    out.flow_plain_jobs_per_s = flow.plain_jobs_per_s;
    out.flow_groups_1000_jobs_per_s = flow.groups_jobs_per_s;
    out.flow_groups_vs_plain_ratio = flow.groups_jobs_per_s / flow.plain_jobs_per_s;
    out.flow_rate_limit_per_s = flow.rate_limit_per_s;
    out.flow_rate_achieved_per_s = flow.rate_achieved_per_s;
    out.flow_rate_achieved_ratio = flow.rate_achieved_per_s / f64::from(flow.rate_limit_per_s);
    out.flow_rate_busiest_second = flow.rate_busiest_second;
    out.flow_priority0_wait_p50_ms = flow.priority_wait_p50_ms;
    out.flow_priority0_wait_p99_ms = flow.priority_wait_p99_ms;
    out.flow_priority0_wait_max_ms = flow.priority_wait_max_ms;
    out.flow_priority_backlog = flow.priority_backlog;

    phase(bar, "task trees: fan-out and fan-in");
    let tree = crate::tree::fan_out(&target, plan.tree_children, plan.tree_parents).await?;
    out.tree_children = tree.children;
    out.tree_parents = tree.parents;
    out.tree_fan_in_p50_ms = tree.fan_in_p50_ms;
    out.tree_fan_in_p99_ms = tree.fan_in_p99_ms;
    out.tree_fan_in_max_ms = tree.fan_in_max_ms;
    out.tree_redis_cmds_per_child = tree.redis_cmds_per_child;
    out.tree_redis_cpu_us_per_child = tree.redis_cpu_us_per_child;

    phase(bar, "redis-benchmark ceiling");
    out.redis_benchmark = target.ceiling();

    let mut verified = target.verified();
    if url.is_none() {
        phase(bar, "processing with AOF (appendfsync everysec)");
        let aof = Target::start(None, true).await?;
        let run = processing(&aof, "aof", plan.process_jobs, 1, 64, false).await?;
        out.aof_process_jobs_per_s = Some(run.jobs_per_s);
        out.aof_redis_cpu_us_per_job = Some(run.cost.cpu_s * 1e6 / plan.process_jobs as f64);
        verified &= aof.verified();
    }
    bar.finish_and_clear();
    out.verified = verified;
    Ok(out)
}

/// Noop throughput on a local 3-master Redis Cluster with 3 queues (one per master)
/// against one Redis with the same 3 queues, measured back to back; `per_queue`
/// jobs each. Reports each phase on `bar`.
pub async fn run_cluster(per_queue: usize, bar: &ProgressBar) -> Result<ClusterFigures, String> {
    phase(bar, "one Redis, 3 queues");
    let single = Target::start(None, false).await?;
    let queues: Vec<String> = (0..3).map(|i| format!("bench-cluster-{i}")).collect();
    let single_rate = drain_queues(&single, &queues, per_queue).await?;
    let single_verified = single.verified();
    drop(single);

    phase(bar, "3-master cluster, 3 queues");
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 0))
        .await
        .map_err(|e| e.to_string())?;
    let queues = cluster.names_on_every_master("bench-cluster-", 1);
    let target = Target::start(Some(cluster.url()), false).await?;
    let cluster_rate = drain_queues(&target, &queues, per_queue).await?;
    bar.finish_and_clear();
    Ok(ClusterFigures {
        jobs: per_queue * 3,
        single_jobs_per_s: single_rate,
        cluster_jobs_per_s: cluster_rate,
        cluster_vs_single_ratio: cluster_rate / single_rate,
        verified: single_verified && target.verified(),
    })
}
