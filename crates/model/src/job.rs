use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ErrorCode, JobId};

/// Where a job is in its life (Glance task status plus Xen's `cancelled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting to run: ready in the stream, or scheduled for `run_at`.
    Pending,
    /// Leased to a worker.
    Processing,
    /// Finished with a result.
    Success,
    /// Finished with an error; "dead" once its attempts are exhausted.
    Failure,
    /// Cancelled before or while running.
    Cancelled,
}

impl Status {
    /// All statuses, in life order.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Processing,
        Status::Success,
        Status::Failure,
        Status::Cancelled,
    ];

    /// True for the three terminal statuses.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Success | Status::Failure | Status::Cancelled)
    }

    /// The status's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Processing => "processing",
            Status::Success => "success",
            Status::Failure => "failure",
            Status::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown status {s:?} (expected one of pending, processing, success, failure, cancelled)"))
    }
}

/// Which of a handler's two steps is running (Heat's `handle_*` / `check_*_complete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The handler's `handle` step: start the work.
    Handle,
    /// Polling `check_complete` with the checkpointed progress object.
    Check,
}

impl Phase {
    /// The phase's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Handle => "handle",
            Phase::Check => "check",
        }
    }
}

impl FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "handle" => Ok(Phase::Handle),
            "check" => Ok(Phase::Check),
            other => Err(format!("unknown phase {other:?}")),
        }
    }
}

impl Job {
    /// The record of a job just enqueued from `spec`, as storage writes it.
    ///
    /// ```
    /// use chrono::Utc;
    /// use tether_model::{Job, JobId, JobSpec, Status};
    /// let now = Utc::now();
    /// let job = Job::new_pending(JobId::new(), &JobSpec::new("noop"), now, now);
    /// assert_eq!((job.status, job.attempts, job.run_at), (Status::Pending, 0, None));
    /// ```
    pub fn new_pending(
        id: JobId,
        spec: &crate::JobSpec,
        created_at: DateTime<Utc>,
        due_at: DateTime<Utc>,
    ) -> Job {
        Job {
            id,
            queue: spec.queue.clone(),
            job_type: spec.job_type.clone(),
            input: spec.input.clone(),
            owner: spec.owner.clone(),
            name: spec.name.clone(),
            description: spec.description.clone(),
            status: Status::Pending,
            phase: None,
            progress: 0,
            progress_message: None,
            eta: None,
            result: None,
            message: String::new(),
            error_code: None,
            error_info: Vec::new(),
            attempts: 0,
            max_attempts: spec.max_attempts,
            cancelable: spec.cancelable,
            cancel_requested: false,
            worker: None,
            lease_expires_at: None,
            created_at,
            updated_at: created_at,
            started_at: None,
            finished_at: None,
            run_at: (due_at > created_at).then_some(due_at),
            expires_at: None,
            timeout_ms: spec.timeout.map(|t| t.as_millis() as u64),
            dead: false,
            schedule: spec.schedule.clone(),
            fire_time: spec.fire_time,
            priority: spec.priority,
            group: spec.effective_group().map(str::to_owned),
            start_by: match spec.start_by.map(crate::StartBy::stored) {
                Some(crate::StartBy::At(t)) => Some(t),
                Some(crate::StartBy::Within(d)) => chrono::Duration::from_std(d)
                    .ok()
                    .and_then(|d| created_at.checked_add_signed(d)),
                None => None,
            },
            external: spec.external_lease.is_some(),
            lease_timeout_ms: spec.external_lease.map(|d| d.as_millis() as u64),
            parent_id: spec.parent.as_ref().map(|p| p.id),
            root_id: spec.parent.as_ref().map(|p| p.root),
            subtasks: Vec::new(),
            subtask_count: 0,
            weight: spec.weight.unwrap_or(1),
        }
    }
}

/// A job's full record: the fields the library, the CLI and the REST API show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub queue: String,
    #[serde(rename = "type")]
    pub job_type: String,
    /// The job's parameters.
    pub input: serde_json::Value,
    pub owner: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: Status,
    pub phase: Option<Phase>,
    /// 0–100.
    pub progress: u8,
    pub progress_message: Option<String>,
    pub eta: Option<DateTime<Utc>>,
    pub result: Option<serde_json::Value>,
    /// Human-readable failure reason; empty unless failed or cancelled.
    pub message: String,
    pub error_code: Option<ErrorCode>,
    pub error_info: Vec<String>,
    pub attempts: u32,
    pub max_attempts: u32,
    pub cancelable: bool,
    pub cancel_requested: bool,
    pub worker: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub run_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Per-run time limit in milliseconds.
    pub timeout_ms: Option<u64>,
    /// True once the job failed with no attempts left (and was not re-queued since).
    pub dead: bool,
    /// The schedule whose firing enqueued this job.
    #[serde(default)]
    pub schedule: Option<String>,
    /// That firing's fire time (the job runs once per fire time).
    #[serde(default)]
    pub fire_time: Option<DateTime<Utc>>,
    /// 0 runs first, 9 last.
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// The fairness group it is served in (its own, else its owner).
    #[serde(default)]
    pub group: Option<String>,
    /// Not started by then, it fails with `Expired` (only the first start counts).
    #[serde(default)]
    pub start_by: Option<DateTime<Utc>>,
    /// An external task: its creator drives it (no worker runs it).
    #[serde(default)]
    pub external: bool,
    /// An external task's lease: each progress report renews it for this long.
    #[serde(default)]
    pub lease_timeout_ms: Option<u64>,
    /// The parent in a task tree (vSphere `parentTaskKey`, Xen `subtask_of`).
    #[serde(default)]
    pub parent_id: Option<JobId>,
    /// The tree's root (vSphere `rootTaskKey`); the job itself when it has children but
    /// no parent, none when it is in no tree.
    #[serde(default)]
    pub root_id: Option<JobId>,
    /// Its children's ids in spawn order (Xen `subtasks`): the first
    /// [`MAX_SUBTASKS_SHOWN`](crate::tree::MAX_SUBTASKS_SHOWN); `subtask_count` has them
    /// all (list them with a parent filter). Empty in list summaries.
    #[serde(default)]
    pub subtasks: Vec<JobId>,
    /// How many children it has.
    #[serde(default)]
    pub subtask_count: u64,
    /// Its weight in its parent's progress roll-up.
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

fn default_priority() -> u8 {
    crate::DEFAULT_PRIORITY
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A start deadline before 1970 is stored as 1 ms after it (storage keeps positive
    /// ms): the job a create answers has what a read of it will show. It answered
    /// `0001-01-01T00:00:00Z`, and a read `1970-01-01T00:00:00.001Z`.
    #[test]
    fn a_new_jobs_start_by_is_the_one_storage_keeps() {
        let created = Utc.timestamp_millis_opt(1_700_000_000_000).unwrap();
        let long_ago = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap();
        let spec = crate::JobSpec::new("t").start_by(long_ago);
        let job = Job::new_pending(JobId::new(), &spec, created, created);
        assert_eq!(job.start_by, DateTime::from_timestamp_millis(1));
        let spec = crate::JobSpec::new("t").start_by(std::time::Duration::ZERO);
        let job = Job::new_pending(JobId::new(), &spec, created, created);
        assert_eq!(
            job.start_by,
            Some(created + chrono::Duration::milliseconds(1))
        );
    }
}
