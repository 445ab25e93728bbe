//! The scripts' answers, in the words listed at the top of `lua/common.lua`. A word no
//! script sends is an error ([`StoreError::Reply`]): it is never read as a refusal, a
//! missing job or a lost lease.

use crate::{CancelOutcome, Enqueued, FinishOutcome, LeaseError, RenewStatus, StoreError};

/// An answer `script` does not give.
pub(crate) fn unexpected(script: &str, word: &str) -> StoreError {
    StoreError::Reply(format!("{script} answered {word:?}"))
}

/// A refusal of a call about job (or schedule) `id`: `NOT_FOUND`, `NOT_SUPPORTED` or
/// `INVALID:<status>`.
pub(crate) fn refusal(script: &str, word: &str, id: &str) -> StoreError {
    match word {
        "NOT_FOUND" => StoreError::NotFound(id.to_owned()),
        "NOT_SUPPORTED" => StoreError::NotSupported,
        _ => match word.strip_prefix("INVALID:") {
            Some(status) => match status.parse() {
                Ok(status) => StoreError::InvalidState(status),
                Err(e) => StoreError::decode("st", e),
            },
            None => unexpected(script, word),
        },
    }
}

/// `OK`, or a refusal (see [`refusal`]).
pub(crate) fn ok(script: &str, word: &str, id: &str) -> Result<(), StoreError> {
    match word {
        "OK" => Ok(()),
        refused => Err(refusal(script, refused, id)),
    }
}

/// `cancel.lua`: `CANCELLED`, `REQUESTED`, or a refusal.
pub(crate) fn cancel(word: &str, id: &str) -> Result<CancelOutcome, StoreError> {
    match word {
        "CANCELLED" => Ok(CancelOutcome::Cancelled),
        "REQUESTED" => Ok(CancelOutcome::Requested),
        refused => Err(refusal("cancel", refused, id)),
    }
}

/// A lease holder's renewal, progress report or checkpoint: `OK`, `CANCEL_REQUESTED`
/// or `LOST`.
pub(crate) fn lease(script: &str, word: &str) -> Result<RenewStatus, StoreError> {
    match word {
        "OK" => Ok(RenewStatus::Renewed),
        "CANCEL_REQUESTED" => Ok(RenewStatus::CancelRequested),
        "LOST" => Ok(RenewStatus::Lost),
        other => Err(unexpected(script, other)),
    }
}

/// One job's answer from `finish.lua`.
pub(crate) fn finish(word: &str) -> Result<FinishOutcome, LeaseError> {
    match word {
        "OK" => Ok(FinishOutcome::Recorded),
        "RETRY" => Ok(FinishOutcome::Retrying),
        "DEAD" => Ok(FinishOutcome::Dead),
        // A resend within one batch has no status; a later one names the job's.
        "ALREADY" => Ok(FinishOutcome::AlreadyRecorded { status: None }),
        "LOST" => Err(LeaseError::Lost),
        "NOT_REQUESTED" => Err(LeaseError::Store(StoreError::InvalidState(
            tether_model::Status::Processing,
        ))),
        other => match other.strip_prefix("ALREADY:") {
            Some(status) => Ok(FinishOutcome::AlreadyRecorded {
                status: status.parse().ok(),
            }),
            None => Err(LeaseError::Store(unexpected("finish", other))),
        },
    }
}

/// One job's values in `enqueue.lua`'s answer: `word, id, a, b`. The script answers them
/// flat, four per job; redis-rs reads a flat array into a `Vec` of 4-tuples four values
/// at a time (and an array of 4-value arrays the same way).
pub(crate) type EnqueueRow = (String, String, i64, i64);

/// What one row of an enqueue's answer says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EnqueueReply {
    /// A job of the batch (written now, written before, or an earlier job's id).
    Job(Enqueued),
    /// The queue had no `used` mark: the caller registers it.
    NewQueue,
    /// The batch would take an owner past the quota; nothing was written.
    Quota { pending: u64, quota: u64 },
    /// A job of the batch was due too late; nothing was written.
    Horizon,
}

/// Reads one row of `enqueue.lua`'s answer.
pub(crate) fn enqueue((word, id, a, b): EnqueueRow) -> Result<EnqueueReply, StoreError> {
    let job = |created, written_now, created_at_ms, due_at_ms| -> Result<_, StoreError> {
        Ok(EnqueueReply::Job(Enqueued {
            id: id.parse().map_err(|e| StoreError::decode("id", e))?,
            created,
            created_at_ms,
            due_at_ms,
            written_now,
        }))
    };
    match word.as_str() {
        "CREATED" => job(true, true, a, b),
        // Written by an earlier send whose reply was lost; callers re-read the times.
        "EXISTS" => job(true, false, 0, 0),
        "DUPLICATE" => job(false, false, 0, 0),
        "NEW_QUEUE" => Ok(EnqueueReply::NewQueue),
        "QUOTA" => Ok(EnqueueReply::Quota {
            pending: a.max(0) as u64,
            quota: b.max(0) as u64,
        }),
        "HORIZON" => Ok(EnqueueReply::Horizon),
        other => Err(unexpected("enqueue", other)),
    }
}

