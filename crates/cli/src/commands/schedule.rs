//! `tether schedule …`: create and operate schedules.

use std::time::Duration;

use clap::{Args, Subcommand};
use tether_producer::{CatchUp, JobOptions, Overlap, Producer, Schedule, ScheduleSpec, Trigger};

use super::{CliResult, err, parse_input};
use crate::settings::parse_duration;

#[derive(Subcommand, Debug)]
pub(crate) enum ScheduleCommand {
    /// Create a schedule: a job fired on a cron pattern or at an interval, once per fire
    /// time, by whichever worker gets there first (every worker runs the scheduler).
    Create(CreateArgs),
    /// List schedules with their next and last fire times.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Act as this owner (default: no owner; unscoped, the list shows every owner's).
        #[arg(long)]
        owner: Option<String>,
    },
    /// Show a schedule: its next five fire times, last fire time, last job and its status.
    Show(NameArgs),
    /// Stop a schedule from firing until resumed.
    Pause(NameArgs),
    /// Resume a paused schedule at its next fire time from now.
    Resume(NameArgs),
    /// Delete a schedule (the jobs it fired stay).
    Delete(NameArgs),
    /// Fire a schedule now, outside its times; prints the job id.
    Trigger(NameArgs),
}

#[derive(Args, Debug)]
pub(crate) struct NameArgs {
    /// The schedule's name.
    name: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Act as this owner (default: no owner).
    #[arg(long)]
    owner: Option<String>,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("when").required(true).args(["cron", "every"])))]
pub(crate) struct CreateArgs {
    /// Unique per owner: 1-64 characters from A-Z a-z 0-9 _ . -, not . or ..
    name: String,
    /// Queue the fired jobs go to.
    #[arg(long, default_value = "default")]
    queue: String,
    /// Job type of the fired jobs (required).
    #[arg(long = "type")]
    job_type: String,
    /// The job's input as JSON.
    #[arg(long, default_value = "null")]
    input: String,
    /// Cron pattern: 5 fields, or 6 with seconds first ("*/10 * * * * *"); default: none, then --every is required.
    #[arg(long)]
    cron: Option<String>,
    /// IANA time zone the cron pattern is read in (default UTC).
    #[arg(long, requires = "cron")]
    tz: Option<String>,
    /// Fire at this interval from now, a duration of at least 1s such as 30s, 5m, 1h (default: none, then --cron is required).
    #[arg(long, value_parser = parse_duration)]
    every: Option<Duration>,
    /// While the previous firing's job is not final: skip this firing (default), allow
    /// it, or cancel the previous job first.
    #[arg(long, value_enum, default_value = "skip")]
    overlap: OverlapArg,
    /// After every worker was down: fire the last missed firing (`last`, default), none
    /// (`none`), or each one within a window (a duration, e.g. 1h).
    #[arg(long, default_value = "last", value_parser = parse_catch_up)]
    catch_up: CatchUp,
    /// Attempts per fired job, at least 1 (default 5).
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Time limit of one attempt, a duration such as 30s or 5m (default: none).
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Act as this owner: the schedule and its jobs are this owner's (default: no owner).
    #[arg(long)]
    owner: Option<String>,
    /// Print the schedule as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum OverlapArg {
    Skip,
    Allow,
    CancelPrevious,
}

fn parse_catch_up(s: &str) -> Result<CatchUp, String> {
    match s {
        "none" => Ok(CatchUp::None),
        "last" => Ok(CatchUp::Last),
        window => parse_duration(window)
            .map(CatchUp::Window)
            .map_err(|_| format!("expected none, last or a duration such as 1h, not {window:?}")),
    }
}

fn scoped(producer: &Producer, owner: &Option<String>) -> Producer {
    match owner {
        Some(owner) => producer.for_owner(owner.clone()),
        None => producer.clone(),
    }
}

