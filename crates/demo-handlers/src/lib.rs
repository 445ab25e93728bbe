//! The demo handler set, so a cluster can be exercised without writing Rust: what
//! `tether worker` runs, and what the test suites' workers run.
//!
//! | type | input | does |
//! |---|---|---|
//! | `noop` | anything | succeeds at once |
//! | `stamp` | anything | succeeds at once with `{started_us}`: the machine clock (µs since the epoch) when it started, so a wait can be measured finer than the records' milliseconds |
//! | `sleep` | `{ms}` | sleeps, then succeeds |
//! | `fail` | `{message, code, fatal}` | fails (transient unless `fatal`) |
//! | `flaky` | `{fail_times}` | fails transiently on its first `fail_times` attempts |
//! | `progress` | `{steps, step_ms}` | reports progress each step; honours cancel |
//! | `import` | `{size_mb, chunk_ms, ledger?}` | handle starts, check_complete imports 1 MB per poll; with `ledger`, appends `<id>:handle` to the Redis list `tether-demo:<ledger>` when `handle` runs |
//! | `touch` | `{list}` | appends the job id to the Redis list `tether-demo:<list>`, so executions can be counted from outside |
//! | `panic` | anything | panics (to see `HandlerPanicked`) |
//! | `snooze` | `{times, ms}` | snoozes `times` times for `ms` each (no attempt spent), then succeeds with `{snoozed}` |
//! | `fanout` | `{children, child_ms, fail_one?, fail_fast?, child_queue?}` | spawns `children` (at most 10,000) `sleep {ms: child_ms}` children (in `child_queue`, default its own), waits for them with their progress rolled up into its own, and succeeds with `{children}`; with `fail_one`, the first child fails and then so does the parent (with `fail_fast`, at once, cancelling the others) |
//!
//! Job input is untrusted: `list` and `ledger` are names, not keys. They must match
//! `[A-Za-z0-9_.-]{1,64}` (like queue names) and are written under [`SIDE_EFFECT_PREFIX`]
//! only, so no job can write one of Tether's keys or any key outside that namespace;
//! any other name fails the job fatally.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tether_model::tree::FailurePolicy;
use tether_worker::{Check, Handler, JobContext, JobError, OneStep, Step, WorkerBuilder};
use tokio::sync::OnceCell;

/// The namespace of every key the demo jobs write: `touch {list}` appends to
/// `tether-demo:<list>`, `import {ledger}` to `tether-demo:<ledger>`.
pub const SIDE_EFFECT_PREFIX: &str = "tether-demo:";

/// The Redis list a demo job named `name` writes to, or a fatal job error when the
/// name is not a queue's (`[A-Za-z0-9_.-]{1,64}`, not `.` or `..`).
pub fn side_effect_key(field: &str, name: &str) -> Result<String, JobError> {
    tether_model::validate_queue_name(name).map_err(|_| {
        JobError::fatal(format!(
            "invalid {field} {name:?}: demo jobs write only the list {SIDE_EFFECT_PREFIX}<name>, \
             with a name of [A-Za-z0-9_.-]{{1,64}}, not . or .."
        ))
        .with_code("InvalidInput")
    })?;
    Ok(format!("{SIDE_EFFECT_PREFIX}{name}"))
}

/// Every demo job type.
pub const DEMO_TYPES: &[&str] = &[
    "noop", "stamp", "sleep", "fail", "flaky", "progress", "import", "touch", "panic", "snooze",
    "fanout",
];

/// Registers the whole demo set; `redis_url` is where `touch` and `import`'s ledger write.
pub fn register(builder: WorkerBuilder, redis_url: &str) -> WorkerBuilder {
    let side = SideEffects::new(redis_url);
    builder
        .handler("noop", Noop)
        .handler("stamp", Stamp)
        .handler("sleep", Sleep)
        .handler("fail", Fail)
        .handler("flaky", Flaky)
        .handler("progress", Progress)
        .handler("import", Import { side: side.clone() })
        .handler("touch", Touch { side })
        .handler("panic", Panic)
        .handler("snooze", Snooze)
        .handler("fanout", Fanout)
}

/// Where the demo jobs write their visible side effects (not Tether's storage): one
/// Redis, or a cluster when the URL lists several comma-separated seeds. Every key
/// written is under [`SIDE_EFFECT_PREFIX`].
#[derive(Clone)]
pub struct SideEffects {
    url: String,
    conn: std::sync::Arc<OnceCell<Ledger>>,
}

impl std::fmt::Debug for SideEffects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("SideEffects")
            .field("url", &tether_store::redact(&self.url))
            .finish()
    }
}

