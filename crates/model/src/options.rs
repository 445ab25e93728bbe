//! A job's options as a caller gives them, every one optional.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::{JobSpec, RetryPolicy};

/// The options of a job as the CLI's flags or a REST body give them: each one
/// set or not. [`spec`](JobOptions::spec) builds a new [`JobSpec`] from them and
/// [`apply`](JobOptions::apply) sets the given ones on an existing spec, so every
/// front end (`tether enqueue`, `tether schedule create`, `POST /v2/tasks`,
/// `POST`/`PATCH /v2/schedules`) maps options to a spec the same way. Parsing
/// (JSON text, durations) and validation stay with the caller, whose errors name
/// its own flags and fields.
///
/// ```
/// use std::time::Duration;
/// use tether_model::JobOptions;
/// let spec = JobOptions {
///     queue: Some("mail".into()),
///     max_attempts: Some(3),
///     backoff: Some(Duration::from_millis(200)),
///     ..JobOptions::default()
/// }
/// .spec("send_email");
/// assert_eq!((spec.queue.as_str(), spec.max_attempts), ("mail", 3));
/// assert_eq!(spec.backoff.initial_ms, 200);
/// assert!(spec.cancelable);
/// spec.validate()?;
/// # Ok::<(), tether_model::SpecError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobOptions {
    pub queue: Option<String>,
    pub input: Option<serde_json::Value>,
    pub run_at: Option<DateTime<Utc>>,
    pub delay: Option<Duration>,
    pub max_attempts: Option<u32>,
    /// The first retry delay; the rest of the policy is [`RetryPolicy::default`]'s
    /// (doubling, capped at 5 min).
    pub backoff: Option<Duration>,
    pub timeout: Option<Duration>,
    pub cancelable: Option<bool>,
    pub owner: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub idempotency_key: Option<String>,
    /// 0 (runs first) to 9.
    pub priority: Option<u8>,
    /// The fairness group.
    pub group: Option<String>,
    /// The start deadline.
    pub start_by: Option<crate::StartBy>,
    /// An external task's lease ([`JobSpec::external`]).
    pub external_lease: Option<Duration>,
}

impl JobOptions {
    /// A job of `job_type` with these options, the others as [`JobSpec::new`] sets them.
    pub fn spec(self, job_type: impl Into<String>) -> JobSpec {
        self.apply(JobSpec::new(job_type))
    }

    /// `spec` with each option given set on it; the others are left as they are.
    pub fn apply(self, mut spec: JobSpec) -> JobSpec {
        let JobOptions {
            queue,
            input,
            run_at,
            delay,
            max_attempts,
            backoff,
            timeout,
            cancelable,
            owner,
            name,
            description,
            idempotency_key,
            priority,
            group,
            start_by,
            external_lease,
        } = self;
        spec.external_lease = external_lease.or(spec.external_lease);
        if let Some(p) = priority {
            spec.priority = p;
        }
        spec.group = group.or(spec.group);
        spec.start_by = start_by.or(spec.start_by);
        if let Some(queue) = queue {
            spec.queue = queue;
        }
        if let Some(input) = input {
            spec.input = input;
        }
        spec.run_at = run_at.or(spec.run_at);
        spec.delay = delay.or(spec.delay);
        if let Some(n) = max_attempts {
            spec.max_attempts = n;
        }
        if let Some(first) = backoff {
            spec.backoff = RetryPolicy {
                initial_ms: u64::try_from(first.as_millis()).unwrap_or(u64::MAX),
                ..RetryPolicy::default()
            };
        }
        spec.timeout = timeout.or(spec.timeout);
        if let Some(cancelable) = cancelable {
            spec.cancelable = cancelable;
        }
        spec.owner = owner.or(spec.owner);
        spec.name = name.or(spec.name);
        spec.description = description.or(spec.description);
        spec.idempotency_key = idempotency_key.or(spec.idempotency_key);
        spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_options_change_nothing() {
        let base = JobSpec::new("t")
            .queue("q")
            .max_attempts(2)
            .timeout(Duration::from_secs(9))
            .cancelable(false)
            .name("n");
        assert_eq!(JobOptions::default().apply(base.clone()), base);
        assert_eq!(JobOptions::default().spec("t"), JobSpec::new("t"));
    }

    #[test]
    fn every_option_given_is_set() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let spec = JobOptions {
            queue: Some("q".into()),
            input: Some(serde_json::json!({"a": 1})),
            run_at: Some(at),
            delay: Some(Duration::from_secs(1)),
            max_attempts: Some(7),
            backoff: Some(Duration::from_millis(250)),
            timeout: Some(Duration::from_secs(3)),
            cancelable: Some(false),
            owner: Some("o".into()),
            name: Some("n".into()),
            description: Some("d".into()),
            idempotency_key: Some("k".into()),
            priority: Some(0),
            group: Some("g".into()),
            start_by: Some(crate::StartBy::Within(Duration::from_secs(9))),
            external_lease: Some(Duration::from_secs(30)),
        }
        .spec("t");
        let expected = JobSpec::new("t")
            .queue("q")
            .input_json(serde_json::json!({"a": 1}))
            .run_at(at)
            .delay(Duration::from_secs(1))
            .max_attempts(7)
            .backoff(RetryPolicy {
                initial_ms: 250,
                ..RetryPolicy::default()
            })
            .timeout(Duration::from_secs(3))
            .priority(0)
            .group("g")
            .start_by(Duration::from_secs(9))
            .external(Duration::from_secs(30))
            .cancelable(false)
            .owner("o")
            .name("n")
            .description("d")
            .idempotency_key("k");
        assert_eq!(spec, expected);
    }
}
