//! `tether task`: create and drive external tasks (jobs no worker runs; their creator
//! reports progress and ends them).

use std::time::Duration;

use clap::{Args, Subcommand};
use tether_producer::{Drive, Driven, JobId, JobSpec, Producer};

use super::{CliResult, err, parse_input};
use crate::settings::parse_duration;

#[derive(Subcommand, Debug)]
pub(crate) enum TaskCommand {
    /// Create an external task (pending until its first progress report); prints its id.
    CreateExternal(CreateArgs),
    /// Report progress (clamped to 0-100) and renew the lease; the first report moves the
    /// task to processing. Says whether a cancel was requested.
    Progress {
        /// The external task's id.
        id: JobId,
        /// Percent done; outside 0-100 it is clamped.
        #[arg(allow_hyphen_values = true)]
        percent: i64,
        /// What is happening now (default: the message stays as it was).
        #[arg(long)]
        message: Option<String>,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set the phase text (progress_message).
    Describe {
        /// The external task's id.
        id: JobId,
        /// The phase text.
        description: String,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Spawn a child of the task, run by workers (in any queue): once per key, so running
    /// this again spawns nothing and prints the same id. Prints the child's id.
    Spawn(SpawnArgs),
    /// End the task with success.
    Complete {
        /// The external task's id.
        id: JobId,
        /// The result, as JSON (default: none).
        #[arg(long)]
        result: Option<String>,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// End the task with failure.
    Abort {
        /// The external task's id.
        id: JobId,
        /// The fault's code (default: Aborted).
        #[arg(long)]
        error_code: Option<String>,
        /// The failure message (default: "aborted by its driver").
        #[arg(long)]
        message: Option<String>,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub(crate) struct CreateArgs {
    /// What the task does (a job type name; no handler needs it).
    #[arg(long = "type", default_value = "external")]
    task_type: String,
    /// The queue it is listed in (a worker serving it ends lapsed leases).
    #[arg(long, default_value = "default")]
    queue: String,
    /// No progress report within this long, the task fails with Timedout.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    lease_timeout: Duration,
    /// A name for it (default: none).
    #[arg(long)]
    name: Option<String>,
    /// A description of it (default: none).
    #[arg(long)]
    description: Option<String>,
    /// The task's input, as JSON (default: null).
    #[arg(long)]
    input: Option<String>,
    /// Print the created task as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct SpawnArgs {
    /// The external task's id.
    id: JobId,
    /// The child's key among the task's children (1-256 bytes).
    key: String,
    /// The child's job type.
    #[arg(long = "type")]
    job_type: String,
    /// The queue it runs in.
    #[arg(long, default_value = "default")]
    queue: String,
    /// Its input, as JSON (default: null).
    #[arg(long)]
    input: Option<String>,
}

async fn spawn(args: SpawnArgs, producer: &Producer) -> CliResult {
    let mut spec = JobSpec::new(args.job_type).queue(args.queue);
    if let Some(input) = &args.input {
        spec = spec.input_json(parse_input(input)?);
    }
    let child = producer
        .external_task(args.id)
        .spawn(&args.key, spec)
        .await
        .map_err(|e| format!("task {}: {e}", args.id))?;
    println!("{child}");
    Ok(())
}

pub(crate) async fn run(command: TaskCommand, producer: &Producer) -> CliResult {
    let (id, json, driven) = match command {
        TaskCommand::CreateExternal(args) => return create(args, producer).await,
        TaskCommand::Spawn(args) => return spawn(args, producer).await,
        TaskCommand::Progress {
            id,
            percent,
            message,
            json,
        } => {
            let message = message.as_deref();
            let call = Drive::Progress { percent, message };
            (id, json, producer.drive(id, &call).await)
        }
        TaskCommand::Describe {
            id,
            description,
            json,
        } => (
            id,
            json,
            producer.drive(id, &Drive::Describe(&description)).await,
        ),
        TaskCommand::Complete { id, result, json } => {
            let result = result.as_deref().map(parse_result).transpose()?;
            let call = Drive::Complete(result.as_ref());
            (id, json, producer.drive(id, &call).await)
        }
        TaskCommand::Abort {
            id,
            error_code,
            message,
            json,
        } => {
            let call = Drive::Abort {
                error_code: error_code.as_deref(),
                message: message.as_deref(),
            };
            (id, json, producer.drive(id, &call).await)
        }
    };
    let driven = driven.map_err(|e| format!("task {id}: {e}"))?;
    show(&driven, json);
    Ok(())
}

fn parse_result(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| format!("--result is not valid JSON: {e}"))
}

async fn create(args: CreateArgs, producer: &Producer) -> CliResult {
    let mut spec = JobSpec::new(args.task_type).queue(args.queue);
    if let Some(input) = &args.input {
        spec = spec.input_json(parse_input(input)?);
    }
    if let Some(name) = args.name {
        spec = spec.name(name);
    }
    if let Some(description) = args.description {
        spec = spec.description(description);
    }
    let job = producer
        .create_external_returning(spec, args.lease_timeout)
        .await
        .map_err(err)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&job).map_err(err)?);
    } else {
        println!("{}", job.id);
    }
    Ok(())
}

/// One line, or the answer as JSON: status, progress, cancel request, lease deadline.
fn show(driven: &Driven, json: bool) {
    if json {
        println!("{}", serde_json::to_string(driven).unwrap_or_default());
        return;
    }
    let mut line = format!("{}: {} {}%", driven.id, driven.status, driven.progress);
    if let Some(deadline) = driven.lease_expires_at {
        line.push_str(&format!(", lease until {}", deadline.to_rfc3339()));
    }
    if driven.cancel_requested {
        line.push_str(", cancel requested: end it with `tether task abort` or `complete`");
    }
    println!("{line}");
}
