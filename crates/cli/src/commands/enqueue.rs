//! `tether enqueue`: one job, or many copies of it.

use std::time::Duration;

use clap::Args;
use tether_producer::{JobOptions, Producer, StartBy};

use super::{CliResult, err, parse_input};
use crate::output;
use crate::settings::parse_duration;

#[derive(Args, Debug)]
pub(crate) struct EnqueueArgs {
    /// Queue to enqueue to.
    #[arg(long, default_value = "default")]
    queue: String,
    /// Job type (required): the handler that runs it.
    #[arg(long = "type")]
    job_type: String,
    /// Input as JSON.
    #[arg(long, default_value = "null")]
    input: String,
    /// Enqueue this many copies (pipelined; at least 1).
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Run after this long, a duration such as 10s or 5m (default: at once).
    #[arg(long, value_parser = parse_duration)]
    delay: Option<Duration>,
    /// RFC 3339 time to run at (default: at once).
    #[arg(long)]
    run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Attempts before the job fails for good, at least 1 (default 5).
    #[arg(long)]
    max_attempts: Option<u32>,
    /// First retry delay, doubling, capped at 5 min: a duration such as 500ms or 2s (default 1s).
    #[arg(long, value_parser = parse_duration)]
    backoff: Option<Duration>,
    /// Time limit of one attempt, a duration such as 30s or 5m (default: none).
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// A second enqueue with this key (same owner) returns the first job (default: none).
    #[arg(long)]
    idempotency_key: Option<String>,
    /// The job's display name (default: none).
    #[arg(long)]
    name: Option<String>,
    /// The job's owner: only this owner (and admins) see it (default: no owner).
    #[arg(long)]
    owner: Option<String>,
    /// Refuse an owner's cancel of the job (admins can still force it).
    #[arg(long)]
    not_cancelable: bool,
    /// Priority, 0 (runs first) to 9 (default 5).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
    priority: Option<u8>,
    /// Fairness group (default: the owner): groups of one priority take turns.
    #[arg(long)]
    group: Option<String>,
    /// Not started by then, the job fails with Expired: a span from now (2s, 5m) or an
    /// RFC 3339 time (default: no deadline).
    #[arg(long)]
    start_by: Option<StartBy>,
}

pub(crate) async fn run(args: EnqueueArgs, producer: &Producer) -> CliResult {
    if args.count == 0 {
        return Err("--count must be at least 1".into());
    }
    let spec = JobOptions {
        queue: Some(args.queue),
        input: Some(parse_input(&args.input)?),
        cancelable: Some(!args.not_cancelable),
        delay: args.delay,
        run_at: args.run_at,
        max_attempts: args.max_attempts,
        backoff: args.backoff,
        timeout: args.timeout,
        idempotency_key: args.idempotency_key,
        name: args.name,
        owner: args.owner,
        description: None,
        priority: args.priority,
        group: args.group,
        start_by: args.start_by,
        external_lease: None,
    }
    .spec(args.job_type);
    spec.validate().map_err(err)?;
    if args.count <= 1 {
        println!("{}", producer.enqueue(spec).await.map_err(err)?);
        return Ok(());
    }
    let bar = output::progress_bar(args.count as u64, "enqueue");
    let mut out = String::new();
    for chunk_start in (0..args.count).step_by(5_000) {
        let n = (args.count - chunk_start).min(5_000);
        let ids = producer
            .enqueue_many(vec![spec.clone(); n])
            .await
            .map_err(err)?;
        for id in ids {
            out.push_str(&id.to_string());
            out.push('\n');
        }
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    print!("{out}");
    Ok(())
}
