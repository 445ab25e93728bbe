//! External tasks: jobs no worker runs, driven by their creator (vSphere
//! `TaskManager.CreateTask` with `UpdateProgress`, `SetTaskDescription`, `SetTaskState`;
//! `HttpNfcLease` with `HttpNfcLeaseProgress`, `Complete`, `Abort`). See `lua/tasks.lua`.

use chrono::{DateTime, Utc};
use tether_model::{JobId, SpecError, Status, validate_error_code};

use crate::codec::{encode, ms_to_time};
use crate::keys::QueueKeys;
use crate::worker_ops::{in_chunks, parse_ids};
use crate::{SCRIPTS, Store, StoreError, reply};

/// The longest progress message or description a driver may set (characters).
pub const MAX_PROGRESS_MESSAGE: usize = tether_model::limits::MAX_PROGRESS_MESSAGE_LEN;
/// The longest failure message an abort may give (characters).
pub const MAX_ABORT_MESSAGE: usize = tether_model::limits::MAX_ABORT_MESSAGE_LEN;

/// One call of an external task's driver.
#[derive(Debug, Clone, PartialEq)]
pub enum Drive<'a> {
    /// `UpdateProgress` / `HttpNfcLeaseProgress`: the percentage (clamped to 0–100) and
    /// optionally a message. Renews the lease; the first one moves the task to
    /// `processing`.
    Progress {
        percent: i64,
        message: Option<&'a str>,
    },
    /// `SetTaskDescription`: the phase text, shown as `progress_message`.
    Describe(&'a str),
    /// `SetTaskState(success, result)` / `HttpNfcLeaseComplete`.
    Complete(Option<&'a serde_json::Value>),
    /// `SetTaskState(error, fault)` / `HttpNfcLeaseAbort(fault)`: failure with this error
    /// code (`Aborted` when none) and message.
    Abort {
        error_code: Option<&'a str>,
        message: Option<&'a str>,
    },
}

/// What a driver's call left: the task's status, progress, whether a cancel was requested
/// (the driver should then end it with an abort or a completion), and the lease's deadline
/// while the task is not final.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Driven {
    pub id: JobId,
    pub status: Status,
    pub progress: u8,
    pub cancel_requested: bool,
    pub lease_expires_at: Option<DateTime<Utc>>,
}

/// What one pass over lapsed external leases did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lapsed {
    /// Failed with `Timedout`.
    pub failed: Vec<JobId>,
    /// Ended cancelled: a cancel had been requested.
    pub cancelled: Vec<JobId>,
    /// Entries of tasks that had ended already, merely removed.
    pub stale: usize,
}

impl Drive<'_> {
    /// The script's arguments after the operation; checks what the caller gave.
    fn args(&self) -> Result<(&'static str, Vec<Vec<u8>>), StoreError> {
        let bounded = |field: &'static str, text: &str, max: usize| {
            // Characters, as the API document's maxLength counts them.
            if text.chars().count() > max {
                Err(SpecError::TooLong { field, max })
            } else {
                Ok(text.as_bytes().to_vec())
            }
        };
        Ok(match self {
            Drive::Progress { percent, message } => (
                "progress",
                vec![
                    tether_model::progress::clamp(*percent)
                        .to_string()
                        .into_bytes(),
                    bounded("message", message.unwrap_or(""), MAX_PROGRESS_MESSAGE)?,
                ],
            ),
            Drive::Describe(text) => (
                "describe",
                vec![bounded("description", text, MAX_PROGRESS_MESSAGE)?],
            ),
            Drive::Complete(result) => (
                "complete",
                vec![match result {
                    Some(value) => encode(value)?,
                    None => Vec::new(),
                }],
            ),
            Drive::Abort {
                error_code,
                message,
            } => {
                if let Some(code) = error_code {
                    validate_error_code(code)?;
                }
                (
                    "abort",
                    vec![
                        error_code.unwrap_or("").as_bytes().to_vec(),
                        bounded("message", message.unwrap_or(""), MAX_ABORT_MESSAGE)?,
                    ],
                )
            }
        })
    }
}

impl Store {
    /// One call of an external task's driver. `owner` restricts it to that owner's tasks
    /// (others are `NotFound`). A final task refuses it (`InvalidState`), and so does a
    /// task whose lease lapsed, which the call ends first (`Timedout`); a job workers run
    /// is `NotSupported`. The result of a completion counts against the payload limit.
    pub async fn drive(
        &self,
        queue: &str,
        id: JobId,
        owner: Option<&str>,
        call: &Drive<'_>,
    ) -> Result<Driven, StoreError> {
        tether_model::validate_queue_name(queue)?;
        let (op, args) = call.args()?;
        if let Drive::Complete(Some(_)) = call {
            let limit = self.config().max_payload_bytes;
            if args[0].len() > limit {
                return Err(StoreError::PayloadTooLarge {
                    size: args[0].len(),
                    limit,
                });
            }
        }
        let id_text = id.to_string();
        let retention = self.config().retention.as_millis() as u64;
        let keys = QueueKeys::new(queue);
        let mut inv = Self::invocation(&SCRIPTS.drive, &keys);
        inv.arg(&id_text)
            .arg(owner.unwrap_or(""))
            .arg(retention)
            .arg(op);
        for arg in &args {
            inv.arg(arg.as_slice());
        }
        // Not resent after a lost reply: a second progress report is harmless, but a
        // completion resent would meet its own final state and answer InvalidState.
        let (word, status, progress, cancel, deadline): (String, String, i64, i64, i64) =
            inv.invoke_async(&mut self.conn()).await?;
        if word != "OK" {
            return Err(reply::refusal("drive", &word, &id_text));
        }
        Ok(Driven {
            id,
            status: status.parse().map_err(|e| StoreError::decode("st", e))?,
            progress: progress.clamp(0, 100) as u8,
            cancel_requested: cancel == 1,
            lease_expires_at: (deadline > 0).then(|| ms_to_time(deadline)),
        })
    }

    /// Ends up to `limit` external tasks whose lease lapsed (one call per
    /// [`MAX_BATCH`](crate::MAX_BATCH)): any worker runs this with the reaper.
    pub async fn lapse_external(&self, queue: &str, limit: usize) -> Result<Lapsed, StoreError> {
        let keys = &QueueKeys::new(queue);
        let mut out = Lapsed::default();
        in_chunks(
            limit,
            |asked| async move {
                let mut inv = Self::invocation(&SCRIPTS.lapse, keys);
                inv.arg(asked)
                    .arg(self.config().retention.as_millis() as u64);
                let (failed, cancelled, stale): (Vec<String>, Vec<String>, usize) =
                    inv.invoke_async(&mut self.conn()).await?;
                Ok((
                    failed.len() + cancelled.len() + stale,
                    (failed, cancelled, stale),
                ))
            },
            |(failed, cancelled, stale)| {
                out.failed.extend(parse_ids(&failed));
                out.cancelled.extend(parse_ids(&cancelled));
                out.stale += stale;
            },
        )
        .await?;
        Ok(out)
    }
}
