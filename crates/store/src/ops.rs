//! What an operator's console reads and does across many jobs: a walk over a queue's
//! jobs in bounded steps (bulk actions, search), the delete of a finished job, and a
//! queue's recent throughput from the indexes it already keeps.

use tether_model::{Job, JobId};

use crate::codec;
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

/// Most stream entries a throughput reads (newest first; older ones of the window are
/// not counted): about 10 ms of Redis time in pages of 1,000.
pub const THROUGHPUT_STREAM_ENTRIES: usize = 20_000;

/// How many index pages of tied scores a step skips before it gives up (a step never
/// loops unbounded on a million jobs created in one millisecond).
const MAX_TIE_PAGES: usize = 64;

/// A place in a walk: creation ms and id.
type Place = (i64, String);

/// Whether `a` comes before `b` in the walk's order (creation ms, then id).
fn precedes(newest_first: bool, a: (i64, &str), b: (i64, &str)) -> bool {
    if newest_first { a > b } else { a < b }
}

/// What one side of a walk's step read: its first places after the cursor, and the
/// last place up to which it read everything (`None`: it read to its end).
struct Side {
    places: Vec<Place>,
    covered: Option<Place>,
}

impl Store {
    /// One step of a walk over `queue`'s jobs (`owner`'s index when given: its cost
    /// follows that owner's jobs) in creation order, after `after`, at most `count`
    /// (≤ [`MAX_WALK_STEP`]) entries.
    ///
    /// A queue's walk reads its index of jobs and, beside it, the stream's `n` and `w` entries
    /// (jobs enqueued straight onto the stream enter the index only when they leave it;
    /// an entry's id is the job's creation time). An owner's index holds every job of
    /// that owner from its enqueue.
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
        let count = count.clamp(1, MAX_WALK_STEP);
        let newest_first = order == WalkOrder::NewestFirst;
        // The stream first: a job claimed between the two reads leaves the stream for
        // the index, so it is read twice (and kept once) rather than missed.
        let stream = match owner {
            Some(_) => None,
            None => Some(self.walk_stream(&keys, newest_first, after, count).await?),
        };
        let index = match owner {
            Some(owner) => keys.owner_jobs(owner),
            None => keys.jobs().to_owned(),
        };
        let indexed = self
            .walk_index(queue, &index, newest_first, after, count)
            .await?;
        let sides: Vec<Side> = stream.into_iter().chain([indexed]).collect();
        // The merge holds only places both sides read everything up to.
        let covered = sides
            .iter()
            .filter_map(|s| s.covered.as_ref())
            .fold(None::<&Place>, |acc, c| match acc {
                Some(a) if precedes(newest_first, (a.0, &a.1), (c.0, &c.1)) => Some(a),
                _ => Some(c),
            })
            .cloned();
        let within = |p: &Place| {
            covered
                .as_ref()
                .is_none_or(|c| !precedes(newest_first, (c.0, &c.1), (p.0, &p.1)))
        };
        let mut places: Vec<Place> = sides
            .into_iter()
            .flat_map(|s| s.places)
            .filter(|p| within(p))
            .collect();
        places.sort_by(|a, b| {
            let ord = (a.0, &a.1).cmp(&(b.0, &b.1));
            if newest_first { ord.reverse() } else { ord }
        });
        places.dedup();
        let more = covered.is_some() || places.len() > count;
        places.truncate(count);
        let next = if !more {
            None
        } else {
            // Past the last place read, or (nothing read) up to where both sides read.
            places.last().or(covered.as_ref()).map(|(ms, id)| IndexPos {
                created_ms: *ms,
                id: id.clone(),
            })
        };
        let ids: Vec<String> = places.into_iter().map(|(_, id)| id).collect();
        let read = ids.len();
        let jobs = self.summaries(queue, &ids).await?;
        Ok(WalkStep { jobs, read, next })
    }

    /// The first `count` members of a sorted set of jobs (scored by creation ms) after
    /// `after` in the walk's order.
    async fn walk_index(
        &self,
        queue: &str,
        index: &str,
        newest_first: bool,
        after: Option<&IndexPos>,
        count: usize,
    ) -> Result<Side, StoreError> {
        let (mut low, mut high) = (0, i64::MAX);
        if let Some(pos) = after {
            if newest_first {
                high = high.min(pos.created_ms);
            } else {
                low = low.max(pos.created_ms);
            }
        }
        // Entries at the cursor's own score up to the cursor were read by an earlier step.
        let passed = |score: i64, id: &str| {
            after.is_some_and(|pos| !precedes(newest_first, (pos.created_ms, &pos.id), (score, id)))
        };
        // The first page is the step; pages that only hold entries an earlier step read
        // (ties at the cursor's time) are skipped a MAX_WALK_STEP at a time.
        let (mut offset, mut page) = (0, count);
        for _ in 0..MAX_TIE_PAGES {
            let mut cmd = redis::cmd("ZRANGE");
            cmd.arg(index);
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
            let fresh: Vec<Place> = entries
                .into_iter()
                .map(|(id, score)| (score as i64, id))
                .filter(|(score, id)| !passed(*score, id))
                .collect();
            if fresh.is_empty() && full {
                page = MAX_WALK_STEP;
                continue;
            }
            // Entries past the first `count` fresh ones are left for the next step.
            let more = full || fresh.len() > count;
            let places: Vec<Place> = fresh.into_iter().take(count).collect();
            let covered = places.last().filter(|_| more).cloned();
            return Ok(Side { places, covered });
        }
        Err(StoreError::Reply(format!(
            "more than {} jobs of {queue} were created in one millisecond",
            MAX_TIE_PAGES * MAX_WALK_STEP
        )))
    }

    /// The first `count` jobs the stream's `n` and `w` entries imply after `after` in the
    /// walk's order. Entries are in creation order by millisecond but, within one, in
    /// enqueue order rather than id order: the read goes on to the end of the
    /// millisecond of its `count`-th job and sorts. Other entries (`j`: jobs indexed
    /// already; `d`: wake-ups) are passed over, at most `MAX_TIE_PAGES` pages of them
    /// per step: then the step covers the milliseconds it read to their end.
    /// One page of the queue's stream from `from` towards `to` (`XRANGE`, or
    /// `XREVRANGE` when `newest_first`): at most `count` entries with their fields.
    pub(crate) async fn stream_page(
        &self,
        keys: &QueueKeys,
        newest_first: bool,
        from: &str,
        to: &str,
        count: usize,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let mut cmd = redis::cmd(if newest_first { "XREVRANGE" } else { "XRANGE" });
        cmd.arg(keys.stream())
            .arg(from)
            .arg(to)
            .arg("COUNT")
            .arg(count);
        let entries: Vec<(String, Vec<Vec<u8>>)> = self
            .idempotent(|| async { Ok(cmd.query_async(&mut self.conn()).await?) })
            .await?;
        Ok(entries
            .into_iter()
            .map(|(entry, fields)| (entry, unindexed_job(&fields)))
            .collect())
    }

    async fn walk_stream(
        &self,
        keys: &QueueKeys,
        newest_first: bool,
        after: Option<&IndexPos>,
        count: usize,
    ) -> Result<Side, StoreError> {
        let passed = |ms: i64, id: &str| {
            after.is_some_and(|pos| !precedes(newest_first, (pos.created_ms, &pos.id), (ms, id)))
        };
        // From the cursor's millisecond (all of it), towards the stream's other end.
        let mut from = match after {
            Some(pos) => pos.created_ms.to_string(),
            None if newest_first => "+".to_owned(),
            None => "-".to_owned(),
        };
        let to = if newest_first { "-" } else { "+" };
        let mut places: Vec<Place> = Vec::new();
        let mut last_ms = None;
        for _ in 0..MAX_TIE_PAGES {
            let entries = self
                .stream_page(keys, newest_first, &from, to, MAX_WALK_STEP)
                .await?;
            let Some((last_id, _)) = entries.last() else {
                return Ok(Side::complete(places, newest_first));
            };
            from = format!("({last_id}");
            last_ms = entry_ms(last_id);
            let full = entries.len() == MAX_WALK_STEP;
            for (entry, job) in entries {
                if let (Some(id), Some(ms)) = (job, entry_ms(&entry))
                    && !passed(ms, &id)
                {
                    places.push((ms, id));
                }
            }
            if !full {
                return Ok(Side::complete(places, newest_first));
            }
            // Past the millisecond of the `count`-th job: no later entry comes before it.
            if places.len() >= count && last_ms != Some(places[count - 1].0) {
                let mut side = Side::complete(places, newest_first);
                side.places.truncate(count);
                side.covered = side.places.last().cloned();
                return Ok(side);
            }
        }
        // Out of pages: every millisecond before the last one read was read whole; the
        // cursor (ms, "") passes all of it for the next step.
        let Some(ms) = last_ms else {
            return Ok(Side::complete(places, newest_first));
        };
        let edge = if newest_first { ms + 1 } else { ms };
        if after.is_some_and(|pos| !precedes(newest_first, (pos.created_ms, &pos.id), (edge, ""))) {
            return Err(StoreError::Reply(format!(
                "more than {} stream entries of one millisecond",
                MAX_TIE_PAGES * MAX_WALK_STEP
            )));
        }
        let mut side = Side::complete(places, newest_first);
        side.places
            .retain(|p| if newest_first { p.0 > ms } else { p.0 < ms });
        side.covered = Some((edge, String::new()));
        Ok(side)
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
        // A job has a record, or waits with none (layout 4): per queue, both asked,
        // `waiting` first (a job leaves it for its record, never the other way, so a
        // job that exists throughout is found by one of the two).
        let found: Vec<Vec<bool>> = self
            .idempotent(|| {
                futures::future::try_join_all(queues.iter().map(|queue| {
                    let queue_keys = QueueKeys::new(queue);
                    let mut pipe = redis::pipe();
                    for (id, text) in ids.iter().zip(&keys) {
                        pipe.hexists(queue_keys.waiting(), &codec::raw_id(id)[..])
                            .exists(queue_keys.job(text));
                    }
                    async move {
                        let answers: Vec<bool> = pipe.query_async(&mut self.conn()).await?;
                        Ok::<_, StoreError>(
                            answers
                                .chunks(2)
                                .map(|pair| pair.iter().any(|b| *b))
                                .collect(),
                        )
                    }
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
    /// retention), one `ZCOUNT` each, in one pipeline, plus the jobs still waiting on
    /// the stream since their enqueue (not in the index yet: its `n` and `w` entries, whose ids
    /// are creation times), read newest first, at most [`THROUGHPUT_STREAM_ENTRIES`]
    /// of the window's entries. Jobs deleted or expired since are not counted; the
    /// finished counts assume the workers' retention is this store's.
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
        let mut created: Vec<u64> = counts.iter().step_by(2).copied().collect();
        // Read after the index: a job claimed in between is counted twice rather than
        // not at all (the chart is a picture, the walk is exact).
        let mut from = (end - 1).to_string();
        let mut left = THROUGHPUT_STREAM_ENTRIES;
        while left > 0 {
            let page = left.min(MAX_WALK_STEP * 2);
            let entries = self
                .stream_page(&keys, true, &from, &start.to_string(), page)
                .await?;
            left -= entries.len();
            for (entry, job) in &entries {
                if let (Some(ms), Some(_)) = (entry_ms(entry), job)
                    && (start..end).contains(&ms)
                {
                    created[((ms - start) / width_ms) as usize] += 1;
                }
            }
            match entries.last() {
                Some((last, _)) if entries.len() == page => from = format!("({last}"),
                _ => break,
            }
        }
        Ok(Throughput {
            start_ms: start,
            width_ms,
            created,
            finished: counts.iter().skip(1).step_by(2).copied().collect(),
        })
    }
}

impl Side {
    /// `places` sorted in the walk's order, read to the end of their source.
    fn complete(mut places: Vec<Place>, newest_first: bool) -> Side {
        places.sort_by(|a, b| {
            let ord = a.cmp(b);
            if newest_first { ord.reverse() } else { ord }
        });
        Side {
            places,
            covered: None,
        }
    }
}

/// The milliseconds of a stream entry id (`<ms>-<seq>`).
fn entry_ms(id: &str) -> Option<i64> {
    id.split('-').next()?.parse().ok()
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

/// The job of a stream entry that stands for an unindexed job (not yet in `jobs`): an
/// `n=<id>` entry (layout 3) or a `w=<16 bytes>` one (layout 4, a waiting job).
fn unindexed_job(fields: &[Vec<u8>]) -> Option<String> {
    match fields {
        [kind, id] if kind == b"n" => String::from_utf8(id.clone()).ok(),
        [kind, raw] if kind == b"w" => codec::waiting_id(raw).map(|id| id.to_string()),
        _ => None,
    }
}
