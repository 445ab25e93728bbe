//! Many jobs at once, for an operator's console: a walk over the jobs matching a
//! filter in bounded steps that a caller resumes from a [`Cursor`], one action applied
//! to each job it selects, and a bounded search by id prefix or name.

use std::fmt;
use std::str::FromStr;

use tether_model::{Job, JobId, Status};
use tether_store::{IndexPos, ListQuery, MAX_WALK_STEP, Throughput, WalkOrder};

use crate::{Error, Producer};

/// What a bulk request does to each job it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    /// Cancel an unfinished job (and its subtree), as [`Producer::cancel`].
    Cancel,
    /// Re-queue a dead job, as [`Producer::retry`].
    Retry,
    /// Delete a finished job now, as [`Producer::delete`].
    Delete,
}

impl BulkAction {
    /// Whether the action applies to a job in `job`'s state: cancel to an unfinished
    /// job, retry to a dead one, delete to a finished one.
    pub fn applies_to(self, job: &Job) -> bool {
        match self {
            BulkAction::Cancel => !job.status.is_final(),
            BulkAction::Retry => job.status == Status::Failure && job.dead,
            BulkAction::Delete => job.status.is_final(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BulkAction::Cancel => "cancel",
            BulkAction::Retry => "retry",
            BulkAction::Delete => "delete",
        }
    }
}

/// Where a walk stopped: a queue and a place in its index of jobs. As text,
/// `<queue>/<creation ms>/<job id>`, which [`FromStr`] checks part by part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub queue: String,
    pub pos: IndexPos,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.queue, self.pos.created_ms, self.pos.id)
    }
}

impl FromStr for Cursor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // The id and the time are the last two parts: a queue name has no '/' either.
        let mut parts = text.rsplitn(3, '/');
        let (Some(id), Some(ms), Some(queue)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("a cursor is <queue>/<ms>/<id>, as an answer's next gives it".into());
        };
        tether_model::validate_queue_name(queue).map_err(|e| e.to_string())?;
        let created_ms = ms
            .parse::<i64>()
            .ok()
            .filter(|ms| *ms >= 0)
            .ok_or("a cursor's time is a whole number of ms")?;
        // The start of a queue has no id; any other position names a job id.
        if !id.is_empty() {
            id.parse::<JobId>()
                .map_err(|_| "a cursor's id is a job id")?;
        }
        Ok(Cursor {
            queue: queue.to_owned(),
            pos: IndexPos {
                created_ms,
                id: id.to_owned(),
            },
        })
    }
}

/// What one call of [`Producer::walk`] read.
#[derive(Debug, Clone)]
pub struct Walked {
    /// The jobs that match the filter, in walk order.
    pub jobs: Vec<Job>,
    /// Index entries read.
    pub examined: usize,
    /// Where to resume; `None` when every queue was walked to its end.
    pub next: Option<Cursor>,
}

/// What [`Producer::find_many`] found.
#[derive(Debug, Clone)]
pub enum FoundMany {
    /// The summaries of the ids found and visible to this producer, and how many were
    /// not (absent, or another owner's: the two are not told apart).
    Jobs { jobs: Vec<Job>, missing: usize },
    /// Looking the ids up would take `lookups` reads, more than allowed: the caller
    /// should name their queue.
    TooWide { lookups: usize },
}

