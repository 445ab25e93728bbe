//! The worker's side of storage: claim, heartbeat, progress, checkpoint,
//! finish, release, and the maintenance any worker runs (reap, promote, expire).

use std::time::Duration;

use redis::AsyncCommands;
use tether_model::{ErrorCode, JobId, Phase, RetryPolicy};

use crate::conn::{Conn, MAX_CLUSTER_WAIT, Topology};
use crate::keys::{self, QueueKeys};
use crate::{SCRIPTS, Store, StoreError, codec};

/// The right to write a job's outcome: the job and the epoch it was claimed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub queue: String,
    pub id: JobId,
    /// The fencing token: changes on every claim and every reap.
    pub epoch: u64,
}

/// A job leased to this worker, with what its handler needs.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub lease: Lease,
    /// This attempt's number (1 for the first run).
    pub attempts: u32,
    pub max_attempts: u32,
    pub job_type: String,
    /// The input as stored (MessagePack).
    pub input: Vec<u8>,
    /// `Some(Check)` when an earlier attempt checkpointed after `handle`.
    pub phase: Option<Phase>,
    /// The handler's progress object from the last checkpoint.
    pub checkpoint: Option<Vec<u8>>,
    pub timeout: Option<Duration>,
    pub backoff: RetryPolicy,
    /// When the job became ready (Redis clock, ms): its enqueue or its `run_at`.
    pub ready_at_ms: i64,
    /// When this attempt started (Redis clock, ms).
    pub started_at_ms: i64,
    /// When the lease lapses unless renewed (Redis clock, ms).
    pub lease_deadline_ms: i64,
}

/// A lease renewal's answer for one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewStatus {
    Renewed,
    /// Renewed, and a producer asked to cancel: stop the handler.
    CancelRequested,
    /// Another claim or the reaper took the job: stop and write nothing.
    Lost,
}

impl RenewStatus {
    fn from_code(code: i64) -> Self {
        match code {
            1 => RenewStatus::Renewed,
            2 => RenewStatus::CancelRequested,
            _ => RenewStatus::Lost,
        }
    }
}

/// How an attempt ended, as the lease holder reports it.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Success with the result (MessagePack).
    Success(Vec<u8>),
    /// An error; retried after `retry_delay` when `retryable` and attempts remain.
    Error {
        retryable: bool,
        retry_delay: Duration,
        message: String,
        code: ErrorCode,
        info: Vec<String>,
    },
    /// Stopped on a cancel request.
    Cancelled { message: String },
}

/// What `finish` recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishOutcome {
    /// Success or cancelled recorded.
    Recorded,
    /// The error was recorded and the job scheduled for another attempt.
    Retrying,
    /// The error was recorded and the job failed for good.
    Dead,
    /// This lease had already recorded its outcome (a resend after a lost reply).
    AlreadyRecorded,
}

/// A lease-fenced write failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The lease is no longer ours; nothing was written.
    #[error("lease lost: the job was reclaimed")]
    Lost,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<redis::RedisError> for LeaseError {
    fn from(e: redis::RedisError) -> Self {
        LeaseError::Store(e.into())
    }
}

/// A live worker as it describes itself in Redis.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkerInfo {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub queues: Vec<String>,
    /// The job types it has handlers for; `None` from workers that predate the field
    /// (they may run any type).
    #[serde(default)]
    pub types: Option<Vec<String>>,
    pub concurrency: usize,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// In-flight jobs: queue, id, and lease deadline.
    pub jobs: Vec<(String, JobId, chrono::DateTime<chrono::Utc>)>,
}

type ClaimRow = (
    String,
    u64,
    u32,
    u32,
    String,
    Vec<u8>,
    String,
    Vec<u8>,
    String,
    String,
    i64,
    String,
);

impl Store {
    /// Leases up to `count` ready jobs of `queue` to `worker` for `ttl`, in one script call.
    pub async fn claim(
        &self,
        queue: &str,
        worker: &str,
        count: usize,
        ttl: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        match self.claim_once(queue, worker, count, ttl).await {
            Err(StoreError::Redis(e))
                if e.code() == Some("NOGROUP") || e.to_string().contains("NOGROUP") =>
            {
                // Redis lost the stream (restart without persistence, flush): set the queue up again.
                self.recreate_queue(queue).await?;
                self.claim_once(queue, worker, count, ttl).await
            }
            other => other,
        }
    }

