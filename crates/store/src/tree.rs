//! Task trees: children recorded by their running parent (`lua/adopt.lua`) and enqueued in
//! their own queue, which may live on another node.

use std::collections::BTreeMap;

use tether_model::tree::{ParentLink, child_id};
use tether_model::{JobId, JobSpec, SpecError, Status};

use crate::keys::QueueKeys;
use crate::worker_ops::{Lease, LeaseError};
use crate::{SCRIPTS, Store, StoreError};

/// A child as its parent's list holds it: `<child id> <child queue>`.
pub(crate) fn parse_kid(member: &str) -> Option<(JobId, &str)> {
    let (id, queue) = member.split_once(' ')?;
    Some((id.parse().ok()?, queue))
}

/// A child's `st`, `pg`, `wt`, `ec` as read.
type ChildRow = (Option<String>, Option<u8>, Option<u32>, Option<String>);

/// Who records a child in its parent's list: the parent's lease holder, or an external
/// parent's driver (`token` `ext:<owner>`; no index: after the last child).
struct Adopter<'a> {
    queue: &'a str,
    parent: JobId,
    token: &'a str,
    index: Option<u64>,
}

/// A spawned child: its id, and whether this call enqueued it (false: an earlier run of
/// the parent had).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spawned {
    pub id: JobId,
    pub created: bool,
}

/// A child's state as its parent sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub id: JobId,
    pub queue: String,
    /// `None` when the record is gone (expired).
    pub status: Option<Status>,
    pub progress: u8,
    pub weight: u32,
    pub error_code: Option<String>,
}

impl Child {
    /// Whether the child has ended (success, failure or cancelled); an expired one has.
    pub fn is_final(&self) -> bool {
        self.status.is_none_or(|s| s.is_final())
    }

    /// The children's progress rolled up ([`tether_model::tree::roll_up`]): a final
    /// child counts 100.
    pub fn rolled_up(children: &[Child]) -> u8 {
        tether_model::tree::roll_up(
            children
                .iter()
                .map(|c| (if c.is_final() { 100 } else { c.progress }, c.weight)),
        )
    }
}

impl Store {
    /// Spawns `spec` as a child of the job `lease` holds, under `key` (a handler's key, or
    /// `#<index>`): recorded in the parent's list, then enqueued with an id derived from
    /// the parent and the key, so a parent that runs again spawns each child once. The
    /// child gets the parent's owner. `index` orders the parent's list.
    pub async fn spawn(
        &self,
        lease: &Lease,
        key: &str,
        index: u64,
        spec: JobSpec,
    ) -> Result<Spawned, LeaseError> {
        let adopter = Adopter {
            queue: &lease.queue,
            parent: lease.id,
            token: lease.token.as_str(),
            index: Some(index),
        };
        match self.spawn_as(&adopter, key, spec).await? {
            Ok(spawned) => Ok(spawned),
            Err(_) => Err(LeaseError::Lost),
        }
    }

    /// Spawns `spec` as a child of the external task `parent` (in `queue`), for its
    /// driver: as [`spawn`](Self::spawn), with the task's owner check instead of a lease
    /// (`owner`: the caller's; `None` for an administrator). The child is listed after
    /// the task's other children; spawning the same `key` again returns the same child.
    /// `NotFound` (not the caller's), `NotSupported` (not an external task) or
    /// `InvalidState` (it ended) write nothing.
    pub async fn spawn_under_external(
        &self,
        queue: &str,
        parent: JobId,
        owner: Option<&str>,
        key: &str,
        spec: JobSpec,
    ) -> Result<Spawned, StoreError> {
        tether_model::validate_queue_name(queue)?;
        let token = format!("ext:{}", owner.unwrap_or(""));
        let adopter = Adopter {
            queue,
            parent,
            token: &token,
            index: None,
        };
        match self.spawn_as(&adopter, key, spec).await? {
            Ok(spawned) => Ok(spawned),
            Err(word) => Err(crate::reply::refusal("adopt", &word, &parent.to_string())),
        }
    }

