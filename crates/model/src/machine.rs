//! The transition rules, as a pure state machine.
//!
//! Storage scripts implement exactly these rules atomically in Redis; the
//! store's model-based tests replay random operation sequences against both
//! and require the same answers. Read this module as the specification of
//! what each operation may do.
//!
//! ```
//! use tether_model::machine::{JobState, Op};
//! use tether_model::Status;
//! let mut job = JobState::new(3, true);
//! job.apply(Op::Claim).unwrap();
//! job.apply(Op::Complete).unwrap();
//! assert_eq!(job.status, Status::Success);
//! assert_eq!(job.progress, 100);
//! assert!(job.apply(Op::Cancel).is_err()); // finished: InvalidState
//! ```

use crate::Status;

/// An operation on a job, from a producer, a worker or the reaper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A worker leases the pending job (attempt + 1).
    Claim,
    /// The lease holder reports progress.
    Progress(i64),
    /// The lease holder records success.
    Complete,
    /// The lease holder records an error; `transient` errors retry while attempts remain.
    Fail {
        /// Whether the error may succeed on another attempt.
        transient: bool,
    },
    /// The lease holder observed a cancel request and stopped.
    CancelObserved,
    /// A producer asks to cancel.
    Cancel,
    /// The lease lapsed and the reaper took the job back.
    LeaseExpired,
    /// The lease holder hands the job back unfinished (graceful shutdown).
    Release,
    /// The lease holder snoozes the job: it runs again later, the attempt not spent.
    Snooze,
    /// A producer re-queues a dead job.
    Retry,
}

/// Why an operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The job is not in a state that allows the operation (vSphere `InvalidState`).
    #[error("InvalidState: operation not allowed in status {0}")]
    InvalidState(Status),
    /// The job does not support the operation (vSphere `NotSupported`), e.g. cancel of a non-cancelable job.
    #[error("NotSupported: the job is not cancelable")]
    NotSupported,
}

/// The parts of a job record that transitions read and write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    pub status: Status,
    pub attempts: u32,
    pub max_attempts: u32,
    pub cancelable: bool,
    pub cancel_requested: bool,
    pub progress: u8,
    /// Failed with attempts exhausted (or fatally) and not re-queued since.
    pub dead: bool,
}

impl JobState {
    /// A freshly enqueued job.
    pub fn new(max_attempts: u32, cancelable: bool) -> Self {
        JobState {
            status: Status::Pending,
            attempts: 0,
            max_attempts: max_attempts.max(1),
            cancelable,
            cancel_requested: false,
            progress: 0,
            dead: false,
        }
    }

    /// Applies `op`, or explains why it is not allowed and changes nothing.
    pub fn apply(&mut self, op: Op) -> Result<(), TransitionError> {
        use Status::*;
        let invalid = Err(TransitionError::InvalidState(self.status));
        match (op, self.status) {
            (Op::Claim, Pending) => {
                self.status = Processing;
                self.attempts += 1;
                self.progress = 0;
            }
            (Op::Progress(pct), Processing) => self.progress = crate::progress::clamp(pct),
            (Op::Complete, Processing) => self.finish(Success),
            // A requested cancel wins over a failure, a lapsed lease or a hand-back.
            (Op::Fail { .. } | Op::LeaseExpired | Op::Release | Op::Snooze, Processing)
                if self.cancel_requested =>
            {
                self.finish(Cancelled)
            }
            (Op::Fail { transient }, Processing) => {
                if transient && self.attempts < self.max_attempts {
                    self.status = Pending;
                } else {
                    self.finish(Failure);
                    self.dead = true;
                }
            }
            (Op::CancelObserved, Processing) if self.cancel_requested => self.finish(Cancelled),
            (Op::Cancel, s) if s.is_final() => return invalid,
            (Op::Cancel, _) if !self.cancelable => return Err(TransitionError::NotSupported),
            (Op::Cancel, Pending) => self.finish(Cancelled),
            (Op::Cancel, Processing) => self.cancel_requested = true,
            (Op::LeaseExpired, Processing) => {
                if self.attempts < self.max_attempts {
                    self.status = Pending;
                } else {
                    self.finish(Failure);
                    self.dead = true;
                }
            }
            (Op::Release | Op::Snooze, Processing) => {
                self.status = Pending;
                self.attempts -= 1;
            }
            (Op::Retry, Failure) if self.dead => {
                self.status = Pending;
                self.attempts = 0;
                self.dead = false;
                self.progress = 0;
            }
            _ => return invalid,
        }
        Ok(())
    }