    async fn claim_once(
        &self,
        queue: &str,
        worker: &str,
        count: usize,
        ttl: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        let keys = QueueKeys::new(queue);
        let mut inv = Self::invocation(&SCRIPTS.claim, &keys);
        inv.arg(count.max(1))
            .arg(worker)
            .arg(ttl.as_millis() as u64);
        let (now, deadline, rows): (i64, i64, Vec<ClaimRow>) = {
            let reply: Vec<redis::Value> = inv.invoke_async(&mut self.conn()).await?;
            let mut it = reply.into_iter();
            let now = it
                .next()
                .map(redis::from_redis_value)
                .transpose()?
                .unwrap_or(0);
            let deadline = it
                .next()
                .map(redis::from_redis_value)
                .transpose()?
                .unwrap_or(0);
            let rows = it
                .map(redis::from_redis_value)
                .collect::<Result<Vec<ClaimRow>, _>>()?;
            (now, deadline, rows)
        };
        rows.into_iter()
            .map(
                |(
                    id,
                    epoch,
                    attempts,
                    max,
                    job_type,
                    input,
                    phase,
                    cp,
                    timeout,
                    backoff,
                    created,
                    run_at,
                )| {
                    Ok(Claimed {
                        lease: Lease {
                            queue: queue.to_owned(),
                            id: id.parse().map_err(|e| StoreError::decode("id", e))?,
                            epoch,
                        },
                        attempts,
                        max_attempts: max,
                        job_type,
                        input,
                        phase: phase.parse().ok(),
                        checkpoint: (!cp.is_empty()).then_some(cp),
                        timeout: timeout.parse().ok().map(Duration::from_millis),
                        backoff: codec::decode_backoff(&backoff),
                        ready_at_ms: run_at.parse().unwrap_or(created).max(created),
                        started_at_ms: now,
                        lease_deadline_ms: deadline,
                    })
                },
            )
            .collect()
    }

    /// Renews many leases of one queue in one call (the heartbeat). Returns the new deadline too.
    pub async fn renew(
        &self,
        queue: &str,
        leases: &[(JobId, u64)],
        ttl: Duration,
    ) -> Result<(i64, Vec<RenewStatus>), StoreError> {
        let keys = QueueKeys::new(queue);
        let mut inv = Self::invocation(&SCRIPTS.renew, &keys);
        inv.arg(ttl.as_millis() as u64);
        for (id, epoch) in leases {
            inv.arg(id.to_string()).arg(*epoch);
        }
        let reply: Vec<i64> = inv.invoke_async(&mut self.conn()).await?;
        let deadline = reply.first().copied().unwrap_or(0);
        Ok((
            deadline,
            reply
                .into_iter()
                .skip(1)
                .map(RenewStatus::from_code)
                .collect(),
        ))
    }

    /// Reports progress (clamped by the caller), renewing the lease.
    pub async fn progress(
        &self,
        lease: &Lease,
        ttl: Duration,
        progress: u8,
        message: Option<&str>,
        eta_ms: Option<i64>,
    ) -> Result<RenewStatus, StoreError> {
        let keys = QueueKeys::new(&lease.queue);
        let mut inv = Self::invocation(&SCRIPTS.progress, &keys);
        inv.arg(lease.id.to_string())
            .arg(lease.epoch)
            .arg(ttl.as_millis() as u64)
            .arg(progress.min(100))
            .arg(message.unwrap_or(""))
            .arg(eta_ms.map(|e| e.to_string()).unwrap_or_default());
        let (code, _deadline): (i64, i64) = inv.invoke_async(&mut self.conn()).await?;
        Ok(RenewStatus::from_code(code))
    }

    /// Saves the Heat loop's phase and progress object.
    pub async fn checkpoint(
        &self,
        lease: &Lease,
        phase: Phase,
        progress_object: &[u8],
    ) -> Result<RenewStatus, StoreError> {
        let keys = QueueKeys::new(&lease.queue);
        let mut inv = Self::invocation(&SCRIPTS.checkpoint, &keys);
        inv.arg(lease.id.to_string())
            .arg(lease.epoch)
            .arg(phase.as_str())
            .arg(progress_object);
        let code: i64 = inv.invoke_async(&mut self.conn()).await?;
        Ok(RenewStatus::from_code(code))
    }

