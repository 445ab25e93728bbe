//! Listing jobs with filters, sorting and marker pagination.
//!
//! Order by creation walks each queue's `jobs` index (creation ms, then id) in
//! batches — or, for one owner, that owner's index in the queue — and, beside it, the
//! stream's `n` and `w` entries: jobs enqueued straight onto the stream, which enter `jobs`
//! only when they leave it (their entry ids are their creation times); other sort keys
//! read the matching summaries and sort in memory.
//! Either way the order is total (ties broken by id), so a marker never skips
//! or repeats a job.

use std::cmp::Ordering;
use std::collections::HashMap;

use tether_model::{Job, JobId, Status};

use crate::codec::{self, Fields, SUMMARY_FIELDS};
use crate::keys::QueueKeys;
use crate::scripts::SCRIPTS;
use crate::{Store, StoreError};

/// What to sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    #[default]
    CreatedAt,
    UpdatedAt,
    Status,
    Type,
    Id,
}

/// Sort direction; newest first by default, as Glance lists tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortDir {
    Asc,
    #[default]
    Desc,
}

/// A list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Queues to list; empty means every known queue.
    pub queues: Vec<String>,
    pub status: Option<Status>,
    pub job_type: Option<String>,
    /// Only this owner's jobs.
    pub owner: Option<String>,
    /// Only dead jobs (failed with attempts exhausted).
    pub dead_only: bool,
    /// Only jobs of this priority.
    pub priority: Option<u8>,
    /// Only jobs of this fairness group.
    pub group: Option<String>,
    pub sort_key: SortKey,
    pub sort_dir: SortDir,
    pub limit: usize,
    /// Start after this job.
    pub marker: Option<JobId>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            queues: Vec::new(),
            status: None,
            job_type: None,
            owner: None,
            dead_only: false,
            priority: None,
            group: None,
            sort_key: SortKey::default(),
            sort_dir: SortDir::default(),
            limit: 25,
            marker: None,
        }
    }
}

/// One page of summaries (input and result left out).
#[derive(Debug, Clone)]
pub struct Page {
    pub jobs: Vec<Job>,
    /// Pass as `marker` for the next page; `None` on the last page.
    pub next_marker: Option<JobId>,
}

const BATCH: isize = 256;

/// Longest owner name a job can have (see `JobSpec::validate`).
const MAX_OWNER: usize = 256;

/// One job's summary fields (in `SUMMARY_FIELDS` order) and its lease deadline.
type SummaryRow = (Vec<Option<Vec<u8>>>, Option<f64>);

impl ListQuery {
    /// Whether `job` passes the query's filters (not its marker).
    pub fn matches(&self, job: &Job) -> bool {
        self.status.is_none_or(|s| s == job.status)
            && self.job_type.as_ref().is_none_or(|t| *t == job.job_type)
            && self
                .owner
                .as_ref()
                .is_none_or(|o| job.owner.as_ref() == Some(o))
            && (!self.dead_only || job.dead)
            && self.priority.is_none_or(|p| p == job.priority)
            && self
                .group
                .as_ref()
                .is_none_or(|g| job.group.as_ref() == Some(g))
    }

    /// Whether `job` belongs on a page after `marker`.
    fn wanted(&self, marker: Option<&Job>, job: &Job) -> bool {
        marker.is_none_or(|m| self.compare(m, job) == Ordering::Less) && self.matches(job)
    }

    fn compare(&self, a: &Job, b: &Job) -> Ordering {
        let by_key = match self.sort_key {
            SortKey::CreatedAt | SortKey::Id => Ordering::Equal,
            SortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
            SortKey::Status => a.status.as_str().cmp(b.status.as_str()),
            SortKey::Type => a.job_type.cmp(&b.job_type),
        };
        let ord = match self.sort_key {
            SortKey::Id => a.id.cmp(&b.id),
            _ => by_key
                .then(a.created_at.cmp(&b.created_at))
                .then(a.id.cmp(&b.id)),
        };
        if self.sort_dir == SortDir::Desc {
            ord.reverse()
        } else {
            ord
        }
    }
}

