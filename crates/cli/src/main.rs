//! `tether`: run workers and manage jobs from the command line.
//!
//! Every setting is a flag, a `TETHER_…` environment variable and a key in
//! `config/tether.toml`, in that order of precedence (merged in `settings`). Read
//! commands take `--json` for machine-readable output. Each subcommand's body is
//! in `commands`; this file parses the command line and dispatches.

mod commands;
mod demo;
mod output;
mod settings;
mod signal;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tether_producer::JobId;

use commands::bench::BenchArgs;
use commands::enqueue::EnqueueArgs;
use commands::list::ListArgs;
use commands::queue::QueueCommand;
use commands::schedule::ScheduleCommand;
use commands::{CliResult, jobs, producer};
use settings::{ApiArgs, Global, WorkerArgs, parse_duration};

#[derive(Parser, Debug)]
#[command(name = "tether", version, about = "Durable job queue workers on Redis")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a worker with the demo handler set until SIGTERM/SIGINT.
    Worker(WorkerArgs),
    /// Serve the REST API (Glance v2 Tasks compatible).
    Api(ApiArgs),
    /// Measure throughput, latency and cost per job (starts a private Redis unless --redis is given).
    Bench(BenchArgs),
    /// Run a local cluster with sample jobs, live: a private Redis unless --redis is given,
    /// the API, two workers.
    Demo {
        /// Stop after this long (default: at Ctrl-C).
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Print the final summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Enqueue jobs; prints one job id per line.
    Enqueue(EnqueueArgs),
    /// Show one job.
    Get {
        id: JobId,
        #[arg(long)]
        json: bool,
    },
    /// List jobs, newest first.
    List(ListArgs),
    /// Cancel a job (pending: at once; running: at its worker's next heartbeat).
    Cancel {
        id: JobId,
        /// Also a job created with `cancelable: false`.
        #[arg(long)]
        force: bool,
    },
    /// Re-queue a dead job.
    Retry { id: JobId },
    /// Set a job's name and/or description.
    Label {
        id: JobId,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Follow a job with a progress bar until it finishes.
    Watch {
        id: JobId,
        /// Print each event as a JSON line instead.
        #[arg(long)]
        json: bool,
    },
    /// Job counts per queue.
    Stats {
        #[arg(long = "queue")]
        queues: Vec<String>,
        #[arg(long)]
        json: bool,
        /// Refresh every second, with throughput.
        #[arg(long)]
        watch: bool,
    },
    /// Check that each queue's records, stream, indexes and counters agree (read-only;
    /// walks every retained job in bounded steps, each well under 10 ms of Redis time,
    /// so it does not block a busy queue). Exits 1 when anything disagrees.
    Check {
        #[arg(long = "queue")]
        queues: Vec<String>,
    },
    /// Schedules: jobs fired on a cron pattern or at an interval.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// A queue's flow control: limits (concurrency, rate, per group too) and pause.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Live workers and their jobs.
    Workers {
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Worker(_) | Command::Api(_) => "info",
        Command::Demo { .. } => "error",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            cli.global.log.as_deref().unwrap_or(default_log),
        ))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> CliResult {
    let global = &cli.global;
    match cli.command {
        Command::Worker(args) => commands::worker::run(args, global).await,
        Command::Api(args) => commands::api::run(args, global).await,
        // Only the flag or its variable: bench measures a private Redis by default,
        // never the config file's.
        Command::Bench(args) => commands::bench::run(args, global.redis_url.clone()).await,
        Command::Demo { duration, json } => {
            let url = global.redis_url(&global.file()?);
            demo::run(demo::DemoOptions { duration, json }, url).await?;
            Ok(())
        }
        Command::Enqueue(args) => commands::enqueue::run(args, &producer(global).await?).await,
        Command::Get { id, json } => jobs::get(id, json, &producer(global).await?).await,
        Command::List(args) => commands::list::run(args, &producer(global).await?).await,
        Command::Cancel { id, force } => jobs::cancel(id, force, &producer(global).await?).await,
        Command::Retry { id } => jobs::retry(id, &producer(global).await?).await,
        Command::Label {
            id,
            name,
            description,
        } => jobs::label(id, name, description, &producer(global).await?).await,
        Command::Watch { id, json } => jobs::watch(id, json, &producer(global).await?).await,
        Command::Stats {
            queues,
            json,
            watch,
        } => output::stats(&producer(global).await?, &queues, json, watch).await,
        Command::Check { queues } => {
            commands::queues::check(queues, &producer(global).await?).await
        }
        Command::Schedule(command) => {
            commands::schedule::run(command, &producer(global).await?).await
        }
        Command::Queue(command) => commands::queue::run(command, &producer(global).await?).await,
        Command::Workers { json } => {
            commands::queues::workers(json, &producer(global).await?).await
        }
    }
}
