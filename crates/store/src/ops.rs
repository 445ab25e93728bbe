//! What an operator's console reads and does across many jobs: a walk over a queue's
//! jobs in bounded steps (bulk actions, search), the delete of a finished job, and a
//! queue's recent throughput from the indexes it already keeps.

use tether_model::{Job, JobId};

use crate::keys::QueueKeys;
use crate::scripts::SCRIPTS;
use crate::{Store, StoreError};

/// A place in a queue's index of jobs: creation time (ms, the index's score) and id.
/// A walk resumes after it even when that job is gone meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPos {
    pub created_ms: i64,
    pub id: String,
}

/// One step of a walk: the summaries read, and where the next step starts (`None`
/// once the range is exhausted).
#[derive(Debug, Clone)]
pub struct WalkStep {
    pub jobs: Vec<Job>,
    /// Index entries read (a job expired between the index and the record is read
    /// but not returned).
    pub read: usize,
    pub next: Option<IndexPos>,
}

/// Which way a walk goes through the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkOrder {
    OldestFirst,
    NewestFirst,
}

/// Most entries one step reads (one `ZRANGE` and one pipeline of as many `HMGET`s).
pub const MAX_WALK_STEP: usize = 500;

/// How many index pages of tied scores a step skips before it gives up (a step never
/// loops unbounded on a million jobs created in one millisecond).
const MAX_TIE_PAGES: usize = 64;

impl Store {
    /// One step of a walk over `queue`'s jobs (`owner`'s index when given: its cost
    /// follows that owner's jobs) in creation order, after `after`, at most `count`
    /// (≤ [`MAX_WALK_STEP`]) entries.
    pub async fn walk_jobs(
        &self,
        queue: &str,
        owner: Option<&str>,
        order: WalkOrder,
        after: Option<&IndexPos>,
        count: usize,
    ) -> Result<WalkStep, StoreError> {
        tether_model::validate_queue_name(queue)?;
        let keys = QueueKeys::new(queue);
        let index = match owner {
            Some(owner) => keys.owner_jobs(owner),
            None => keys.jobs().to_owned(),
        };
        let count = count.clamp(1, MAX_WALK_STEP);
        let newest_first = order == WalkOrder::NewestFirst;
        let (mut low, mut high) = (0, i64::MAX);
        if let Some(pos) = after {
            if newest_first {
                high = high.min(pos.created_ms);
            } else {
                low = low.max(pos.created_ms);
            }
        }
        // Entries at the cursor's own score up to the cursor were read by an earlier step.
        let passed = |score: i64, id: &str| match after {
            Some(pos) if score == pos.created_ms => {
                if newest_first {
                    id >= pos.id.as_str()
                } else {
                    id <= pos.id.as_str()
                }
            }
            _ => false,
        };
        // The first page is the step; pages that only hold entries an earlier step read
        // (ties at the cursor's time) are skipped a MAX_WALK_STEP at a time.
        let (mut offset, mut page) = (0, count);
        for _ in 0..MAX_TIE_PAGES {
            let mut cmd = redis::cmd("ZRANGE");
            cmd.arg(&index);
            if newest_first {
                cmd.arg(high).arg(low).arg("BYSCORE").arg("REV");
            } else {
                cmd.arg(low).arg(high).arg("BYSCORE");
            }
            cmd.arg("LIMIT").arg(offset).arg(page).arg("WITHSCORES");
            let entries: Vec<(String, f64)> = self
                .idempotent(|| async { Ok(cmd.query_async(&mut self.conn()).await?) })
                .await?;
            let full = entries.len() == page;
            offset += entries.len();
            let fresh: Vec<(String, i64)> = entries
                .into_iter()
                .map(|(id, score)| (id, score as i64))
                .filter(|(id, score)| !passed(*score, id))
                .collect();
            if fresh.is_empty() && full {
                page = MAX_WALK_STEP;
                continue;
            }
            // Entries past the first `count` fresh ones are left for the next step.
            let more = full || fresh.len() > count;
            let fresh: Vec<(String, i64)> = fresh.into_iter().take(count).collect();
            let next = fresh.last().filter(|_| more).map(|(id, score)| IndexPos {
                created_ms: *score,
                id: id.clone(),
            });
            let ids: Vec<String> = fresh.into_iter().map(|(id, _)| id).collect();
            let read = ids.len();
            let jobs = if ids.is_empty() {
                Vec::new()
            } else {
                self.summaries(queue, &ids).await?
            };
            return Ok(WalkStep { jobs, read, next });
        }
        Err(StoreError::Reply(format!(
            "more than {} jobs of {queue} were created in one millisecond",
            MAX_TIE_PAGES * MAX_WALK_STEP
        )))
    }

