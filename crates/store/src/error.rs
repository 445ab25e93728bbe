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
        "QuotaExceeded: {pending} unfinished jobs of this owner in this queue, and this request \
         would take it past the limit of {quota} (a batch counts as every job it carries)"
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
    /// A reply had an unexpected shape, or a script answered a word it does not send.
    #[error("unexpected reply: {0}")]
    Reply(String),
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
    /// The records in Redis, or a process serving them, are of a layout this version
    /// must not write beside (docs/STORAGE.md); the message says what to do.
    #[error("layout: {0}")]
    Layout(String),
}

impl From<redis::ParsingError> for StoreError {
    fn from(e: redis::ParsingError) -> Self {
        StoreError::Reply(e.to_string())
    }
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
                    // A script ran past its time limit: Redis answers everyone else
                    // until it ends. (Not BUSYGROUP or BUSYKEY: those are final.)
                    || has_code(e, "BUSY")
            }
            _ => false,
        }
    }

    /// The queue's stream or consumer group is gone (Redis lost its data): set it up again.
    pub(crate) fn is_missing_group(&self) -> bool {
        matches!(self, StoreError::Redis(e) if has_code(e, "NOGROUP"))
    }

    /// Redis is at `maxmemory` (with `noeviction`) and refuses writes.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, StoreError::Redis(e) if has_code(e, "OOM"))
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

/// Whether Redis answered with the error `code` (the reply's first word), or a
/// pipeline had a command answered so.
pub(crate) fn has_code(e: &redis::RedisError, code: &str) -> bool {
    e.code() == Some(code)
        || e.clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, error)| error.code() == code))
}

/// Whether Redis (or a command of a pipeline) refused a call because it has not
/// loaded the function library ("ERR Function not found").
pub(crate) fn is_missing_function(e: &redis::RedisError) -> bool {
    let missing = |code: &str, detail: Option<&str>| {
        code == "ERR" && detail.is_some_and(|d| d.starts_with("Function not found"))
    };
    e.code().is_some_and(|code| missing(code, e.detail()))
        || e.clone().into_server_errors().is_some_and(|errors| {
            errors
                .iter()
                .any(|(_, error)| missing(error.code(), error.details()))
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The error a client gets for `line`, an error reply as Redis sends it.
    fn reply(line: &str) -> StoreError {
        let value = redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).unwrap();
        StoreError::Redis(value.extract_error().unwrap_err())
    }

    #[test]
    fn a_server_without_the_library_is_told_apart() {
        let missing =
            |line: &str| matches!(reply(line), StoreError::Redis(e) if is_missing_function(&e));
        assert!(missing("ERR Function not found"));
        assert!(!missing("ERR Error running script"));
        assert!(!missing("NOSCRIPT No matching script. Please use EVAL."));
    }

    #[test]
    fn a_script_running_long_is_retryable() {
        let busy = reply(
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
        );
        assert!(busy.is_retryable(), "{busy}");
    }

    #[test]
    fn an_existing_group_or_key_is_not_retryable() {
        let group = reply("BUSYGROUP Consumer Group name already exists");
        assert!(!group.is_retryable(), "{group}");
        let key = reply("BUSYKEY Target key name already exists.");
        assert!(!key.is_retryable(), "{key}");
    }

    #[test]
    fn loading_and_failover_replies_are_retryable() {
        for line in [
            "LOADING Redis is loading the dataset in memory",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "CLUSTERDOWN The cluster is down",
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            "READONLY You can't write against a read only replica.",
        ] {
            assert!(reply(line).is_retryable(), "{line}");
        }
    }

    #[test]
    fn script_and_data_errors_are_not_retryable() {
        for line in [
            "ERR Error running script",
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "OOM command not allowed when used memory > 'maxmemory'.",
            "NOGROUP the queue has no consumer group",
        ] {
            assert!(!reply(line).is_retryable(), "{line}");
        }
    }

    #[test]
    fn a_missing_group_is_told_by_its_code_only() {
        assert!(
            reply("NOGROUP the queue has no consumer group script: 1f0a, on @user_script:1.")
                .is_missing_group()
        );
        assert!(!reply("ERR no such key 'NOGROUP'").is_missing_group());
        assert!(!StoreError::NotFound("NOGROUP".into()).is_missing_group());
    }
}
