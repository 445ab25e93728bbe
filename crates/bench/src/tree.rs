//! Task trees: `fanout` parents spawning `sleep` children (10,000 in all at the full
//! plan), the time from each parent's last child's outcome to its own fan-in (its
//! outcome, on the Redis clock), and what Redis spends per child.

use std::time::{Duration, Instant};

use serde_json::json;
use tether_producer::{JobId, JobSpec};

use crate::latency::pct;
use crate::target::Target;
use crate::workers::{Workers, wait_for_workers};

/// What [`fan_out`] measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct TreeFigures {
    pub(crate) children: usize,
    pub(crate) parents: usize,
    pub(crate) fan_in_p50_ms: f64,
    pub(crate) fan_in_p99_ms: f64,
    pub(crate) fan_in_max_ms: f64,
    pub(crate) redis_cmds_per_child: f64,
    pub(crate) redis_cpu_us_per_child: f64,
}

/// `parents` fanout jobs of `children / parents` instant children each, one worker at
/// concurrency 64.
pub(crate) async fn fan_out(
    target: &Target,
    children: usize,
    parents: usize,
) -> Result<TreeFigures, String> {
    let queue = "bench-tree";
    let per_parent = (children / parents.max(1)).max(1);
    let _pool = Workers::start(&target.url, queue, 1, 64)?;
    wait_for_workers(target, queue, 1).await?;
    let before = target.info().await?;
    let mut ids: Vec<JobId> = Vec::with_capacity(parents);
    for _ in 0..parents {
        let spec = JobSpec::new("fanout")
            .queue(queue)
            .input_json(json!({"children": per_parent, "child_ms": 0}));
        ids.push(
            target
                .producer
                .enqueue(spec)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let started = Instant::now();
    let mut parents_done = Vec::with_capacity(parents);
    for id in &ids {
        loop {
            let job = target
                .producer
                .get(*id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("fanout job {id} vanished"))?;
            if job.status.is_final() {
                parents_done.push(job);
                break;
            }
            if started.elapsed() > Duration::from_secs(900) {
                return Err(format!("fanout job {id} did not finish in 15 minutes"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let after = target.info().await?;
    let mut lags = Vec::with_capacity(parents);
    for parent in &parents_done {
        if parent.status != tether_producer::Status::Success {
            target.miscounted();
        }
        let mut last = None;
        let mut marker = None;
        loop {
            let page = target
                .producer
                .children(parent.id, marker, 1000)
                .await
                .map_err(|e| e.to_string())?;
            last = page
                .jobs
                .iter()
                .filter_map(|c| c.finished_at)
                .chain(last)
                .max();
            marker = page.next_marker;
            if marker.is_none() {
                break;
            }
        }
        if let (Some(last), Some(fan_in)) = (last, parent.finished_at) {
            lags.push((fan_in - last).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        }
    }
    lags.sort_by(f64::total_cmp);
    let total = (per_parent * parents) as f64;
    let cost = after - before;
    Ok(TreeFigures {
        children: per_parent * parents,
        parents,
        fan_in_p50_ms: pct(&lags, 0.5),
        fan_in_p99_ms: pct(&lags, 0.99),
        fan_in_max_ms: lags.last().copied().unwrap_or(f64::NAN),
        redis_cmds_per_child: cost.calls / total,
        redis_cpu_us_per_child: cost.cpu_s * 1e6 / total,
    })
}