pub(crate) async fn run(command: ScheduleCommand, producer: &Producer) -> CliResult {
    match command {
        ScheduleCommand::Create(args) => {
            let job = JobOptions {
                queue: Some(args.queue),
                input: Some(parse_input(&args.input)?),
                max_attempts: args.max_attempts,
                timeout: args.timeout,
                ..JobOptions::default()
            }
            .spec(args.job_type);
            let trigger = match (args.cron, args.every) {
                (Some(cron), _) => Trigger::cron(cron, args.tz.unwrap_or_default()),
                (None, Some(every)) => Trigger::every(every),
                (None, None) => unreachable!("clap requires --cron or --every"),
            }
            .map_err(err)?;
            let spec = ScheduleSpec::new(args.name, job, trigger)
                .overlap(match args.overlap {
                    OverlapArg::Skip => Overlap::Skip,
                    OverlapArg::Allow => Overlap::Allow,
                    OverlapArg::CancelPrevious => Overlap::CancelPrevious,
                })
                .catch_up(args.catch_up);
            let schedule = scoped(producer, &args.owner)
                .create_schedule(spec)
                .await
                .map_err(err)?;
            show(&schedule, None, args.json);
            Ok(())
        }
        ScheduleCommand::List { json, owner } => {
            let schedules = scoped(producer, &owner).schedules().await.map_err(err)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&schedules).expect("schedules serialise")
                );
                return Ok(());
            }
            println!(
                "{:<24} {:<10} {:<24} {:<7} {:<24} {:<24}",
                "NAME", "QUEUE", "WHEN", "STATE", "NEXT", "LAST"
            );
            for s in &schedules {
                println!(
                    "{:<24} {:<10} {:<24} {:<7} {:<24} {:<24}",
                    s.spec.name,
                    s.spec.job.queue,
                    when(&s.spec.trigger),
                    if s.paused { "paused" } else { "active" },
                    time(s.next_fire_time),
                    time(s.last_fire_time),
                );
            }
            Ok(())
        }
        ScheduleCommand::Show(args) => {
            let producer = scoped(producer, &args.owner);
            let schedule = producer.schedule(&args.name).await.map_err(err)?;
            let last_status = match schedule.last_job_id {
                Some(id) => producer
                    .get(id)
                    .await
                    .map_err(err)?
                    .map(|j| j.status.to_string()),
                None => None,
            };
            show(&schedule, Some(last_status), args.json);
            Ok(())
        }
        ScheduleCommand::Pause(args) => {
            let p = scoped(producer, &args.owner);
            p.pause_schedule(&args.name).await.map_err(err)?;
            println!("{}: paused", args.name);
            Ok(())
        }
        ScheduleCommand::Resume(args) => {
            let p = scoped(producer, &args.owner);
            p.resume_schedule(&args.name).await.map_err(err)?;
            println!("{}: resumed", args.name);
            Ok(())
        }
        ScheduleCommand::Delete(args) => {
            let p = scoped(producer, &args.owner);
            p.delete_schedule(&args.name).await.map_err(err)?;
            println!("{}: deleted", args.name);
            Ok(())
        }
        ScheduleCommand::Trigger(args) => {
            let p = scoped(producer, &args.owner);
            println!("{}", p.trigger_now(&args.name).await.map_err(err)?);
            Ok(())
        }
    }
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| "-".into())
}

fn when(trigger: &Trigger) -> String {
    match trigger {
        Trigger::Cron { cron, tz } if tz == "UTC" => format!("cron {cron}"),
        Trigger::Cron { cron, tz } => format!("cron {cron} ({tz})"),
        Trigger::Every { every } => format!("every {}", humantime::format_duration(*every)),
    }
}

/// The next `n` fire times from the schedule's next one.
fn upcoming(s: &Schedule, n: usize) -> Vec<chrono::DateTime<chrono::Utc>> {
    let mut out = Vec::new();
    let mut next = s.next_fire_time;
    while let Some(t) = next
        && out.len() < n
    {
        out.push(t);
        next = s.spec.trigger.next_after(t, s.anchor);
    }
    out
}

/// `last_status`: `Some` when shown by `show` (the last job's status, if it exists).
fn show(s: &Schedule, last_status: Option<Option<String>>, json: bool) {
    let next_five = upcoming(s, 5);
    if json {
        let mut value = serde_json::to_value(s).expect("schedule serialises");
        value["next_fire_times"] = serde_json::json!(next_five);
        if let Some(status) = &last_status {
            value["last_job_status"] = serde_json::json!(status);
        }
        println!("{}", serde_json::to_string_pretty(&value).expect("json"));
        return;
    }
    let overlap = serde_json::to_value(s.spec.overlap).unwrap_or_default();
    let catch_up = match s.spec.catch_up {
        CatchUp::None => "none".to_owned(),
        CatchUp::Last => "last".to_owned(),
        CatchUp::Window(w) => humantime::format_duration(w).to_string(),
    };
    let rows: Vec<(&str, String)> = vec![
        ("name", s.spec.name.clone()),
        ("owner", s.owner.clone().unwrap_or_else(|| "-".into())),
        ("queue", s.spec.job.queue.clone()),
        ("type", s.spec.job.job_type.clone()),
        ("input", s.spec.job.input.to_string()),
        ("when", when(&s.spec.trigger)),
        ("overlap", overlap.as_str().unwrap_or("-").to_owned()),
        ("catch_up", catch_up),
        ("state", if s.paused { "paused" } else { "active" }.into()),
        ("last_fire_time", time(s.last_fire_time)),
        (
            "last_job",
            s.last_job_id
                .map(|id| id.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
    ];
    for (k, v) in rows {
        println!("{k:>15}  {v}");
    }
    if let Some(status) = last_status {
        println!(
            "{:>15}  {}",
            "last_job_status",
            status.unwrap_or_else(|| "-".into())
        );
    }
    for (i, t) in next_five.iter().enumerate() {
        let label = if i == 0 { "next_fire_times" } else { "" };
        println!("{label:>15}  {}", time(Some(*t)));
    }
}