#[derive(Clone)]
enum Ledger {
    Single(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ledger")
    }
}

impl SideEffects {
    /// Side effects written to the Redis (or cluster seeds) at `redis_url`, connected
    /// at the first write.
    pub fn new(redis_url: &str) -> Self {
        SideEffects {
            url: redis_url.to_owned(),
            conn: Default::default(),
        }
    }

    async fn connect(&self) -> redis::RedisResult<Ledger> {
        // The same rule as Tether's own connection: several seeds mean a cluster.
        let config = tether_store::StoreConfig::new(self.url.as_str());
        let seeds = config.seeds();
        if config.is_cluster() {
            let client = redis::cluster::ClusterClient::new(seeds)?;
            Ok(Ledger::Cluster(client.get_async_connection().await?))
        } else {
            let client = redis::Client::open(seeds.first().copied().unwrap_or_default())?;
            Ok(Ledger::Single(
                redis::aio::ConnectionManager::new(client).await?,
            ))
        }
    }

    /// Appends `value` to the list `tether-demo:<name>`; `field` names the input
    /// field in the error when `name` is not a valid name.
    async fn rpush(&self, field: &str, name: &str, value: String) -> Result<(), JobError> {
        let list = side_effect_key(field, name)?;
        let ledger = self
            .conn
            .get_or_try_init(|| self.connect())
            .await
            .map_err(|e| JobError::transient(format!("side-effect connection: {e}")))?;
        let mut cmd = redis::cmd("RPUSH");
        cmd.arg(&list).arg(value);
        let pushed: redis::RedisResult<i64> = match ledger.clone() {
            Ledger::Single(mut conn) => cmd.query_async(&mut conn).await,
            Ledger::Cluster(mut conn) => cmd.query_async(&mut conn).await,
        };
        pushed.map_err(|e| JobError::transient(format!("side effect not written: {e}")))?;
        Ok(())
    }
}

/// Succeeds at once.
#[derive(Debug, Clone, Copy)]
pub struct Noop;

impl OneStep for Noop {
    type Input = serde::de::IgnoredAny;
    type Output = ();
    async fn run(&self, _: &JobContext, _: Self::Input) -> Result<(), JobError> {
        Ok(())
    }
}

/// What `stamp` answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Stamped {
    /// The machine clock when the handler started, in microseconds since the epoch.
    pub started_us: u64,
}

/// Succeeds at once with the time it started ([`Stamped`]): `tether bench` measures
/// how long a job waits, from its enqueue call to its handler, with both ends read
/// from one machine's clock in microseconds (a record's times are milliseconds).
#[derive(Debug, Clone, Copy)]
pub struct Stamp;

impl OneStep for Stamp {
    type Input = serde::de::IgnoredAny;
    type Output = Stamped;
    async fn run(&self, _: &JobContext, _: Self::Input) -> Result<Stamped, JobError> {
        Ok(Stamped {
            started_us: now_us(),
        })
    }
}

/// Microseconds since the epoch by the machine clock (0 before 1970).
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[derive(Debug, Deserialize)]
pub struct SleepInput {
    #[serde(default)]
    pub ms: u64,
}

/// Sleeps `ms`, then succeeds.
#[derive(Debug, Clone, Copy)]
pub struct Sleep;

impl OneStep for Sleep {
    type Input = SleepInput;
    type Output = Value;
    async fn run(&self, _: &JobContext, input: SleepInput) -> Result<Value, JobError> {
        tokio::time::sleep(Duration::from_millis(input.ms)).await;
        Ok(json!({ "slept_ms": input.ms }))
    }
}

#[derive(Debug, Deserialize)]
pub struct SnoozeInput {
    #[serde(default)]
    pub times: u32,
    #[serde(default)]
    pub ms: u64,
}

/// Snoozes `times` times for `ms` each, then succeeds: the count of snoozes so far is
/// its checkpointed progress, so each attempt resumes where the last one snoozed.
#[derive(Debug, Clone, Copy)]
pub struct Snooze;

impl Handler for Snooze {
    type Input = SnoozeInput;
    type Progress = u32;
    type Output = Value;

    async fn handle(&self, _: &JobContext, _: &SnoozeInput) -> Result<Step<u32, Value>, JobError> {
        Ok(Step::Started(0))
    }