impl Producer {
    /// The jobs that match `filter` (its queues, or every known queue; in name order,
    /// each oldest first), resuming after `after`, reading at most `budget` index
    /// entries, in steps of at most [`MAX_WALK_STEP`] (each a few ms of Redis time).
    /// An owner's walk reads that owner's index only. Sort, limit and marker of the
    /// filter are not used. A cursor is a place in the order of queue names: one naming
    /// no queue of the filter goes on at the next queue by name.
    ///
    /// ```no_run
    /// # async fn demo(producer: tether_producer::Producer) -> Result<(), tether_producer::Error> {
    /// use tether_producer::{ListQuery, Status};
    /// let filter = ListQuery { status: Some(Status::Pending), ..ListQuery::default() };
    /// let mut after = None;
    /// loop {
    ///     let walked = producer.walk(&filter, after.as_ref(), 2000).await?;
    ///     println!("{} pending", walked.jobs.len());
    ///     match walked.next { Some(next) => after = Some(next), None => break }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn walk(
        &self,
        filter: &ListQuery,
        after: Option<&Cursor>,
        budget: usize,
    ) -> Result<Walked, Error> {
        let filter = self.scoped_query(filter);
        let mut queues = if filter.queues.is_empty() {
            self.store.queues().await?
        } else {
            filter.queues.clone()
        };
        queues.sort();
        queues.dedup();
        // A cursor is a place in the order of queue names: the walk goes on at the
        // first queue at or after it, whether or not a queue of that name exists (an
        // answer that told them apart would name other owners' queues to a tenant).
        let first = after.map_or(0, |c| queues.partition_point(|q| *q < c.queue));
        let mut pos = after
            .filter(|c| queues.get(first) == Some(&c.queue))
            .map(|c| c.pos.clone());
        let mut walked = Walked {
            jobs: Vec::new(),
            examined: 0,
            next: None,
        };
        let rest = &queues[first..];
        for (i, queue) in rest.iter().enumerate() {
            let left = budget - walked.examined;
            let owner = filter.owner.as_deref();
            let order = WalkOrder::OldestFirst;
            let walk = self
                .walk_queue(queue, owner, order, pos.take(), left, &mut |job| {
                    if filter.matches(&job) {
                        walked.jobs.push(job);
                    }
                })
                .await?;
            walked.examined += walk.read;
            let at = if !walk.finished {
                walk.at.unwrap_or(IndexPos {
                    created_ms: 0,
                    id: String::new(),
                })
            } else if walked.examined >= budget && i + 1 < rest.len() {
                // Out of budget at this queue's end: the cursor is past its last entry,
                // so it names a queue this walk read, never the next one (which may be
                // another owner's).
                IndexPos {
                    created_ms: i64::MAX,
                    id: String::new(),
                }
            } else {
                continue;
            };
            walked.next = Some(Cursor {
                queue: queue.clone(),
                pos: at,
            });
            return Ok(walked);
        }
        Ok(walked)
    }

    /// Walks one queue's index from `pos` to its end, or until `budget` entries are
    /// read, in steps of at most [`MAX_WALK_STEP`], passing every job read to `keep`.
    async fn walk_queue(
        &self,
        queue: &str,
        owner: Option<&str>,
        order: WalkOrder,
        mut pos: Option<IndexPos>,
        budget: usize,
        keep: &mut impl FnMut(Job),
    ) -> Result<QueueWalk, Error> {
        let mut read = 0;
        loop {
            if read >= budget {
                return Ok(QueueWalk {
                    read,
                    finished: false,
                    at: pos,
                });
            }
            let step = self
                .store
                .walk_jobs(
                    queue,
                    owner,
                    order,
                    pos.as_ref(),
                    (budget - read).min(MAX_WALK_STEP),
                )
                .await?;
            read += step.read;
            step.jobs.into_iter().for_each(&mut *keep);
            match step.next {
                Some(next) => pos = Some(next),
                None => {
                    return Ok(QueueWalk {
                        read,
                        finished: true,
                        at: None,
                    });
                }
            }
        }
    }

    /// The summaries (no input or result) of `ids` visible to this producer. With
    /// `queue`, they are read there (one pipelined read); without, each id not seen
    /// before is looked for in every known queue, unless that takes more than
    /// `max_lookups` reads (ids × queues), which is [`FoundMany::TooWide`] with nothing
    /// read: a request's cost must not grow with the number of queues others create.
    ///
    /// ```no_run
    /// # async fn demo(producer: tether_producer::Producer, ids: Vec<tether_producer::JobId>) -> Result<(), tether_producer::Error> {
    /// use tether_producer::FoundMany;
    /// match producer.find_many(&ids, Some("mail"), 20_000).await? {
    ///     FoundMany::Jobs { jobs, missing } => println!("{} found, {missing} not", jobs.len()),
    ///     FoundMany::TooWide { lookups } => println!("{lookups} lookups: name the queue"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn find_many(
        &self,
        ids: &[JobId],
        queue: Option<&str>,
        max_lookups: usize,
    ) -> Result<FoundMany, Error> {
        let mut by_queue: std::collections::BTreeMap<String, Vec<JobId>> = Default::default();
        match queue {
            // The store checks the name before it becomes a key.
            Some(queue) => {
                by_queue.insert(queue.to_owned(), ids.to_vec());
            }
            None => {
                let mut unknown = Vec::new();
                {
                    let known = self.queue_of.lock().unwrap();
                    for id in ids {
                        match known.get(id) {
                            Some(q) => by_queue.entry(q.clone()).or_default().push(*id),
                            None => unknown.push(*id),
                        }
                    }
                }
                if !unknown.is_empty() {
                    let queues = self.store.queues().await?;
                    let lookups = unknown.len().saturating_mul(queues.len());
                    if lookups > max_lookups {
                        return Ok(FoundMany::TooWide { lookups });
                    }
                    let found = self.store.locate_jobs(&unknown, &queues).await?;
                    for (id, queue) in unknown.into_iter().zip(found) {
                        if let Some(queue) = queue {
                            by_queue.entry(queue).or_default().push(id);
                        }
                    }
                }
            }
        }
        let mut jobs = Vec::with_capacity(ids.len());
        for (queue, ids) in &by_queue {
            for chunk in ids.chunks(MAX_WALK_STEP) {
                let read = self.store.job_summaries(queue, chunk).await?;
                jobs.extend(read.into_iter().filter(|job| self.visible(job)));
            }
        }
        Ok(FoundMany::Jobs {
            missing: ids.len() - jobs.len(),
            jobs,
        })
    }

    /// Applies `action` to `job` (a job a walk or a `get` read: its queue is known).
    pub async fn apply(&self, action: BulkAction, job: &Job) -> Result<(), Error> {
        self.remember(job.id, &job.queue);
        match action {
            BulkAction::Cancel => self.cancel(job.id).await.map(|_| ()),
            BulkAction::Retry => self.retry(job.id).await,
            BulkAction::Delete => self.delete(job.id).await,
        }
    }

    /// Deletes a finished job now, with its index entries, as retention would at its
    /// expiry. An unfinished job is `InvalidState` (cancel it first).
    pub async fn delete(&self, id: JobId) -> Result<(), Error> {
        let queue = self.locate(id).await?;
        Ok(self
            .store
            .delete_final(&queue, id, self.owner.as_deref())
            .await?)
    }

    /// Jobs whose id starts with `text` (case-insensitive; a whole id is looked up
    /// directly) or whose name contains it (case-insensitive), newest first, at most
    /// `limit`. At most about `budget` jobs are looked at, the newest of each queue
    /// (this producer's, when scoped), the budget shared between the queues (at least
    /// 200 each); `complete` in the answer says whether that was all of them.
    pub async fn search(&self, text: &str, limit: usize, budget: usize) -> Result<Found, Error> {
        let needle = text.trim().to_lowercase();
        if let Ok(id) = needle.parse::<JobId>() {
            let job = self.get(id).await?;
            return Ok(Found {
                jobs: job.into_iter().collect(),
                complete: true,
            });
        }
        let filter = self.scoped_query(&ListQuery::default());
        let queues = self.store.queues().await?;
        let per_queue = (budget / queues.len().max(1)).max(200);
        let mut found = Found {
            jobs: Vec::new(),
            complete: true,
        };
        for queue in &queues {
            let owner = filter.owner.as_deref();
            let order = WalkOrder::NewestFirst;
            let walk = self
                .walk_queue(queue, owner, order, None, per_queue, &mut |job| {
                    let named = job
                        .name
                        .as_ref()
                        .is_some_and(|n| n.to_lowercase().contains(&needle));
                    if named || job.id.to_string().starts_with(&needle) {
                        found.jobs.push(job);
                    }
                })
                .await?;
            found.complete &= walk.finished;
        }
        found
            .jobs
            .sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        found.jobs.truncate(limit);
        for job in &found.jobs {
            self.remember(job.id, &job.queue);
        }
        Ok(found)
    }
}

