//! `tether`: run workers and manage jobs from the command line.
//!
//! Every setting is a flag, a `TETHER_…` environment variable and a key in
//! `config/tether.toml`, in that order of precedence (merged in `settings`). Read
//! commands take `--json` for machine-readable output. Each subcommand's body is
//! in `commands`; this file parses the command line and dispatches.

mod commands;
mod demo;
#[cfg(feature = "otel")]
mod otel;
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
use commands::task::TaskCommand;
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
        /// Stop after this long, a duration such as 30s or 5m (default: at Ctrl-C).
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
        /// The job's id.
        id: JobId,
        /// Print the job as JSON.
        #[arg(long)]
        json: bool,
        /// Print its tree of children instead: each node's status and progress.
        #[arg(long)]
        tree: bool,
    },
    /// List jobs, newest first.
    List(ListArgs),
    /// Cancel a job (pending: at once; running: at its worker's next heartbeat).
    Cancel {
        /// The job's id.
        id: JobId,
        /// Also a job created with `cancelable: false`.
        #[arg(long)]
        force: bool,
    },
    /// Re-queue a dead job.
    Retry {
        /// The dead job's id.
        id: JobId,
    },
    /// Set a job's name and/or description.
    Label {
        /// The job's id.
        id: JobId,
        /// New name (default: unchanged).
        #[arg(long)]
        name: Option<String>,
        /// New description (default: unchanged).
        #[arg(long)]
        description: Option<String>,
    },
    /// Follow a job with a progress bar until it finishes.
    Watch {
        /// The job's id.
        id: JobId,
        /// Print each event as a JSON line instead.
        #[arg(long)]
        json: bool,
    },
    /// Job counts per queue.
    Stats {
        /// Only this queue (repeatable; default: every queue).
        #[arg(long = "queue")]
        queues: Vec<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Refresh every second, with throughput.
        #[arg(long)]
        watch: bool,
    },
    /// Check that each queue's records, stream, indexes and counters agree (read-only
    /// unless --repair; walks every retained job in bounded steps, each well under 10 ms
    /// of Redis time, so it does not block a busy queue). Exits 1 when anything disagrees.
    Check {
        /// Only this queue (repeatable; default: every queue).
        #[arg(long = "queue")]
        queues: Vec<String>,
        /// First put back what a process of an older storage layout left behind during
        /// a rolling upgrade: pending jobs whose stream entry it trimmed are made ready
        /// again, jobs it ended without indexing them are indexed (writes; default: off).
        #[arg(long)]
        repair: bool,
    },
    /// Schedules: jobs fired on a cron pattern or at an interval.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// A queue's flow control: limits (concurrency, rate, per group too) and pause.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Print shell completions for `tether` (e.g. `tether completions bash >
    /// /etc/bash_completion.d/tether`).
    Completions {
        /// The shell: bash, elvish, fish, powershell or zsh.
        shell: clap_complete::Shell,
    },
    /// External tasks: create one, and drive it (progress, description, completion,
    /// abort) as its creator.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Live workers and their jobs.
    Workers {
        /// Print JSON instead of a table.
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
    #[cfg(feature = "otel")]
    let exporting = otel::init(match cli.command {
        Command::Worker(_) => "tether-worker",
        Command::Api(_) => "tether-api",
        _ => "tether",
    });
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let code = match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    };
    #[cfg(feature = "otel")]
    exporting.shutdown();
    code
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
        Command::Get { id, json, tree } => {
            let producer = producer(global).await?;
            if tree {
                jobs::tree(id, json, &producer).await
            } else {
                jobs::get(id, json, &producer).await
            }
        }
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
        Command::Check { queues, repair } => {
            commands::queues::check(queues, repair, &producer(global).await?).await
        }
        Command::Schedule(command) => {
            commands::schedule::run(command, &producer(global).await?).await
        }
        Command::Queue(command) => commands::queue::run(command, &producer(global).await?).await,
        Command::Task(command) => commands::task::run(command, &producer(global).await?).await,
        Command::Workers { json } => {
            commands::queues::workers(json, &producer(global).await?).await
        }
        Command::Completions { shell } => {
            // Written whole, so that a closed pipe is an error message, not a panic.
            let mut script = Vec::new();
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "tether", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script)
                .map_err(|e| format!("writing the completions: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every argument of every subcommand (and their subcommands) explains itself:
    /// a help line, and for an optional option that takes a value, its default (clap's
    /// own `[default: …]`, or "default" in the text, "default: none" when there is none).
    fn undocumented(cmd: &clap::Command, path: &str, found: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            if help.trim().is_empty() {
                found.push(format!("{path} {id}: no help"));
            } else if help.contains('\n') {
                found.push(format!("{path} {id}: help on more than one line"));
            } else if !arg.is_positional()
                && arg.get_num_args().is_none_or(|n| n.takes_values())
                && arg.get_action().takes_values()
                && !arg.is_required_set()
                && arg.get_default_values().is_empty()
                && !help.contains("default")
            {
                found.push(format!("{path} --{id}: no default in {help:?}"));
            }
        }
        for sub in cmd.get_subcommands() {
            undocumented(sub, &format!("{path} {}", sub.get_name()), found);
        }
    }

    #[test]
    fn every_argument_has_a_help_line_with_its_default() {
        let cli = Cli::command();
        cli.clone().debug_assert();
        let mut found = Vec::new();
        undocumented(&cli, "tether", &mut found);
        assert!(
            found.is_empty(),
            "{} arguments:\n{}",
            found.len(),
            found.join("\n")
        );
    }
}