    /// Records the attempt's outcome, fenced by the lease. Safe to resend after a lost reply.
    pub async fn finish(
        &self,
        lease: &Lease,
        outcome: &Outcome,
    ) -> Result<FinishOutcome, LeaseError> {
        let mut results = self.finish_many(&lease.queue, &[(lease, outcome)]).await?;
        results.pop().unwrap_or(Err(LeaseError::Lost))
    }

    /// Records the outcomes of many attempts of one queue in one script call; each is
    /// fenced by its own lease and answered on its own. Safe to resend as a whole.
    pub async fn finish_many(
        &self,
        queue: &str,
        outcomes: &[(&Lease, &Outcome)],
    ) -> Result<Vec<Result<FinishOutcome, LeaseError>>, StoreError> {
        let keys = QueueKeys::new(queue);
        let mut inv = Self::invocation(&SCRIPTS.finish, &keys);
        inv.arg(self.config().retention.as_millis() as u64);
        for (lease, outcome) in outcomes {
            debug_assert_eq!(lease.queue, queue);
            inv.arg(lease.id.to_string()).arg(lease.epoch);
            match outcome {
                Outcome::Success(result) => inv
                    .arg("success")
                    .arg(result.as_slice())
                    .arg("")
                    .arg("")
                    .arg("")
                    .arg(""),
                Outcome::Cancelled { message } => inv
                    .arg("cancelled")
                    .arg(message)
                    .arg("")
                    .arg("")
                    .arg("")
                    .arg(""),
                Outcome::Error {
                    retryable,
                    retry_delay,
                    message,
                    code,
                    info,
                } => inv
                    .arg("error")
                    .arg(if *retryable { "1" } else { "0" })
                    .arg(retry_delay.as_millis() as u64)
                    .arg(if message.is_empty() {
                        code.as_str()
                    } else {
                        message
                    })
                    .arg(code.as_str())
                    .arg(serde_json::to_string(info).unwrap_or_else(|_| "[]".into())),
            };
        }
        let words: Vec<String> = inv.invoke_async(&mut self.conn()).await?;
        Ok(words
            .iter()
            .map(|word| match word.as_str() {
                "OK" => Ok(FinishOutcome::Recorded),
                "RETRY" => Ok(FinishOutcome::Retrying),
                "DEAD" => Ok(FinishOutcome::Dead),
                "ALREADY" => Ok(FinishOutcome::AlreadyRecorded),
                "NOT_REQUESTED" => Err(LeaseError::Store(StoreError::InvalidState(
                    tether_model::Status::Processing,
                ))),
                _ => Err(LeaseError::Lost),
            })
            .collect())
    }

    /// Hands leases back at once (graceful shutdown); the attempts are not counted.
    pub async fn release(&self, queue: &str, leases: &[(JobId, u64)]) -> Result<usize, StoreError> {
        self.release_after(queue, leases, Duration::ZERO).await
    }

    /// Hands leases back, ready again after `delay` (a job this worker cannot run, so
    /// that another worker gets it first); the attempts are not counted.
    pub async fn release_after(
        &self,
        queue: &str,
        leases: &[(JobId, u64)],
        delay: Duration,
    ) -> Result<usize, StoreError> {
        if leases.is_empty() {
            return Ok(0);
        }
        let keys = QueueKeys::new(queue);
        let mut inv = Self::invocation(&SCRIPTS.release, &keys);
        inv.arg(self.config().retention.as_millis() as u64)
            .arg(delay.as_millis() as u64);
        for (id, epoch) in leases {
            inv.arg(id.to_string()).arg(*epoch);
        }
        Ok(inv.invoke_async(&mut self.conn()).await?)
    }

