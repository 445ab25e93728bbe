use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{RetryPolicy, TraceContext, limits};

/// A request to run a job, as a producer builds it.
///
/// ```
/// use std::time::Duration;
/// use tether_model::JobSpec;
/// let spec = JobSpec::new("send_email")
///     .queue("mail")
///     .input(&serde_json::json!({"to": "ops@example.com"}))?
///     .delay(Duration::from_secs(10))
///     .max_attempts(3)
///     .idempotency_key("welcome-42");
/// spec.validate()?;
/// # Ok::<(), tether_model::SpecError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub queue: String,
    pub job_type: String,
    pub input: serde_json::Value,
    pub run_at: Option<DateTime<Utc>>,
    pub delay: Option<Duration>,
    pub max_attempts: u32,
    pub backoff: RetryPolicy,
    pub timeout: Option<Duration>,
    pub cancelable: bool,
    pub owner: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub idempotency_key: Option<String>,
    /// The schedule this job is a firing of (set by the scheduler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The fire time of that firing (set by the scheduler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fire_time: Option<DateTime<Utc>>,
    /// 0 (runs first) to 9; 5 unless set.
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// The fairness group: within one priority, ready jobs of different groups are
    /// claimed round-robin. `None` uses the owner (or no group when there is none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// A job not started by then never starts: it fails with `Expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_by: Option<StartBy>,
    /// An external task (vSphere `TaskManager.CreateTask`): no worker runs it, its
    /// creator drives it, and it fails with `Timedout` when no progress report comes
    /// within this lease. `None` for a job workers run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_lease: Option<Duration>,
    /// The job's parent in a task tree (set by `JobContext::spawn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<crate::tree::ParentLink>,
    /// Its weight in its parent's progress roll-up (at least 1; 1 unless set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// The W3C trace context the job's attempts continue (stored only when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::TraceContext>,
}

/// The shortest lease of an external task.
pub const MIN_EXTERNAL_LEASE: Duration = Duration::from_secs(1);
/// The longest lease of an external task.
pub const MAX_EXTERNAL_LEASE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The priority of a job that sets none.
pub const DEFAULT_PRIORITY: u8 = 5;

/// How many times a job that sets no limit may start.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// The lowest priority (the highest number).
pub const MAX_PRIORITY: u8 = 9;

fn default_priority() -> u8 {
    DEFAULT_PRIORITY
}

/// A start deadline: a time, or a span from the enqueue (measured by Redis's clock).
///
/// ```
/// use std::time::Duration;
/// use tether_model::{JobSpec, StartBy};
/// let spec = JobSpec::new("report").start_by(Duration::from_secs(30));
/// assert_eq!(spec.start_by, Some(StartBy::Within(Duration::from_secs(30))));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartBy {
    At(DateTime<Utc>),
    Within(Duration),
}

impl StartBy {
    /// The deadline as storage keeps it: whole milliseconds, at least 1 ms after 1970
    /// or after the job's creation. Storage writes this, and a new job's answer shows it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tether_model::StartBy;
    /// assert_eq!(
    ///     StartBy::Within(Duration::ZERO).stored(),
    ///     StartBy::Within(Duration::from_millis(1))
    /// );
    /// ```
    pub fn stored(self) -> StartBy {
        match self {
            StartBy::At(t) => StartBy::At(
                DateTime::from_timestamp_millis(t.timestamp_millis().max(1))
                    .expect("a ms count chrono produced"),
            ),
            StartBy::Within(d) => StartBy::Within(Duration::from_millis(
                u64::try_from(d.as_millis().max(1)).unwrap_or(u64::MAX),
            )),
        }
    }
}

impl From<Duration> for StartBy {
    fn from(d: Duration) -> Self {
        StartBy::Within(d)
    }
}

impl From<DateTime<Utc>> for StartBy {
    fn from(t: DateTime<Utc>) -> Self {
        StartBy::At(t)
    }
}

impl std::str::FromStr for StartBy {
    type Err = SpecError;

    /// `30s`, `5m`, `1h 30m` (from now) or an RFC 3339 time.
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let s = s.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(StartBy::At(t.with_timezone(&Utc)));
        }
        humantime::parse_duration(s)
            .map(StartBy::Within)
            .map_err(|_| SpecError::StartBy(s.chars().take(64).collect()))
    }
}

