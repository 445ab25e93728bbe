//! `tether bench`: runs one of the `tether_bench` measurements and prints its figures.

use std::time::Duration;

use clap::Args;
use tether_bench::{Plan, soak};

use super::CliResult;
use crate::output::progress_bar;
use crate::settings::parse_duration;

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// A run of under a minute with smaller sizes (for CI).
    #[arg(long)]
    quick: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Instead: noop throughput on a local 3-master Redis Cluster vs one Redis
    /// (3 queues, one worker process each).
    #[arg(long)]
    cluster: bool,
    /// Instead: a soak — the mixed demo workload at a steady rate for this long
    /// (a duration, e.g. 10m; default: no soak) with 2 worker processes; per-minute
    /// figures, then the memory slope, lost jobs and the consistency check.
    #[arg(long, value_parser = parse_duration, conflicts_with_all = ["quick", "cluster"])]
    soak: Option<Duration>,
    /// Soak enqueue rate in jobs/s (default: half the measured processing rate).
    #[arg(long, requires = "soak")]
    rate: Option<f64>,
}

/// Prints the figures (one JSON object, or a table) and fails unless `verified`.
fn report(json: bool, figures: (String, String), verified: bool, failure: &str) -> CliResult {
    let (as_json, as_table) = figures;
    if json {
        println!("{as_json}");
    } else {
        print!("{as_table}");
    }
    if verified {
        Ok(())
    } else {
        Err(failure.into())
    }
}

/// Runs against `redis_url` (only the flag or its environment variable: the config
/// file's Redis is not measured) or, by default, a private `redis-server`.
pub(crate) async fn run(args: BenchArgs, redis_url: Option<String>) -> CliResult {
    let json = args.json;
    if let Some(duration) = args.soak {
        let options = soak::SoakOptions {
            duration,
            rate: args.rate,
            json,
        };
        let f = soak::run(options, redis_url).await?;
        return report(
            json,
            (f.json(), f.table()),
            f.verified,
            "the soak lost jobs, a job ended unexpectedly, or the check failed",
        );
    }
    let miscounted = "a run's outcome count did not match";
    if args.cluster {
        let bar = progress_bar(tether_bench::CLUSTER_PHASES, "bench --cluster");
        let per_queue = if args.quick { 2_000 } else { 20_000 };
        let f = tether_bench::run_cluster(per_queue, &bar).await?;
        return report(json, (f.json(), f.table()), f.verified, miscounted);
    }
    let plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let bar = progress_bar(tether_bench::PHASES, "bench");
    let f = tether_bench::run(plan, redis_url, &bar).await?;
    report(json, (f.json(), f.table()), f.verified, miscounted)
}