    /// Records the child in its parent's list, then enqueues it; `Ok(Err(word))` when the
    /// parent's script refused (the word says why).
    async fn spawn_as(
        &self,
        adopter: &Adopter<'_>,
        key: &str,
        mut spec: JobSpec,
    ) -> Result<Result<Spawned, String>, StoreError> {
        if key.is_empty() || key.len() > tether_model::tree::MAX_CHILD_KEY {
            return Err(StoreError::from(SpecError::TooLong {
                field: "child key",
                max: tether_model::tree::MAX_CHILD_KEY,
            }));
        }
        spec.validate()?;
        let id = child_id(adopter.parent, key);
        let keys = QueueKeys::new(adopter.queue);
        let member = format!("{id} {}", spec.queue);
        let index = adopter.index.map(|i| i.to_string()).unwrap_or_default();
        let (word, root, owner): (String, String, String) = self
            .idempotent(|| async {
                let mut inv = Self::invocation(&SCRIPTS.adopt, &keys);
                inv.arg(adopter.parent.to_string())
                    .arg(adopter.token)
                    .arg(&index)
                    .arg(&member);
                Ok(inv.invoke_async(&mut self.conn()).await?)
            })
            .await?;
        if word != "OK" {
            return Ok(Err(word));
        }
        spec.parent = Some(ParentLink {
            id: adopter.parent,
            queue: adopter.queue.to_owned(),
            root: root.parse().map_err(|e| StoreError::decode("root", e))?,
        });
        if !owner.is_empty() {
            spec = spec.owned_by(&owner);
        }
        let done = self.enqueue_as(&spec, id).await?;
        if !done.written_now {
            // Spawned by an earlier run of the parent: a child that failed for good runs
            // again (a retried parent re-runs its failed children, not the others).
            let key = QueueKeys::new(&spec.queue).job(&id.to_string());
            let (st, dead): (Option<String>, Option<String>) = redis::cmd("HMGET")
                .arg(&key)
                .arg(&["st", "dead"])
                .query_async(&mut self.conn())
                .await?;
            if st.as_deref() == Some("failure") && dead.as_deref() == Some("1") {
                match self.retry_dead(&spec.queue, id, None).await {
                    Ok(()) | Err(StoreError::InvalidState(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(Ok(Spawned {
            id,
            created: done.written_now,
        }))
    }

    /// Cancels every unfinished job below `id` (in `queue`), level by level: pending
    /// ones at once, running ones at their worker's next heartbeat (as `cancel` does).
    /// A child that had already finished is not descended into. `owner` restricts it to
    /// that owner's jobs; `force` cancels non-cancelable ones too (admins). Returns how
    /// many were cancelled or asked to stop. Not atomic across queues: a canceller that
    /// dies half-way leaves the rest running until a worker's maintenance finishes it
    /// (see [`cascades`](Self::cascades)), or cancelling again goes on.
    pub async fn cancel_subtree(
        &self,
        queue: &str,
        id: JobId,
        owner: Option<&str>,
        force: bool,
    ) -> Result<usize, StoreError> {
        use futures::StreamExt;
        let mut cancelled = 0;
        let mut level = vec![(queue.to_owned(), id)];
        while !level.is_empty() {
            let mut next = Vec::new();
            for (q, parent) in &level {
                let kids = self.child_ids(q, *parent, None, usize::MAX / 2).await?;
                let has_kids = !kids.is_empty();
                let answers: Vec<_> = futures::stream::iter(kids)
                    .map(|(kid, kq)| async move {
                        let answer = self.cancel_with(&kq, kid, owner, force).await;
                        (kid, kq, answer)
                    })
                    .buffer_unordered(32)
                    .collect()
                    .await;
                for (kid, kq, answer) in answers {
                    match answer {
                        Ok(_) => {
                            cancelled += 1;
                            next.push((kq, kid));
                        }
                        // Final (nothing below it runs for it), gone, or not cancelable.
                        Err(
                            StoreError::InvalidState(_)
                            | StoreError::NotFound(_)
                            | StoreError::NotSupported,
                        ) => {}
                        Err(e) => return Err(e),
                    }
                }
                // Its children are cancelled: the cascade its own cancel recorded (a
                // node with children) is done. One left by a walk that died before
                // here is finished by a worker's maintenance.
                if has_kids {
                    self.cascade_done(q, *parent).await?;
                }
            }
            level = next;
        }
        Ok(cancelled)
    }

    /// The cancelled parents of `queue` whose cascade is recorded (by the cancel) and not
    /// yet marked done, oldest first, at most `limit`: a canceller that died half-way
    /// leaves its parent here, and a worker's maintenance finishes the cascade.
    pub async fn cascades(&self, queue: &str, limit: usize) -> Result<Vec<JobId>, StoreError> {
        tether_model::validate_queue_name(queue)?;
        let key = QueueKeys::new(queue).cascade();
        let ids: Vec<String> = self
            .idempotent(|| async {
                Ok(redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(limit.max(1) - 1)
                    .query_async(&mut self.conn())
                    .await?)
            })
            .await?;
        Ok(ids.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// Marks the cascade of `id`'s cancel done (its subtree was walked).
    pub async fn cascade_done(&self, queue: &str, id: JobId) -> Result<(), StoreError> {
        tether_model::validate_queue_name(queue)?;
        let key = QueueKeys::new(queue).cascade();
        let _: i64 = self
            .idempotent(|| async {
                Ok(redis::cmd("ZREM")
                    .arg(&key)
                    .arg(id.to_string())
                    .query_async(&mut self.conn())
                    .await?)
            })
            .await?;
        Ok(())
    }

    /// The children of `parent` (in `queue`) in spawn order, after the child `after`
    /// (its id and queue; exclusive), at most `limit`: ids and queues only.
    pub async fn child_ids(
        &self,
        queue: &str,
        parent: JobId,
        after: Option<(JobId, &str)>,
        limit: usize,
    ) -> Result<Vec<(JobId, String)>, StoreError> {
        tether_model::validate_queue_name(queue)?;
        let key = QueueKeys::new(queue).kids(&parent.to_string());
        let mut conn = self.conn();
        let start: isize = match after {
            None => 0,
            Some((after, after_queue)) => {
                let rank: Option<isize> = redis::cmd("ZRANK")
                    .arg(&key)
                    .arg(format!("{after} {after_queue}"))
                    .query_async(&mut conn)
                    .await?;
                rank.map(|r| r + 1)
                    .ok_or_else(|| StoreError::NotFound(after.to_string()))?
            }
        };
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(start)
            .arg(start.saturating_add(limit as isize) - 1)
            .query_async(&mut conn)
            .await?;
        Ok(members
            .iter()
            .filter_map(|m| parse_kid(m))
            .map(|(id, q)| (id, q.to_owned()))
            .collect())
    }

    /// Every child of `parent` with its status, progress and weight: one pipelined read
    /// per child queue (a queue is one slot).
    pub async fn children(&self, queue: &str, parent: JobId) -> Result<Vec<Child>, StoreError> {
        let ids = self.child_ids(queue, parent, None, usize::MAX / 2).await?;
        let mut by_queue: BTreeMap<&str, Vec<JobId>> = BTreeMap::new();
        for (id, q) in &ids {
            by_queue.entry(q.as_str()).or_default().push(*id);
        }
        let mut states = BTreeMap::new();
        for (q, kids) in by_queue {
            let keys = QueueKeys::new(q);
            for chunk in kids.chunks(crate::MAX_BATCH) {
                let mut pipe = redis::pipe();
                for id in chunk {
                    pipe.cmd("HMGET")
                        .arg(keys.job(&id.to_string()))
                        .arg(&["st", "pg", "wt", "ec"]);
                }
                let rows: Vec<ChildRow> = pipe.query_async(&mut self.conn()).await?;
                for (id, row) in chunk.iter().zip(rows) {
                    states.insert(*id, row);
                }
            }
        }
        Ok(ids
            .into_iter()
            .map(|(id, queue)| {
                let (st, pg, wt, ec) = states.remove(&id).unwrap_or_default();
                let status = st.and_then(|s| s.parse().ok());
                Child {
                    id,
                    queue,
                    status,
                    // A final status implies 100 (finalize writes no `pg`).
                    progress: if status.is_some_and(Status::is_final) {
                        100
                    } else {
                        pg.unwrap_or(0).min(100)
                    },
                    weight: wt.unwrap_or(1).max(1),
                    error_code: ec,
                }
            })
            .collect())
    }
}