/// Checks a job type name: [`limits::JOB_TYPE`], `[A-Za-z0-9_.:-]{1,128}`.
pub fn validate_job_type(job_type: &str) -> Result<(), SpecError> {
    if limits::JOB_TYPE.accepts(job_type) {
        Ok(())
    } else {
        Err(SpecError::JobType(job_type.chars().take(128).collect()))
    }
}

/// The longest group name: 128 characters a caller chooses, behind an owner's name
/// (`<owner>/<group>`, as producers scoped to an owner store it).
pub use crate::limits::MAX_GROUP_LEN;

/// Checks a group name: 1 to [`MAX_GROUP_LEN`] characters, none of them a control character.
pub fn validate_group(group: &str) -> Result<(), SpecError> {
    if limits::group_chars_ok(group) && limits::char_len(group) <= MAX_GROUP_LEN {
        Ok(())
    } else {
        Err(SpecError::Group(group.chars().take(64).collect()))
    }
}

/// The input of a job type that names its type, so that the producer enqueueing it
/// ([`JobSpec::of`]) and the worker registering its handler (`WorkerBuilder::register`
/// in `tether-worker`) take the name from one place and cannot disagree.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use tether_model::{JobInput, JobSpec};
///
/// #[derive(Serialize, Deserialize)]
/// struct Resize {
///     width: u32,
/// }
///
/// impl JobInput for Resize {
///     const TYPE: &'static str = "resize";
/// }
///
/// let spec = JobSpec::of(&Resize { width: 64 })?.queue("images");
/// assert_eq!(spec.job_type, "resize");
/// assert_eq!(spec.input, serde_json::json!({"width": 64}));
/// # Ok::<(), tether_model::SpecError>(())
/// ```
pub trait JobInput {
    /// The job type: `[A-Za-z0-9_.:-]{1,128}`, checked when a job is enqueued.
    const TYPE: &'static str;
}