    fn finish(&mut self, status: Status) {
        self.status = status;
        self.progress = 100;
        self.cancel_requested = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Claim),
            (-50i64..200).prop_map(Op::Progress),
            Just(Op::Complete),
            any::<bool>().prop_map(|transient| Op::Fail { transient }),
            Just(Op::CancelObserved),
            Just(Op::Cancel),
            Just(Op::LeaseExpired),
            Just(Op::Release),
            Just(Op::Retry),
        ]
    }

    proptest! {
        #[test]
        fn no_sequence_breaks_the_invariants(
            max in 1u32..5, cancelable: bool, ops in proptest::collection::vec(op(), 0..40)
        ) {
            let mut job = JobState::new(max, cancelable);
            for op in ops {
                let before = job.clone();
                if job.apply(op).is_err() {
                    prop_assert_eq!(&job, &before, "a refused operation changed the job");
                }
                prop_assert!(job.progress <= 100);
                prop_assert!(job.attempts <= job.max_attempts);
                if job.status.is_final() {
                    prop_assert_eq!(job.progress, 100);
                    prop_assert!(!job.cancel_requested);
                }
                prop_assert_eq!(job.dead, job.status == Status::Failure);
            }
        }
    }

    #[test]
    fn finished_jobs_refuse_everything_but_retry_of_dead() {
        for final_status in [Status::Success, Status::Failure, Status::Cancelled] {
            let mut job = JobState::new(1, true);
            job.status = final_status;
            job.dead = final_status == Status::Failure;
            for op in [
                Op::Claim,
                Op::Complete,
                Op::Cancel,
                Op::LeaseExpired,
                Op::Release,
            ] {
                assert_eq!(
                    job.clone().apply(op),
                    Err(TransitionError::InvalidState(final_status))
                );
            }
            assert_eq!(
                job.clone().apply(Op::Retry).is_ok(),
                final_status == Status::Failure
            );
        }
    }

    #[test]
    fn cancel_rules() {
        let mut pending = JobState::new(1, true);
        pending.apply(Op::Cancel).unwrap();
        assert_eq!(pending.status, Status::Cancelled);

        let mut fixed = JobState::new(1, false);
        assert_eq!(fixed.apply(Op::Cancel), Err(TransitionError::NotSupported));

        let mut running = JobState::new(1, true);
        running.apply(Op::Claim).unwrap();
        assert_eq!(
            running.apply(Op::CancelObserved),
            Err(TransitionError::InvalidState(Status::Processing))
        );
        running.apply(Op::Cancel).unwrap();
        running.apply(Op::Cancel).unwrap(); // repeated cancels are one
        assert_eq!(running.status, Status::Processing);
        running.apply(Op::CancelObserved).unwrap();
        assert_eq!(running.status, Status::Cancelled);
    }

    #[test]
    fn retries_until_attempts_are_exhausted() {
        let mut job = JobState::new(2, true);
        job.apply(Op::Claim).unwrap();
        job.apply(Op::Fail { transient: true }).unwrap();
        assert_eq!(job.status, Status::Pending);
        job.apply(Op::Claim).unwrap();
        job.apply(Op::Fail { transient: true }).unwrap();
        assert_eq!((job.status, job.dead), (Status::Failure, true));
        job.apply(Op::Retry).unwrap();
        assert_eq!((job.status, job.attempts), (Status::Pending, 0));
    }

    #[test]
    fn fatal_errors_do_not_retry_and_release_does_not_spend_an_attempt() {
        let mut job = JobState::new(5, true);
        job.apply(Op::Claim).unwrap();
        job.apply(Op::Release).unwrap();
        assert_eq!(job.attempts, 0);
        job.apply(Op::Claim).unwrap();
        job.apply(Op::Fail { transient: false }).unwrap();
        assert_eq!(job.status, Status::Failure);
    }
}
