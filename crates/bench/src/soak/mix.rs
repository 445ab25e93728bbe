//! The soak's mixed workload: which kinds of job, how often, and how each ends.

use serde_json::{Value, json};
use tether_producer::{JobSpec, RetryPolicy, Status};

use super::QUEUES;

/// The kinds of the mix and the state each ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Noop,
    Sleep,
    Flaky,
    Progress,
    Import,
    Fail,
    Cancelled,
}

impl Kind {
    /// Out of every 100 jobs: 70 noop, 8 sleep, 5 flaky, 5 progress, 5 import,
    /// 4 failing for good, 3 long jobs cancelled while they wait or run.
    pub(super) fn of(i: u64) -> Kind {
        match i % 100 {
            0..70 => Kind::Noop,
            70..78 => Kind::Sleep,
            78..83 => Kind::Flaky,
            83..88 => Kind::Progress,
            88..93 => Kind::Import,
            93..97 => Kind::Fail,
            _ => Kind::Cancelled,
        }
    }

    pub(super) fn expected(self) -> Status {
        match self {
            Kind::Fail => Status::Failure,
            Kind::Cancelled => Status::Cancelled,
            _ => Status::Success,
        }
    }

    /// The `i`-th job of the mix, of this kind.
    pub(super) fn spec(self, i: u64) -> JobSpec {
        let queue = QUEUES[(i % QUEUES.len() as u64) as usize];
        let (job_type, input) = match self {
            Kind::Noop => ("noop", Value::Null),
            Kind::Sleep => ("sleep", json!({"ms": 10 + i % 40})),
            Kind::Flaky => ("flaky", json!({"fail_times": 1})),
            Kind::Progress => ("progress", json!({"steps": 4, "step_ms": 10})),
            Kind::Import => ("import", json!({"size_mb": 3, "chunk_ms": 10})),
            Kind::Fail => (
                "fail",
                json!({"message": "soak failure", "code": "SoakFailure", "fatal": true}),
            ),
            Kind::Cancelled => ("progress", json!({"steps": 50, "step_ms": 20})),
        };
        JobSpec::new(job_type)
            .queue(queue)
            .input_json(input)
            .backoff(RetryPolicy {
                initial_ms: 100,
                factor: 2.0,
                cap_ms: 1_000,
                jitter: 0.2,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_has_every_kind() {
        let kinds: Vec<Kind> = (0..100).map(Kind::of).collect();
        for k in [
            Kind::Noop,
            Kind::Sleep,
            Kind::Flaky,
            Kind::Progress,
            Kind::Import,
            Kind::Fail,
            Kind::Cancelled,
        ] {
            assert!(kinds.contains(&k), "{k:?}");
        }
    }
}