impl Store {
    /// Lists jobs. An unknown marker is `NotFound`.
    pub async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let queues = if query.queues.is_empty() {
            self.queues().await?
        } else {
            query.queues.clone()
        };
        if query.owner.as_ref().is_some_and(|o| o.len() > MAX_OWNER) {
            // No job can have such an owner (specs are refused): nothing to read.
            return Ok(Page {
                jobs: Vec::new(),
                next_marker: None,
            });
        }
        let marker = match query.marker {
            Some(id) => {
                let queue = self
                    .find_queue(id)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
                // Another owner's job is not a marker: answered as if it did not exist,
                // or its place in the order would tell what it is.
                let job = self
                    .get(&queue, id)
                    .await?
                    .filter(|job| query.owner.is_none() || job.owner == query.owner)
                    .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
                Some(job)
            }
            None => None,
        };
        let limit = query.limit.max(1);
        let mut found = Vec::new();
        for queue in &queues {
            // By creation, each queue contributes at most limit + 1 jobs past the marker.
            let cap = if query.sort_key == SortKey::CreatedAt {
                Some(limit + 1)
            } else {
                None
            };
            found.extend(self.scan_queue(queue, query, marker.as_ref(), cap).await?);
        }
        found.sort_by(|a, b| query.compare(a, b));
        let more = found.len() > limit;
        found.truncate(limit);
        let next_marker = if more {
            found.last().map(|j| j.id)
        } else {
            None
        };
        Ok(Page {
            jobs: found,
            next_marker,
        })
    }

    /// Matching summaries of one queue past `marker`, in the query's order when `cap` is set
    /// (then at least the first `cap` of them, possibly more).
    async fn scan_queue(
        &self,
        queue: &str,
        query: &ListQuery,
        marker: Option<&Job>,
        cap: Option<usize>,
    ) -> Result<Vec<Job>, StoreError> {
        // Jobs enqueued straight onto the stream are in `jobs` only once they leave it
        // (docs/STORAGE.md); an owner's index holds them from the start. All are pending.
        let unindexed_may_match = query.owner.is_none()
            && !query.dead_only
            && query.status.is_none_or(|s| s == Status::Pending);
        if !unindexed_may_match {
            return self.scan_index(queue, query, marker, cap).await;
        }
        // The stream first: a job claimed between the two reads is then found twice
        // (the index's reading, the newer, is kept) rather than not at all.
        let from_stream = self.scan_stream(queue, query, marker, cap).await?;
        let mut out = self.scan_index(queue, query, marker, cap).await?;
        let indexed: std::collections::HashSet<JobId> = out.iter().map(|j| j.id).collect();
        out.extend(from_stream.into_iter().filter(|j| !indexed.contains(&j.id)));
        Ok(out)
    }

    /// The jobs of the queue's index (`jobs`, or the owner's), as `scan_queue`.
    async fn scan_index(
        &self,
        queue: &str,
        query: &ListQuery,
        marker: Option<&Job>,
        cap: Option<usize>,
    ) -> Result<Vec<Job>, StoreError> {
        let keys = QueueKeys::new(queue);
        // One owner's list walks that owner's index: its cost follows the owner's jobs.
        let index = match &query.owner {
            Some(owner) => keys.owner_jobs(owner),
            None => keys.jobs().to_owned(),
        };
        let desc = query.sort_dir == SortDir::Desc;
        let mut out = Vec::new();
        let mut start: isize = 0;
        loop {
            let mut conn = self.conn();
            let ids: Vec<String> = if desc {
                redis::cmd("ZRANGE")
                    .arg(&index)
                    .arg(start)
                    .arg(start + BATCH - 1)
                    .arg("REV")
                    .query_async(&mut conn)
                    .await?
            } else {
                redis::cmd("ZRANGE")
                    .arg(&index)
                    .arg(start)
                    .arg(start + BATCH - 1)
                    .query_async(&mut conn)
                    .await?
            };
            if ids.is_empty() {
                break;
            }
            start += ids.len() as isize;
            for job in self.summaries(queue, &ids).await? {
                if query.wanted(marker, &job) {
                    out.push(job);
                    if cap.is_some_and(|c| out.len() >= c) {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The pending jobs the stream's `n` and `w` entries imply (not yet in `jobs`), as
    /// `scan_queue`. Their entry ids are their creation times, so with `cap` the stream
    /// is read in the query's direction from the marker's millisecond, and past the
    /// `cap`-th match only to the end of its millisecond (entries of one millisecond are
    /// in enqueue order, not id order): sorted, the first `cap` are exact.
    async fn scan_stream(
        &self,
        queue: &str,
        query: &ListQuery,
        marker: Option<&Job>,
        cap: Option<usize>,
    ) -> Result<Vec<Job>, StoreError> {
        let keys = QueueKeys::new(queue);
        let desc = query.sort_dir == SortDir::Desc;
        let mut from = match marker.filter(|_| cap.is_some()) {
            Some(m) => m.created_at.timestamp_millis().max(0).to_string(),
            None if desc => "+".to_owned(),
            None => "-".to_owned(),
        };
        let mut out = Vec::new();
        let mut full_at: Option<u64> = None;
        let to = if desc { "-" } else { "+" };
        loop {
            let entries = self
                .stream_page(&keys, desc, &from, to, BATCH as usize)
                .await?;
            let Some((last_id, _)) = entries.last() else {
                break;
            };
            from = format!("({last_id}");
            let last_ms = entry_ms(last_id);
            let ids: Vec<String> = entries.iter().filter_map(|(_, job)| job.clone()).collect();
            for job in self.summaries(queue, &ids).await? {
                // A claimed or cancelled job left the stream (its entry with it): a job
                // read here that is no longer pending is found in `jobs` instead.
                if job.status == Status::Pending && query.wanted(marker, &job) {
                    out.push(job);
                }
            }
            if let Some(c) = cap {
                if full_at.is_none() && out.len() >= c {
                    full_at = out.last().map(|j| j.created_at.timestamp_millis() as u64);
                }
                if full_at.is_some_and(|ms| last_ms != Some(ms)) {
                    break;
                }
            }
            if entries.len() < BATCH as usize {
                break;
            }
        }
        if let Some(c) = cap {
            out.sort_by(|a, b| query.compare(a, b));
            out.truncate(c);
        }
        Ok(out)
    }

    /// The summaries of `ids` of one queue (those still there), in the order given:
    /// one pipelined read of their fields and lease deadlines; then, for jobs with no
    /// record, one read of `waiting` (layout 4); then, for jobs found in neither, one
    /// more read of their records: a job leaves `waiting` for its record, never the
    /// other way, so one claimed between the first two reads is found by the third.
    pub(crate) async fn summaries(
        &self,
        queue: &str,
        ids: &[String],
    ) -> Result<Vec<Job>, StoreError> {
        let ids: Vec<JobId> = ids.iter().filter_map(|id| id.parse().ok()).collect();
        let mut rows = self.summary_rows(queue, &ids).await?;
        let unrecorded: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].is_none()).collect();
        if !unrecorded.is_empty() {
            let wanted: Vec<JobId> = unrecorded.iter().map(|&i| ids[i]).collect();
            let mut again = Vec::new();
            for (&i, waiting) in unrecorded
                .iter()
                .zip(self.waiting_records(queue, &wanted).await?)
            {
                match waiting {
                    Some(fields) => rows[i] = Some((fields, None)),
                    None => again.push(i),
                }
            }
            let wanted: Vec<JobId> = again.iter().map(|&i| ids[i]).collect();
            for (&i, row) in again.iter().zip(self.summary_rows(queue, &wanted).await?) {
                rows[i] = row;
            }
        }
        // (A job found nowhere expired or was deleted after the read that named it.)
        ids.iter()
            .zip(rows)
            .filter_map(|(id, row)| row.map(|(fields, deadline)| (id, fields, deadline)))
            .map(|(id, fields, deadline)| fields.into_job(*id, queue, deadline))
            .collect()
    }

    /// The listing's fields and the lease deadline of each of `ids`, `None` for a job
    /// with no record: one pipelined read.
    async fn summary_rows(
        &self,
        queue: &str,
        ids: &[JobId],
    ) -> Result<Vec<Option<(Fields, Option<i64>)>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = QueueKeys::new(queue);
        let mut pipe = redis::pipe();
        for id in ids {
            let id = id.to_string();
            pipe.cmd("HMGET").arg(keys.job(&id)).arg(SUMMARY_FIELDS);
            pipe.zscore(keys.leases(), id);
        }
        let flat: Vec<redis::Value> = pipe.query_async(&mut self.conn()).await?;
        let mut rows = Vec::with_capacity(ids.len());
        let mut it = flat.into_iter();
        while let (Some(fields), Some(score)) = (it.next(), it.next()) {
            let (values, deadline): SummaryRow = (
                redis::from_redis_value(fields)?,
                redis::from_redis_value(score)?,
            );
            let map: HashMap<String, Vec<u8>> = SUMMARY_FIELDS
                .iter()
                .zip(values)
                .filter_map(|(f, v)| v.map(|v| ((*f).to_owned(), v)))
                .collect();
            rows.push((!map.is_empty()).then(|| (Fields(map), deadline.map(|d| d as i64))));
        }
        Ok(rows)
    }

    /// The summaries' fields of the waiting jobs among `ids` (layout 4), in order,
    /// `None` for the others: their entry id and type, without their input, which a
    /// listing does not show (`waiting_heads.lua`, a call per 1,000 ids).
    pub(crate) async fn waiting_records(
        &self,
        queue: &str,
        ids: &[JobId],
    ) -> Result<Vec<Option<Fields>>, StoreError> {
        let keys = QueueKeys::new(queue);
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(1_000) {
            let heads: Vec<Option<Vec<u8>>> = self
                .idempotent(|| async {
                    let mut inv = Self::invocation(&SCRIPTS.waiting_heads, &keys);
                    for id in chunk {
                        inv.arg(&codec::raw_id(id)[..]);
                    }
                    Ok(inv.invoke_async(&mut self.conn()).await?)
                })
                .await?;
            out.extend(
                heads
                    .iter()
                    .map(|v| v.as_deref().and_then(Fields::of_waiting)),
            );
        }
        Ok(out)
    }
}

/// The milliseconds of a stream entry id (`<ms>-<seq>`).
fn entry_ms(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}
