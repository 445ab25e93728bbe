//! `tether queue …`: a queue's flow control (limits, pause), seen and changed.

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tether_producer::{FlowState, LimitsPatch, Producer};

use super::{CliResult, err};

#[derive(Subcommand, Debug)]
pub(crate) enum QueueCommand {
    /// Show a queue's limits, whether it is paused, and what runs now.
    Show(QueueArgs),
    /// Set or clear limits (`0` or `none` clears one); every worker obeys them at its
    /// next claim.
    Set(SetArgs),
    /// Pause a queue (nothing new starts; running jobs finish; enqueues are accepted),
    /// or only one job type in it.
    Pause(PauseArgs),
    /// Resume a paused queue, or a paused job type.
    Resume(PauseArgs),
}

#[derive(Args, Debug)]
pub(crate) struct QueueArgs {
    /// The queue's name.
    queue: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct SetArgs {
    /// The queue's name.
    queue: String,
    /// Jobs of the queue running at once, cluster-wide (default: unchanged; 0 or none: no limit).
    #[arg(long)]
    concurrency: Option<Limit>,
    /// Job starts per second, cluster-wide, in any sliding second (default: unchanged; 0 or none: no limit).
    #[arg(long)]
    rate: Option<Limit>,
    /// Jobs of one group running at once (default: unchanged; 0 or none: no limit).
    #[arg(long)]
    group_concurrency: Option<Limit>,
    /// Job starts per second of one group (default: unchanged; 0 or none: no limit).
    #[arg(long)]
    group_rate: Option<Limit>,
    /// Print the queue's settings as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct PauseArgs {
    /// The queue's name.
    queue: String,
    /// Only this job type of the queue (default: the whole queue).
    #[arg(long = "type")]
    job_type: Option<String>,
    /// Print the queue's settings as JSON.
    #[arg(long)]
    json: bool,
}

/// A limit as typed: a positive number, or `0` / `none` to clear it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limit(Option<u32>);

impl std::str::FromStr for Limit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        tether_model::parse_limit(s).map(Limit)
    }
}

pub(crate) async fn run(command: QueueCommand, producer: &Producer) -> CliResult {
    let (queue, json) = match command {
        QueueCommand::Show(a) => (a.queue, a.json),
        QueueCommand::Set(a) => {
            let patch = LimitsPatch {
                concurrency: a.concurrency.map(|l| l.0),
                rate: a.rate.map(|l| l.0),
                group_concurrency: a.group_concurrency.map(|l| l.0),
                group_rate: a.group_rate.map(|l| l.0),
            };
            if patch.is_empty() {
                return Err(
                    "nothing to set: give --concurrency, --rate, --group-concurrency or --group-rate"
                        .into(),
                );
            }
            producer
                .set_queue_settings(&a.queue, &patch)
                .await
                .map_err(err)?;
            (a.queue, a.json)
        }
        QueueCommand::Pause(a) => {
            match &a.job_type {
                Some(t) => producer.pause_type(&a.queue, t).await,
                None => producer.pause(&a.queue).await,
            }
            .map_err(err)?;
            (a.queue, a.json)
        }
        QueueCommand::Resume(a) => {
            match &a.job_type {
                Some(t) => producer.resume_type(&a.queue, t).await,
                None => producer.resume(&a.queue).await,
            }
            .map_err(err)?;
            (a.queue, a.json)
        }
    };
    show(&queue, json, producer).await
}

async fn show(queue: &str, json: bool, producer: &Producer) -> CliResult {
    let state = producer.queue_state(queue).await.map_err(err)?;
    let stats = producer.stats(&[queue.to_owned()]).await.map_err(err)?;
    let mut body = body(queue, &state);
    if let Some(s) = stats.first() {
        body["counts"] = json!({
            "pending": s.pending,
            "scheduled": s.scheduled,
            "processing": s.processing,
            "dead": s.dead,
        });
    }
    if json {
        println!("{body}");
    } else {
        print!("{}", text(&body));
    }
    Ok(())
}

/// The queue's flow control under the names `queue set` takes (the JSON keys).
fn body(queue: &str, state: &FlowState) -> Value {
    let mut body = serde_json::to_value(state).unwrap_or_default();
    body["queue"] = json!(queue);
    body
}

fn text(body: &Value) -> String {
    let limit = |key: &str| match body[key].as_u64() {
        Some(n) => n.to_string(),
        None => "none".to_owned(),
    };
    let paused_types: Vec<&str> = body["paused_types"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = format!(
        "queue {}\npaused: {}{}\nconcurrency: {}\nrate: {}/s\ngroup concurrency: {}\ngroup rate: {}/s\nrunning: {}\nstarts in the last second: {}\n",
        body["queue"].as_str().unwrap_or_default(),
        if body["paused"].as_bool() == Some(true) {
            "yes"
        } else {
            "no"
        },
        if paused_types.is_empty() {
            String::new()
        } else {
            format!(" (types paused: {})", paused_types.join(", "))
        },
        limit("concurrency"),
        limit("rate"),
        limit("group_concurrency"),
        limit("group_rate"),
        body["running"],
        body["starts_last_second"],
    );
    if let Some(counts) = body["counts"].as_object() {
        out.push_str(&format!(
            "pending: {}  scheduled: {}  processing: {}  dead: {}\n",
            counts["pending"], counts["scheduled"], counts["processing"], counts["dead"]
        ));
    }
    out
}