impl Producer {
    /// `queue`'s jobs created and finished per interval of `width`, the last `buckets`
    /// intervals (see [`tether_store::Store::throughput`]). It counts every owner's
    /// jobs: a scoped producer is refused (`NotPermitted`).
    pub async fn throughput(
        &self,
        queue: &str,
        buckets: usize,
        width: std::time::Duration,
    ) -> Result<Throughput, Error> {
        if self.owner.is_some() {
            return Err(Error::NotPermitted(
                "a queue's throughput counts every owner's jobs",
            ));
        }
        Ok(self.store.throughput(queue, buckets, width).await?)
    }
}

/// Where a walk of one queue stopped.
struct QueueWalk {
    read: usize,
    /// The queue was read to its end.
    finished: bool,
    /// Where it stopped, when it did not finish (`None`: before the first entry).
    at: Option<IndexPos>,
}

/// What [`Producer::search`] found.
#[derive(Debug, Clone)]
pub struct Found {
    pub jobs: Vec<Job>,
    /// Every job of every queue was looked at (none past the per-queue bound).
    pub complete: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_and_hostile_ones_are_refused() {
        let id = JobId::new().to_string();
        let text = format!("images/1700000000000/{id}");
        let cursor: Cursor = text.parse().unwrap();
        assert_eq!(cursor.queue, "images");
        assert_eq!(cursor.to_string(), text);
        let start: Cursor = "images/0/".parse().unwrap();
        assert_eq!(start.pos.id, "");
        for bad in [
            "",
            "images",
            "images/12",
            "images/-1/x",
            "images/abc/",
            &format!("images/1/{id}x"),
            &format!("bad queue/1/{id}"),
            &format!("{}/1/{id}", "q".repeat(10_000)),
        ] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad:?}");
        }
    }
}
