//! The Tether job model: what a job *is*, independent of where it is stored.
//!
//! This crate does no I/O: it knows nothing of Redis, tokio or HTTP. It holds
//!
//! * [`JobId`] — a UUID v7, so ids sort by creation time;
//! * [`Job`] — the job's full record, with [`Status`] and [`Phase`];
//! * [`machine`] — the transition rules every storage script must enforce;
//! * [`progress`] — clamping (vSphere `UpdateProgress`) and the ETA estimate (Xen `eta`);
//! * [`RetryPolicy`] — exponential backoff with jitter, as plain serialisable data;
//! * [`JobSpec`] — what a producer asks for, validated before it reaches storage,
//!   [`JobInput`] — an input type that names its job type, and [`JobOptions`] — the
//!   options a CLI or REST caller gives, mapped onto a spec;
//! * [`ErrorCode`] — the machine-readable failure codes;
//! * [`schedule`] — cron and interval triggers, DST rules and firing ids;
//! * [`limits`] — the bounds on names, lengths and ranges a caller gives, which the
//!   validation and the REST API's OpenAPI document both read.
//!
//! ```
//! use tether_model::{JobSpec, Status};
//! let spec = JobSpec::new("resize").queue("images").input(&serde_json::json!({"w": 64})).unwrap();
//! assert_eq!(spec.queue, "images");
//! assert!(!Status::Pending.is_final());
//! ```

mod error_code;
mod flow;
mod id;
mod job;
pub mod labels;
pub mod limits;
pub mod machine;
mod options;
pub mod progress;
mod retry;
pub mod schedule;
mod spec;
pub mod trace;
pub mod tree;

pub use error_code::ErrorCode;
pub use flow::{LimitsPatch, MAX_LIMIT, QueueSettings, SettingsError, parse_limit};
pub use id::{JobId, ParseJobIdError};
pub use job::{Job, Phase, Status};
pub use options::JobOptions;
pub use retry::RetryPolicy;
pub use spec::{
    DEFAULT_MAX_ATTEMPTS, DEFAULT_PRIORITY, JobInput, JobSpec, MAX_EXTERNAL_LEASE, MAX_GROUP_LEN,
    MAX_PRIORITY, MIN_EXTERNAL_LEASE, SpecError, StartBy, validate_error_code, validate_group,
    validate_job_type, validate_queue_name,
};
pub use trace::TraceContext;

/// Default lease duration a worker holds a claimed job for.
pub const DEFAULT_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(30);
/// How long finished jobs are kept (Glance's default task time-to-live).
pub const DEFAULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(48 * 3600);
/// Largest encoded input accepted by default.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