    /// Which queue of `queues` holds each of `ids` (`None`: none of them): one pipeline
    /// of `EXISTS` per queue (each queue may live on another node), all in flight at
    /// once. The cost is `ids × queues` commands; callers bound that product.
    pub async fn locate_jobs(
        &self,
        ids: &[JobId],
        queues: &[String],
    ) -> Result<Vec<Option<String>>, StoreError> {
        if ids.is_empty() || queues.is_empty() {
            return Ok(vec![None; ids.len()]);
        }
        let keys: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        let found: Vec<Vec<bool>> = self
            .idempotent(|| {
                futures::future::try_join_all(queues.iter().map(|queue| {
                    let queue_keys = QueueKeys::new(queue);
                    let mut pipe = redis::pipe();
                    for id in &keys {
                        pipe.exists(queue_keys.job(id));
                    }
                    async move { Ok::<_, StoreError>(pipe.query_async(&mut self.conn()).await?) }
                }))
            })
            .await?;
        Ok((0..ids.len())
            .map(|i| {
                queues
                    .iter()
                    .zip(&found)
                    .find(|(_, exists)| exists[i])
                    .map(|(queue, _)| queue.clone())
            })
            .collect())
    }

    /// The summaries (the listing's fields) of those of `ids` that `queue` holds, in
    /// the order given: one pipelined read, with no input or result.
    pub async fn job_summaries(&self, queue: &str, ids: &[JobId]) -> Result<Vec<Job>, StoreError> {
        tether_model::validate_queue_name(queue)?;
        let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        self.idempotent(|| self.summaries(queue, &ids)).await
    }

    /// Deletes a finished job now, with its index entries (what retention does at its
    /// expiry). `owner` restricts it to that owner's jobs (others are `NotFound`); a job
    /// not final is `InvalidState`.
    pub async fn delete_final(
        &self,
        queue: &str,
        id: JobId,
        owner: Option<&str>,
    ) -> Result<(), StoreError> {
        self.job_script(&SCRIPTS.delete, "delete", queue, id, owner)
            .await
    }

    /// `queue`'s jobs created and finished per interval of `width`, the last `buckets`
    /// intervals up to now (Redis time), oldest first: counted in the index of retained
    /// jobs (by creation time) and in `done` (by expiry time, less this store's
    /// retention), one `ZCOUNT` each, in one pipeline. Jobs deleted or expired since are
    /// not counted; the finished counts assume the workers' retention is this store's.
    pub async fn throughput(
        &self,
        queue: &str,
        buckets: usize,
        width: std::time::Duration,
    ) -> Result<Throughput, StoreError> {
        tether_model::validate_queue_name(queue)?;
        let keys = QueueKeys::new(queue);
        let width_ms = width.as_millis().max(1) as i64;
        let now = self.redis_now().await?.timestamp_millis();
        // Whole intervals, the last one ending at the next interval boundary.
        let end = (now / width_ms + 1) * width_ms;
        let start = end - width_ms * buckets as i64;
        let retention = self.retention_ms() as i64;
        let mut pipe = redis::pipe();
        for b in 0..buckets as i64 {
            let (from, to) = (start + b * width_ms, start + (b + 1) * width_ms);
            pipe.zcount(keys.jobs(), from, format!("({to}"));
            pipe.zcount(
                keys.done(),
                from + retention,
                format!("({}", to + retention),
            );
        }
        let counts: Vec<u64> = self
            .idempotent(|| async { Ok(pipe.query_async(&mut self.conn()).await?) })
            .await?;
        Ok(Throughput {
            start_ms: start,
            width_ms,
            created: counts.iter().step_by(2).copied().collect(),
            finished: counts.iter().skip(1).step_by(2).copied().collect(),
        })
    }
}

/// Jobs created and finished per interval (see [`Store::throughput`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Throughput {
    /// Start of the first interval (ms since the epoch, Redis time).
    pub start_ms: i64,
    pub width_ms: i64,
    pub created: Vec<u64>,
    pub finished: Vec<u64>,
}
