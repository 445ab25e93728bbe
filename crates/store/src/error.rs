use tether_model::{SpecError, Status};

/// What a storage call can fail with. Classify with the `is_*` methods rather than by message.
/// Cloning keeps the classification (a failed batch answers each of its jobs).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Redis could not be reached or answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No such job (or it belongs to another owner).
    #[error("NotFound: no job {0}")]
    NotFound(String),
    /// The owner has as many schedules as one owner may have.
    #[error("TooManySchedules: an owner may have at most {limit} schedules")]
    TooManySchedules { limit: usize },
    /// A schedule of that name already exists (for this owner).
    #[error("Conflict: a schedule named {0} exists")]
    ScheduleExists(String),
    /// The job's status does not allow the operation.
    #[error("InvalidState: the job is {0}")]
    InvalidState(Status),
    /// The job does not allow the operation (cancel of a non-cancelable job).
    #[error("NotSupported: the job is not cancelable")]
    NotSupported,
    /// The job spec was refused before anything was written.
    #[error("invalid job: {0}")]
    Spec(#[from] SpecError),
    /// The encoded input is over the configured limit.
    #[error("PayloadTooLarge: input is {size} bytes, the limit is {limit}")]
    PayloadTooLarge { size: usize, limit: usize },
    /// The owner already has `quota` unfinished jobs in this queue; nothing was written.
    #[error(
        "QuotaExceeded: {pending} unfinished jobs of this owner in this queue; the limit is {quota}"
    )]
    QuotaExceeded { pending: u64, quota: u64 },
    /// A job was due later than now + `horizon`; nothing was written.
    #[error("BeyondHorizon: a job may start at most {} ahead", span(*horizon))]
    BeyondHorizon { horizon: std::time::Duration },
    /// A stored value could not be decoded.
    #[error("decode {field}: {message}")]
    Decode {
        field: &'static str,
        message: String,
    },
    /// A reply had an unexpected shape.
    #[error("unexpected reply: {0}")]
    Reply(#[from] redis::ParsingError),
    /// A script call failed for a reason other than the connection.
    #[error("script failed: {0}")]
    Script(String),
    /// Written on the master, but fewer replicas than `min_replicas` confirmed it in
    /// time: a failover now could lose it. Resending with the same idempotency key is
    /// safe (it returns the same job and waits again).
    #[error(
        "NotReplicated: written, but {confirmed} of {wanted} replicas confirmed it; a failover could lose it"
    )]
    NotReplicated { confirmed: usize, wanted: usize },
    /// The URL or settings are unusable.
    #[error("config: {0}")]
    Config(String),
}

impl StoreError {
    /// A connection problem that is worth retrying after a pause.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || matches!(
                        e.kind(),
                        redis::ErrorKind::Server(
                            redis::ServerErrorKind::BusyLoading
                                | redis::ServerErrorKind::TryAgain
                                | redis::ServerErrorKind::ClusterDown
                                | redis::ServerErrorKind::Moved
                                | redis::ServerErrorKind::Ask
                                | redis::ServerErrorKind::MasterDown
                                | redis::ServerErrorKind::ReadOnly
                        )
                    )
                    || e.to_string().contains("BUSY")
            }
            _ => false,
        }
    }

    /// Not found, or not visible to the caller.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound(_))
    }

    pub(crate) fn decode(field: &'static str, e: impl std::fmt::Display) -> Self {
        StoreError::Decode {
            field,
            message: e.to_string(),
        }
    }
}

/// `30 days`, `90 minutes`, `45s`: a horizon as people set it.
fn span(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{} hours", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s}s"),
    }
}

/// Maps a script's refusal word (`NOT_FOUND`, `NOT_SUPPORTED`, `INVALID:<status>`) to an error.
pub(crate) fn refusal(word: &str, id: &str) -> StoreError {
    if let Some(status) = word.strip_prefix("INVALID:") {
        match status.parse() {
            Ok(status) => StoreError::InvalidState(status),
            Err(e) => StoreError::decode("st", e),
        }
    } else if word == "NOT_SUPPORTED" {
        StoreError::NotSupported
    } else {
        StoreError::NotFound(id.to_owned())
    }
}