    /// Takes back up to `limit` jobs whose lease lapsed; returns their ids.
    pub async fn reap(&self, queue: &str, limit: usize) -> Result<Vec<JobId>, StoreError> {
        let keys = QueueKeys::new(queue);
        let mut inv = Self::invocation(&SCRIPTS.reap, &keys);
        inv.arg(limit)
            .arg(self.config().retention.as_millis() as u64);
        let ids: Vec<String> = inv.invoke_async(&mut self.conn()).await?;
        Ok(ids.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// Makes due delayed jobs ready. Returns how many, and how long until the next one is due.
    pub async fn promote(
        &self,
        queue: &str,
        limit: usize,
    ) -> Result<(usize, Option<Duration>), StoreError> {
        let keys = QueueKeys::new(queue);
        let mut inv = Self::invocation(&SCRIPTS.promote, &keys);
        inv.arg(limit);
        let (promoted, next_ms): (usize, i64) = inv.invoke_async(&mut self.conn()).await?;
        Ok((
            promoted,
            (next_ms >= 0).then(|| Duration::from_millis(next_ms as u64)),
        ))
    }

    /// Deletes up to `limit` finished jobs past retention with their index entries.
    pub async fn expire(&self, queue: &str, limit: usize) -> Result<usize, StoreError> {
        let keys = QueueKeys::new(queue);
        let mut inv = Self::invocation(&SCRIPTS.expire, &keys);
        inv.arg(limit);
        Ok(inv.invoke_async(&mut self.conn()).await?)
    }

    /// Publishes this worker's self-description; it lapses after `ttl` unless refreshed.
    pub async fn put_worker(&self, info: &WorkerInfo, ttl: Duration) -> Result<(), StoreError> {
        let json = serde_json::to_string(info).map_err(|e| StoreError::decode("worker", e))?;
        let key = keys::worker(&info.id);
        let mut conn = self.conn();
        let _: () = conn.pset_ex(&key, json, ttl.as_millis() as u64).await?;
        let _: () = conn.sadd(keys::WORKERS, &info.id).await?;
        Ok(())
    }

    /// Removes this worker's self-description (clean exit).
    pub async fn remove_worker(&self, id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let _: () = conn.del(keys::worker(id)).await?;
        let _: () = conn.srem(keys::WORKERS, id).await?;
        Ok(())
    }

    /// Live workers; the ones whose description lapsed are forgotten.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, StoreError> {
        let mut conn = self.conn();
        let mut ids: Vec<String> = conn.smembers(keys::WORKERS).await?;
        ids.sort();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| keys::worker(id)).collect();
        let descriptions: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        let mut out = Vec::new();
        let mut lapsed = Vec::new();
        for (id, description) in ids.into_iter().zip(descriptions) {
            match description {
                // One unreadable registration (another version's, a stray write) must not
                // hide every other worker.
                Some(json) => match serde_json::from_str(&json) {
                    Ok(info) => out.push(info),
                    Err(e) => {
                        tracing::debug!(worker = %id, error = %e, "unreadable worker registration skipped")
                    }
                },
                None => lapsed.push(id),
            }
        }
        if !lapsed.is_empty() {
            let _: () = conn.srem(keys::WORKERS, lapsed).await?;
        }
        Ok(out)
    }

    /// A connection of its own for blocking waits (a blocked command would stall every
    /// call queued behind it on the shared connection).
    pub fn waiter(&self) -> Waiter {
        Waiter {
            topology: self.inner.topology.clone(),
            conn: None,
        }
    }
}

/// Waits for new work on a dedicated connection.
pub struct Waiter {
    topology: Topology,
    conn: Option<Conn>,
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiter")
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl Waiter {
    /// Blocks until `queue`'s ready stream holds an entry, or `timeout` passes.
    ///
    /// A claim leaves the stream empty of delivered entries (it deletes what it
    /// takes), so reading from the start sees exactly the entries added since:
    /// none can slip in unseen between a claim and this wait.
    pub async fn wait(&mut self, queue: &str, timeout: Duration) -> Result<bool, StoreError> {
        let timeout = timeout.min(MAX_CLUSTER_WAIT);
        let conn = match self.conn.as_mut() {
            Some(conn) => conn,
            None => self
                .conn
                .insert(self.topology.waiting_connection(MAX_CLUSTER_WAIT).await?),
        };
        let keys = QueueKeys::new(queue);
        let reply: redis::RedisResult<redis::Value> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(timeout.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(keys.stream())
            .arg("0-0")
            .query_async(conn)
            .await;
        match reply {
            Ok(redis::Value::Nil) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => {
                self.conn = None;
                Err(e.into())
            }
        }
    }
}