/// `OK`, or the word `no` that a script answers for "nothing done" (`STALE`, `IN_USE`,
/// `NOT_FOUND`): true for `OK`, false for `no`.
pub(crate) fn ok_or(script: &str, word: &str, no: &str) -> Result<bool, StoreError> {
    match word {
        "OK" => Ok(true),
        other if other == no => Ok(false),
        other => Err(unexpected(script, other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_model::{JobId, Status};

    fn is_reply_error(e: &StoreError) -> bool {
        matches!(e, StoreError::Reply(message) if message.contains("WHATEVER"))
    }

    #[test]
    fn refusals_are_read_and_an_unknown_word_is_an_error() {
        assert!(refusal("cancel", "NOT_FOUND", "j").is_not_found());
        assert!(matches!(
            refusal("cancel", "NOT_SUPPORTED", "j"),
            StoreError::NotSupported
        ));
        assert!(matches!(
            refusal("cancel", "INVALID:success", "j"),
            StoreError::InvalidState(Status::Success)
        ));
        let unknown = refusal("cancel", "WHATEVER", "j");
        assert!(is_reply_error(&unknown), "{unknown:?}");
        assert!(!unknown.is_not_found());
        assert!(ok("retry_dead", "OK", "j").is_ok());
        assert!(is_reply_error(
            &ok("set_labels", "WHATEVER", "j").unwrap_err()
        ));
    }

    #[test]
    fn cancel_answers() {
        assert_eq!(cancel("CANCELLED", "j").unwrap(), CancelOutcome::Cancelled);
        assert_eq!(cancel("REQUESTED", "j").unwrap(), CancelOutcome::Requested);
        assert!(is_reply_error(&cancel("WHATEVER", "j").unwrap_err()));
    }

    #[test]
    fn an_unknown_lease_answer_is_an_error_not_a_lost_lease() {
        assert_eq!(lease("renew", "OK").unwrap(), RenewStatus::Renewed);
        assert_eq!(
            lease("renew", "CANCEL_REQUESTED").unwrap(),
            RenewStatus::CancelRequested
        );
        assert_eq!(lease("renew", "LOST").unwrap(), RenewStatus::Lost);
        assert!(is_reply_error(
            &lease("checkpoint", "WHATEVER").unwrap_err()
        ));
    }

    #[test]
    fn an_unknown_finish_answer_is_an_error_not_a_lost_lease() {
        assert_eq!(finish("OK").unwrap(), FinishOutcome::Recorded);
        assert_eq!(finish("RETRY").unwrap(), FinishOutcome::Retrying);
        assert_eq!(finish("DEAD").unwrap(), FinishOutcome::Dead);
        assert_eq!(
            finish("ALREADY").unwrap(),
            FinishOutcome::AlreadyRecorded { status: None }
        );
        assert_eq!(
            finish("ALREADY:pending").unwrap(),
            FinishOutcome::AlreadyRecorded {
                status: Some(Status::Pending)
            }
        );
        assert!(matches!(finish("LOST"), Err(LeaseError::Lost)));
        assert!(matches!(
            finish("NOT_REQUESTED"),
            Err(LeaseError::Store(StoreError::InvalidState(
                Status::Processing
            )))
        ));
        assert!(matches!(finish("WHATEVER"), Err(LeaseError::Store(e)) if is_reply_error(&e)));
    }

    #[test]
    fn enqueue_rows() {
        let id = JobId::new();
        let row = |word: &str, a, b| (word.to_owned(), id.to_string(), a, b);
        let EnqueueReply::Job(created) = enqueue(row("CREATED", 5, 7)).unwrap() else {
            panic!("a job")
        };
        assert_eq!(
            (created.id, created.created, created.written_now),
            (id, true, true)
        );
        assert_eq!((created.created_at_ms, created.due_at_ms), (5, 7));
        let EnqueueReply::Job(resent) = enqueue(row("EXISTS", 0, 0)).unwrap() else {
            panic!("a job")
        };
        assert_eq!((resent.created, resent.written_now), (true, false));
        let EnqueueReply::Job(duplicate) = enqueue(row("DUPLICATE", 0, 0)).unwrap() else {
            panic!("a job")
        };
        assert_eq!((duplicate.created, duplicate.written_now), (false, false));
        assert_eq!(
            enqueue(("NEW_QUEUE".into(), String::new(), 0, 0)).unwrap(),
            EnqueueReply::NewQueue
        );
        assert_eq!(
            enqueue(row("QUOTA", 3, 3)).unwrap(),
            EnqueueReply::Quota {
                pending: 3,
                quota: 3
            }
        );
        assert_eq!(
            enqueue(row("HORIZON", 0, 0)).unwrap(),
            EnqueueReply::Horizon
        );
        assert!(is_reply_error(&enqueue(row("WHATEVER", 0, 0)).unwrap_err()));
    }

    #[test]
    fn ok_or_its_no_and_nothing_else() {
        assert!(ok_or("advance", "OK", "STALE").unwrap());
        assert!(!ok_or("advance", "STALE", "STALE").unwrap());
        assert!(is_reply_error(
            &ok_or("advance", "WHATEVER", "STALE").unwrap_err()
        ));
    }
}