/// Why a [`JobSpec`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    #[error("invalid queue name {0:?}: use 1-64 characters from A-Z a-z 0-9 _ . -, not . or ..")]
    QueueName(String),
    #[error("invalid job type {0:?}: use 1-128 characters from A-Z a-z 0-9 _ . : -")]
    JobType(String),
    #[error("max_attempts must be at least 1")]
    MaxAttempts,
    #[error("idempotency key must be 1-256 characters")]
    IdempotencyKey,
    #[error("input is not serialisable as JSON: {0}")]
    Input(String),
    #[error("{field} is too long (at most {max} characters)")]
    TooLong { field: &'static str, max: usize },
    #[error("invalid schedule name {0:?}: use 1-64 characters from A-Z a-z 0-9 _ . -, not . or ..")]
    ScheduleName(String),
    #[error("{0}")]
    Schedule(String),
    #[error("priority must be 0-9 (0 runs first), not {0}")]
    Priority(u8),
    #[error("invalid group {0:?}: use 1-128 characters (after the owner), no control characters")]
    Group(String),
    #[error("invalid start_by {0:?}: use a duration (30s, 5m) or an RFC 3339 time")]
    StartBy(String),
    #[error("lease_timeout {0:?} out of range: use 1 s to 7 days")]
    ExternalLease(Duration),
    #[error("an external task takes no {0}: its creator drives it")]
    External(&'static str),
    #[error("invalid error code {0:?}: use 1-128 characters from A-Z a-z 0-9 _ . : -")]
    ErrorCode(String),
    #[error("invalid input for a batch: {0}; use {{\"jobs\": [job, ...], \"then\": job}}")]
    Batch(String),
    #[error("{field} out of range: use {range}")]
    Duration {
        field: &'static str,
        range: &'static str,
    },
}

/// Checks an error code a caller gives (an external task's abort): the characters of a
/// job type, so it can be shown, logged and matched without escaping.
pub fn validate_error_code(code: &str) -> Result<(), SpecError> {
    if limits::JOB_TYPE.accepts(code) {
        Ok(())
    } else {
        Err(SpecError::ErrorCode(code.chars().take(128).collect()))
    }
}

/// Checks a queue name: [`limits::QUEUE_NAME`], `[A-Za-z0-9_.-]{1,64}` but not `.` or
/// `..` (no braces, so it can be a Redis hash tag; it is a segment of the API's paths).
pub fn validate_queue_name(queue: &str) -> Result<(), SpecError> {
    if limits::QUEUE_NAME.accepts(queue) {
        Ok(())
    } else {
        Err(SpecError::QueueName(queue.to_owned()))
    }
}

impl JobSpec {
    /// The spec of a job a worker enqueues for `owner`'s job (a child, a batch's `then`):
    /// `owner`'s, in a group of the owner's ([`limits::owner_group`]), and no schedule's
    /// firing; whatever the spec (written by the owner, in a batch) said.
    ///
    /// ```
    /// use tether_model::JobSpec;
    /// let child = JobSpec::new("resize").owner("bob").group("bob").owned_by("alice");
    /// assert_eq!((child.owner.as_deref(), child.group.as_deref()), (Some("alice"), Some("alice/bob")));
    /// ```
    pub fn owned_by(mut self, owner: &str) -> Self {
        self.owner = Some(owner.to_owned());
        self.group = limits::owner_group(owner, self.group.take());
        self.schedule = None;
        self.fire_time = None;
        self
    }

    /// A job of `job_type` on the `default` queue with `null` input.
    pub fn new(job_type: impl Into<String>) -> Self {
        JobSpec {
            queue: "default".to_owned(),
            job_type: job_type.into(),
            input: serde_json::Value::Null,
            run_at: None,
            delay: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: RetryPolicy::default(),
            timeout: None,
            cancelable: true,
            owner: None,
            name: None,
            description: None,
            idempotency_key: None,
            schedule: None,
            fire_time: None,
            priority: DEFAULT_PRIORITY,
            group: None,
            start_by: None,
            external_lease: None,
            parent: None,
            weight: None,
            trace: None,
        }
    }

    /// A job of the type `input` names, with that input, on the `default` queue.
    pub fn of<T: JobInput + Serialize>(input: &T) -> Result<Self, SpecError> {
        JobSpec::new(T::TYPE).input(input)
    }

    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Sets the input from any serialisable value.
    pub fn input<T: Serialize + ?Sized>(mut self, input: &T) -> Result<Self, SpecError> {
        self.input = serde_json::to_value(input).map_err(|e| SpecError::Input(e.to_string()))?;
        Ok(self)
    }

    /// Sets the input from a JSON value.
    pub fn input_json(mut self, input: serde_json::Value) -> Self {
        self.input = input;
        self
    }

    /// Runs the job no earlier than `run_at`.
    pub fn run_at(mut self, run_at: DateTime<Utc>) -> Self {
        self.run_at = Some(run_at);
        self
    }

    /// Runs the job no earlier than `delay` from its enqueue (measured by Redis's clock).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    pub fn backoff(mut self, policy: RetryPolicy) -> Self {
        self.backoff = policy;
        self
    }

    /// Bounds each run (handle and checks together); past it the attempt fails with `Timedout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn cancelable(mut self, cancelable: bool) -> Self {
        self.cancelable = cancelable;
        self
    }

    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Within retention, another enqueue with the same key returns the first job's id and enqueues nothing.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Marks the job as the firing of `schedule` at `fire_time` (what the scheduler does).
    pub fn firing_of(mut self, schedule: impl Into<String>, fire_time: DateTime<Utc>) -> Self {
        self.schedule = Some(schedule.into());
        self.fire_time = Some(fire_time);
        self
    }

    /// 0 runs first, 9 last; 5 unless set. A ready job of a lower number is always
    /// claimed before one of a higher number in the same queue.
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// The fairness group (default: the owner). Groups of one priority are served
    /// round-robin, and a queue may limit each group's concurrency and start rate.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// A job not started by then (a time, or a span from the enqueue) never starts:
    /// it fails with `Expired` and 0 attempts.
    pub fn start_by(mut self, start_by: impl Into<StartBy>) -> Self {
        self.start_by = Some(start_by.into());
        self
    }

    /// Makes this an external task: no worker runs it; its creator reports progress
    /// (each report renews the lease for `lease_timeout`) and completes or aborts it.
    /// It is created `pending` and becomes `processing` at its first progress report.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tether_model::JobSpec;
    /// let spec = JobSpec::new("export").external(Duration::from_secs(30));
    /// spec.validate()?;
    /// # Ok::<(), tether_model::SpecError>(())
    /// ```
    pub fn external(mut self, lease_timeout: Duration) -> Self {
        self.external_lease = Some(lease_timeout);
        self
    }

    /// Its weight in its parent's progress roll-up (default 1).
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = Some(weight.max(1));
        self
    }

    /// The trace context the job's attempts continue: the worker's spans of each
    /// attempt become children of this span. With the `otel` feature, a producer sets
    /// it from the current span when it is not set.
    ///
    /// ```
    /// use tether_model::{JobSpec, TraceContext};
    /// let cx = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None);
    /// let spec = JobSpec::new("report").trace(cx.clone().unwrap());
    /// assert_eq!(spec.trace, cx);
    /// ```
    pub fn trace(mut self, trace: TraceContext) -> Self {
        self.trace = Some(trace);
        self
    }

    /// The group the job is served in: its own, else its owner's.
    pub fn effective_group(&self) -> Option<&str> {
        self.group.as_deref().or(self.owner.as_deref())
    }

    /// Every duration at most [`limits::MAX_SECONDS`] (they are stored as
    /// milliseconds; the API reads a longer text as that long), and a timeout of at
    /// least 1 ms (none at all is `None`).
    fn validate_durations(&self) -> Result<(), SpecError> {
        const SPAN: &str = "at most 1e9 seconds";
        let max_ms = (limits::MAX_SECONDS * 1000.0) as u128;
        let fits = |d: Duration| d.as_millis() <= max_ms;
        let start_within = match self.start_by {
            Some(StartBy::Within(d)) => Some(d),
            _ => None,
        };
        for (field, value) in [("delay", self.delay), ("start_by", start_within)] {
            if value.is_some_and(|d| !fits(d)) {
                return Err(SpecError::Duration { field, range: SPAN });
            }
        }
        if self.timeout.is_some_and(|t| t.as_millis() < 1 || !fits(t)) {
            return Err(SpecError::Duration {
                field: "timeout",
                range: "1 ms to 1e9 seconds",
            });
        }
        let backoff = &self.backoff;
        if u128::from(backoff.initial_ms.max(backoff.cap_ms)) > max_ms {
            return Err(SpecError::Duration {
                field: "backoff",
                range: SPAN,
            });
        }
        Ok(())
    }

    /// Checks every field; storage calls this before writing anything.
    pub fn validate(&self) -> Result<(), SpecError> {
        validate_queue_name(&self.queue)?;
        validate_job_type(&self.job_type)?;
        if self.max_attempts < limits::MIN_MAX_ATTEMPTS {
            return Err(SpecError::MaxAttempts);
        }
        if self
            .idempotency_key
            .as_ref()
            .is_some_and(|k| k.is_empty() || limits::char_len(k) > limits::MAX_IDEMPOTENCY_KEY_LEN)
        {
            return Err(SpecError::IdempotencyKey);
        }
        if self.priority > MAX_PRIORITY {
            return Err(SpecError::Priority(self.priority));
        }
        if let Some(group) = &self.group {
            validate_group(group)?;
        }
        self.validate_durations()?;
        if let Some(lease) = self.external_lease {
            if !(MIN_EXTERNAL_LEASE..=MAX_EXTERNAL_LEASE).contains(&lease) {
                return Err(SpecError::ExternalLease(lease));
            }
            // Nobody would start it: a start deadline, a delay or a time limit of a
            // run mean nothing for a task its creator drives.
            if self.run_at.is_some() || self.delay.is_some_and(|d| !d.is_zero()) {
                return Err(SpecError::External("delay and run_at"));
            }
            if self.start_by.is_some() || self.timeout.is_some() {
                return Err(SpecError::External("start_by and timeout"));
            }
        }
        for (field, value, max) in [
            ("owner", &self.owner, limits::MAX_OWNER_LEN),
            ("name", &self.name, limits::MAX_TASK_NAME_LEN),
            (
                "description",
                &self.description,
                limits::MAX_DESCRIPTION_LEN,
            ),
        ] {
            if value.as_ref().is_some_and(|v| limits::char_len(v) > max) {
                return Err(SpecError::TooLong { field, max });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_checked() {
        for ok in ["default", "a", "img.resize-2_x", &"q".repeat(64)] {
            assert!(validate_queue_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "has space",
            "br{ace}",
            "ünï",
            &"q".repeat(65),
            "a:b",
            ".",
            "..",
        ] {
            assert!(validate_queue_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn specs_are_validated() {
        assert!(JobSpec::new("t").validate().is_ok());
        assert_eq!(
            JobSpec::new("").validate(),
            Err(SpecError::JobType(String::new()))
        );
        assert_eq!(
            JobSpec::new("t").max_attempts(0).validate(),
            Err(SpecError::MaxAttempts)
        );
        assert_eq!(
            JobSpec::new("t").idempotency_key("").validate(),
            Err(SpecError::IdempotencyKey)
        );
        assert_eq!(
            JobSpec::new("t").priority(10).validate(),
            Err(SpecError::Priority(10))
        );
        assert!(
            JobSpec::new("t")
                .priority(0)
                .group("tenant-a")
                .validate()
                .is_ok()
        );
        assert!(JobSpec::new("t").group("").validate().is_err());
        assert!(JobSpec::new("t").group("a\nb").validate().is_err());
        assert!(JobSpec::new("t").group("g".repeat(386)).validate().is_err());
    }

    /// A duration past what a job can be given (1e9 s) was converted to milliseconds
    /// with `as u64`, which wraps: `--delay 18446744073709552s` ran after 0.384 s, and a
    /// timeout that long timed out at once. A zero timeout failed every attempt.
    #[test]
    fn durations_are_bounded() {
        let huge = Duration::from_secs(18_446_744_073_709_552);
        let max = Duration::from_secs_f64(limits::MAX_SECONDS);
        let past = max + Duration::from_millis(1);
        for spec in [
            JobSpec::new("t").delay(huge),
            JobSpec::new("t").delay(past),
            JobSpec::new("t").timeout(huge),
            JobSpec::new("t").timeout(Duration::ZERO),
            JobSpec::new("t").start_by(huge),
            JobSpec::new("t").backoff(RetryPolicy::fixed(huge)),
            JobSpec::new("t").backoff(RetryPolicy::fixed(Duration::MAX)),
        ] {
            assert!(
                matches!(spec.validate(), Err(SpecError::Duration { .. })),
                "{spec:?}"
            );
        }
        let long = max;
        for spec in [
            JobSpec::new("t").delay(long),
            JobSpec::new("t").delay(Duration::ZERO),
            JobSpec::new("t").timeout(long),
            JobSpec::new("t").timeout(Duration::from_millis(1)),
            JobSpec::new("t").start_by(long),
            JobSpec::new("t").backoff(RetryPolicy::fixed(long)),
        ] {
            assert_eq!(spec.validate(), Ok(()), "{spec:?}");
        }
    }

    #[test]
    fn external_tasks_are_validated() {
        let lease = Duration::from_secs(30);
        assert!(JobSpec::new("t").external(lease).validate().is_ok());
        assert!(
            JobSpec::new("t")
                .external(Duration::from_millis(999))
                .validate()
                .is_err()
        );
        assert!(
            JobSpec::new("t")
                .external(Duration::from_secs(8 * 24 * 3600))
                .validate()
                .is_err()
        );
        assert!(
            JobSpec::new("t")
                .external(lease)
                .delay(lease)
                .validate()
                .is_err()
        );
        assert!(
            JobSpec::new("t")
                .external(lease)
                .timeout(lease)
                .validate()
                .is_err()
        );
    }

    #[test]
    fn start_by_reads_a_span_or_a_time() {
        assert_eq!(
            "2s".parse::<StartBy>(),
            Ok(StartBy::Within(Duration::from_secs(2)))
        );
        assert!(matches!(
            "2026-11-30T10:00:00Z".parse::<StartBy>(),
            Ok(StartBy::At(_))
        ));
        assert!("soon".parse::<StartBy>().is_err());
    }

    #[test]
    fn the_group_defaults_to_the_owner() {
        assert_eq!(JobSpec::new("t").effective_group(), None);
        assert_eq!(JobSpec::new("t").owner("o").effective_group(), Some("o"));
        assert_eq!(
            JobSpec::new("t").owner("o").group("g").effective_group(),
            Some("g")
        );
    }
}
