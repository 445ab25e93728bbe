//! The consistency check, walked in bounded steps (`lua/consistency.lua`).

use crate::keys::QueueKeys;
use crate::{SCRIPTS, Store, StoreError};

/// Jobs checked per step: each costs a handful of point lookups, so a step stays
/// around a millisecond of Redis time.
const JOBS_PER_STEP: usize = 150;
/// Index members or stream entries checked per step (one lookup each).
const MEMBERS_PER_STEP: usize = 250;
/// Walks tried when the counters change under a walk (workers running).
const WALKS: usize = 3;

type Step = (String, String, Vec<String>, u64, u64, u64, i64, i64, i64);

impl Store {
    /// Checks that the queue's records, stream, indexes and counters agree (read-only).
    /// Returns the violations found; empty means consistent.
    ///
    /// It walks the queue in bounded steps (a few hundred jobs per script call, each
    /// well under 10 ms of Redis time), so it can run on a large queue in production
    /// without blocking other clients. Each step is atomic over the jobs it covers.
    /// The retained counts are compared with the records over the whole walk; when
    /// workers change the counts during a walk, the walk is repeated (up to three
    /// times) and the counts are left unchecked if they never hold still.
    pub async fn check_consistency(&self, queue: &str) -> Result<Vec<String>, StoreError> {
        tether_model::validate_queue_name(queue)?;
        let mut problems = Vec::new();
        for walk in 1..=WALKS {
            let (found, finals, before, after) = self.walk(queue).await?;
            problems = found;
            if before == after {
                for ((status, records), stored) in ["success", "failure", "cancelled"]
                    .iter()
                    .zip(finals)
                    .zip(after)
                {
                    if stored != records as i64 {
                        problems.push(format!(
                            "counts.{status} is {stored}, records say {records}"
                        ));
                    }
                }
                return Ok(problems);
            }
            tracing::debug!(%queue, walk, "counts changed during the consistency walk");
        }
        tracing::warn!(%queue, "the queue kept changing: its counts were not checked");
        Ok(problems)
    }

    /// One walk: the problems, the final records by status, and the stored counts at
    /// the first and the last step.
    async fn walk(
        &self,
        queue: &str,
    ) -> Result<(Vec<String>, [u64; 3], [i64; 3], [i64; 3]), StoreError> {
        let keys = QueueKeys::new(queue);
        let mut problems = Vec::new();
        let mut finals = [0u64; 3];
        let mut first = None;
        let mut last = [0i64; 3];
        let (mut phase, mut cursor) = ("jobs".to_owned(), String::new());
        while !phase.is_empty() {
            let n = if phase == "jobs" {
                JOBS_PER_STEP
            } else {
                MEMBERS_PER_STEP
            };
            let step: Step = self
                .idempotent(|| async {
                    let mut inv = Self::invocation(&SCRIPTS.consistency, &keys);
                    inv.arg(&phase).arg(&cursor).arg(n);
                    Ok(inv.invoke_async(&mut self.conn()).await?)
                })
                .await?;
            let (next, next_cursor, found, success, failure, cancelled, cs, cf, cc) = step;
            problems.extend(found);
            for (total, n) in finals.iter_mut().zip([success, failure, cancelled]) {
                *total += n;
            }
            last = [cs, cf, cc];
            first.get_or_insert(last);
            (phase, cursor) = (next, next_cursor);
        }
        Ok((problems, finals, first.unwrap_or(last), last))
    }
}