    async fn check_complete(
        &self,
        _: &JobContext,
        input: &SnoozeInput,
        snoozed: &mut u32,
    ) -> Result<Check<Value>, JobError> {
        if *snoozed < input.times {
            *snoozed += 1;
            return Ok(Check::Snooze(Duration::from_millis(input.ms)));
        }
        Ok(Check::Done(json!({ "snoozed": *snoozed })))
    }
}

#[derive(Debug, Deserialize)]
pub struct FailInput {
    #[serde(default = "default_fail_message")]
    pub message: String,
    pub code: Option<String>,
    #[serde(default)]
    pub fatal: bool,
}

fn default_fail_message() -> String {
    "failed on purpose".into()
}

/// Fails with the given message and code.
#[derive(Debug, Clone, Copy)]
pub struct Fail;

impl OneStep for Fail {
    type Input = FailInput;
    type Output = ();
    async fn run(&self, _: &JobContext, input: FailInput) -> Result<(), JobError> {
        let e = if input.fatal {
            JobError::fatal(input.message)
        } else {
            JobError::transient(input.message)
        };
        Err(e.with_code(input.code.unwrap_or_else(|| "DemoFailure".into())))
    }
}

#[derive(Debug, Deserialize)]
pub struct FlakyInput {
    #[serde(default = "one")]
    pub fail_times: u32,
}

fn one() -> u32 {
    1
}

/// Fails transiently on its first `fail_times` attempts, then succeeds.
#[derive(Debug, Clone, Copy)]
pub struct Flaky;

impl OneStep for Flaky {
    type Input = FlakyInput;
    type Output = Value;
    async fn run(&self, ctx: &JobContext, input: FlakyInput) -> Result<Value, JobError> {
        if ctx.attempt() <= input.fail_times {
            return Err(
                JobError::transient(format!("flaky failure on attempt {}", ctx.attempt()))
                    .with_code("Flaky"),
            );
        }
        Ok(json!({ "attempts": ctx.attempt() }))
    }
}

#[derive(Debug, Deserialize)]
pub struct ProgressInput {
    #[serde(default = "ten")]
    pub steps: u32,
    #[serde(default = "hundred")]
    pub step_ms: u64,
}

fn ten() -> u32 {
    10
}
fn hundred() -> u64 {
    100
}

/// Reports progress every step; stops at a step boundary when cancelled.
#[derive(Debug, Clone, Copy)]
pub struct Progress;

impl OneStep for Progress {
    type Input = ProgressInput;
    type Output = Value;
    async fn run(&self, ctx: &JobContext, input: ProgressInput) -> Result<Value, JobError> {
        let steps = input.steps.max(1);
        for step in 1..=steps {
            if ctx.is_cancelled() {
                return Err(JobError::fatal("stopped on cancel").with_code("RequestCanceled"));
            }
            tokio::time::sleep(Duration::from_millis(input.step_ms)).await;
            ctx.set_progress(
                i64::from(step * 100 / steps),
                format!("step {step}/{steps}"),
            )
            .await?;
        }
        Ok(json!({ "steps": steps }))
    }
}

#[derive(Debug, Deserialize)]
pub struct ImportInput {
    #[serde(default = "ten")]
    pub size_mb: u32,
    #[serde(default = "hundred")]
    pub chunk_ms: u64,
    /// Name of the Redis list (`tether-demo:<ledger>`) that records each run of `handle`.
    pub ledger: Option<String>,
}

/// The import's checkpointed progress object (Heat's `*Progress` classes).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImportProgress {
    pub imported_mb: u32,
    pub checks: u32,
}

/// A two-step job modelled on an image import: `handle` starts it, `check_complete`
/// imports one chunk per poll and reports progress.
#[derive(Debug, Clone)]
pub struct Import {
    side: SideEffects,
}

impl Handler for Import {
    type Input = ImportInput;
    type Progress = ImportProgress;
    type Output = Value;

    async fn handle(
        &self,
        ctx: &JobContext,
        input: &ImportInput,
    ) -> Result<Step<ImportProgress, Value>, JobError> {
        if let Some(ledger) = &input.ledger {
            self.side
                .rpush("ledger", ledger, format!("{}:handle", ctx.id()))
                .await?;
        }
        ctx.set_progress(0, "import started").await?;
        Ok(Step::Started(ImportProgress {
            imported_mb: 0,
            checks: 0,
        }))
    }

    async fn check_complete(
        &self,
        ctx: &JobContext,
        input: &ImportInput,
        progress: &mut ImportProgress,
    ) -> Result<Check<Value>, JobError> {
        tokio::time::sleep(Duration::from_millis(input.chunk_ms)).await;
        progress.imported_mb = (progress.imported_mb + 1).min(input.size_mb);
        progress.checks += 1;
        let pct = i64::from(progress.imported_mb * 100 / input.size_mb.max(1));
        ctx.set_progress(
            pct,
            format!("imported {}/{} MB", progress.imported_mb, input.size_mb),
        )
        .await?;
        if progress.imported_mb >= input.size_mb {
            Ok(Check::Done(
                json!({ "imported_mb": progress.imported_mb, "checks": progress.checks }),
            ))
        } else {
            Ok(Check::Pending)
        }
    }

    fn check_interval(&self) -> (Duration, Duration) {
        (Duration::ZERO, Duration::ZERO)
    }
}

#[derive(Debug, Deserialize)]
pub struct TouchInput {
    /// Name of the Redis list (`tether-demo:<list>`) to append to.
    pub list: String,
}

/// Appends the job id to the Redis list `tether-demo:<list>`.
#[derive(Debug, Clone)]
pub struct Touch {
    side: SideEffects,
}

impl OneStep for Touch {
    type Input = TouchInput;
    type Output = ();
    async fn run(&self, ctx: &JobContext, input: TouchInput) -> Result<(), JobError> {
        self.side
            .rpush("list", &input.list, ctx.id().to_string())
            .await
    }
}

/// Panics.
#[derive(Debug, Clone, Copy)]
pub struct Panic;

impl OneStep for Panic {
    type Input = serde::de::IgnoredAny;
    type Output = ();
    async fn run(&self, _: &JobContext, _: Self::Input) -> Result<(), JobError> {
        panic!("demo panic")
    }
}

/// The most children a `fanout` job spawns.
pub const MAX_FANOUT: u32 = 10_000;

#[derive(Debug, Deserialize)]
pub struct FanoutInput {
    pub children: u32,
    #[serde(default)]
    pub child_ms: u64,
    #[serde(default)]
    pub fail_one: bool,
    /// A child that fails cancels the others and fails the parent at once (the default
    /// waits for all).
    #[serde(default)]
    pub fail_fast: bool,
    pub child_queue: Option<String>,
}

/// Spawns `children` `sleep` children, waits for them all (its progress is theirs rolled
/// up), and succeeds with their count; with `fail_one` the first child fails, and the
/// parent fails once all are final.
#[derive(Debug, Clone, Copy)]
pub struct Fanout;

impl Handler for Fanout {
    type Input = FanoutInput;
    type Progress = u32;
    type Output = Value;

    async fn handle(
        &self,
        ctx: &JobContext,
        input: &FanoutInput,
    ) -> Result<Step<u32, Value>, JobError> {
        if input.children > MAX_FANOUT {
            return Err(JobError::fatal(format!("children: at most {MAX_FANOUT}"))
                .with_code("InvalidInput"));
        }
        let queue = input
            .child_queue
            .clone()
            .unwrap_or_else(|| ctx.queue().to_owned());
        for i in 0..input.children {
            let spec = if input.fail_one && i == 0 {
                tether_model::JobSpec::new("fail")
                    .input_json(json!({"message": "a child failed on purpose", "fatal": true}))
                    .max_attempts(1)
            } else {
                tether_model::JobSpec::new("sleep").input_json(json!({ "ms": input.child_ms }))
            };
            let spec = spec.queue(queue.clone());
            spec.validate()
                .map_err(|e| JobError::fatal(e.to_string()).with_code("InvalidInput"))?;
            ctx.spawn(spec).await?;
        }
        Ok(Step::Started(input.children))
    }

    async fn check_complete(
        &self,
        ctx: &JobContext,
        input: &FanoutInput,
        spawned: &mut u32,
    ) -> Result<Check<Value>, JobError> {
        let policy = if input.fail_fast {
            FailurePolicy::FailFast
        } else {
            FailurePolicy::WaitAll
        };
        let Some(children) = ctx.fan_in(policy).await? else {
            return Ok(Check::Pending);
        };
        if children.len() < *spawned as usize {
            return Ok(Check::Pending); // (an earlier run's children all listed first)
        }
        let failed = children
            .iter()
            .filter(|c| c.status != Some(tether_model::Status::Success))
            .count();
        if failed > 0 && input.fail_one {
            return Err(JobError::fatal(format!(
                "{failed} of {} children did not succeed",
                children.len()
            ))
            .with_code("ChildFailed"));
        }
        Ok(Check::Done(
            json!({ "children": children.len(), "failed": failed }),
        ))
    }

    fn check_interval(&self) -> (Duration, Duration) {
        (Duration::from_millis(20), Duration::from_millis(500))
    }
}
