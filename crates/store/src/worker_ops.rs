//! The worker's side of storage: claim, heartbeat, progress, checkpoint,
//! finish, release, and the maintenance any worker runs (reap, promote, expire).

use std::time::Duration;

use redis::AsyncCommands;
use tether_model::{ErrorCode, JobId, Phase, RetryPolicy, Status};

use crate::conn::{Conn, MAX_CLUSTER_WAIT, Topology};
use crate::keys::{self, QueueKeys};
use crate::{SCRIPTS, Store, StoreError, codec, reply};

/// The most jobs one script call handles; larger batches are sent in chunks of this size
/// (the scripts refuse more, and Lua cannot unpack much more in one command).
pub const MAX_BATCH: usize = 1000;

/// Job ids a script answered (a malformed one, which no script writes, is left out).
pub(crate) fn parse_ids(ids: &[String]) -> impl Iterator<Item = JobId> + '_ {
    ids.iter().filter_map(|id| id.parse().ok())
}

/// Runs `pass` with at most [`MAX_BATCH`] items asked each time until `limit` items were
/// seen or a pass saw fewer than it asked (nothing more is due); `merge` takes each
/// pass's answer. A pass answers how many items it saw, and what it did.
pub(crate) async fn in_chunks<T, Pass, Fut>(
    limit: usize,
    pass: Pass,
    mut merge: impl FnMut(T),
) -> Result<(), StoreError>
where
    Pass: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(usize, T), StoreError>>,
{
    let mut left = limit;
    while left > 0 {
        let asked = left.min(MAX_BATCH);
        let (seen, answer) = pass(asked).await?;
        merge(answer);
        if seen < asked {
            break;
        }
        left -= seen;
    }
    Ok(())
}

/// The right to write a job's outcome: the job and the token of the claim that leased it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub queue: String,
    pub id: JobId,
    /// The fencing token: changes on every claim and every reap.
    pub token: LeaseToken,
}

/// A lease's fencing token: the job's claim counter (its epoch) and the random nonce of
/// the claim call that issued it. Compare it, clone it, send it back; its text is not a
/// contract. The nonce keeps tokens unique where the counter alone repeats: a failover
/// that loses a claim's writes lets the next claim count to the same epoch again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseToken(String);

impl LeaseToken {
    /// The job's claim counter at this lease (1 for the first claim).
    pub fn epoch(&self) -> u64 {
        self.0
            .split('.')
            .next()
            .and_then(|e| e.parse().ok())
            .unwrap_or(0)
    }

    /// The token as the scripts compare it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A token as its text was shown (`<epoch>.<nonce>`); any text is accepted, and a text
/// no lease has is simply never the live token.
impl std::str::FromStr for LeaseToken {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(LeaseToken(s.to_owned()))
    }
}

impl std::fmt::Display for LeaseToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What one reap did: the jobs whose lease had lapsed, by what became of them, and the
/// lease entries that were stale (their job was no longer processing) and merely removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Back in the stream for another attempt (`LeaseExpired` on record).
    pub requeued: Vec<JobId>,
    /// Failed for good: the lapsed attempt was the last.
    pub failed: Vec<JobId>,
    /// Ended cancelled: a cancel had been requested.
    pub cancelled: Vec<JobId>,
    /// Stale lease entries removed; no job was taken back for them.
    pub stale: usize,
}

impl Reaped {
    /// How many jobs were taken back (stale entries not counted).
    pub fn len(&self) -> usize {
        self.requeued.len() + self.failed.len() + self.cancelled.len()
    }

    /// True when no job was taken back.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `id` was taken back.
    pub fn contains(&self, id: &JobId) -> bool {
        self.ids().any(|taken| taken == id)
    }

    /// Every job taken back.
    pub fn ids(&self) -> impl Iterator<Item = &JobId> {
        self.requeued
            .iter()
            .chain(&self.failed)
            .chain(&self.cancelled)
    }
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
#[non_exhaustive]
pub enum RenewStatus {
    Renewed,
    /// Renewed, and a producer asked to cancel: stop the handler.
    CancelRequested,
    /// Another claim or the reaper took the job: stop and write nothing.
    Lost,
}

/// How an attempt ended, as the lease holder reports it.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
#[non_exhaustive]
pub enum FinishOutcome {
    /// Success or cancelled recorded.
    Recorded,
    /// The error was recorded and the job scheduled for another attempt.
    Retrying,
    /// The error was recorded and the job failed for good.
    Dead,
    /// This lease had already recorded its outcome (a resend after a lost reply);
    /// `status` is the job's status now, which tells what was recorded (`Pending`: a
    /// retry was scheduled).
    AlreadyRecorded { status: Option<Status> },
}

/// A lease-fenced write failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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

/// The jobs of a claim's reply, flat (claim.lua): a job that never ran is two strings,
/// its id and the rest of its row; any other the number 12 and its twelve values.
fn claimed_rows(
    queue: &str,
    claim_id: &str,
    now: i64,
    deadline: i64,
    mut rest: &[redis::Value],
) -> Result<Vec<Claimed>, StoreError> {
    let mut jobs = Vec::new();
    while let Some((first, after)) = rest.split_first() {
        if let redis::Value::BulkString(id) = first {
            let Some((redis::Value::BulkString(packed), after)) = after.split_first() else {
                return Err(StoreError::decode("claim", "a job's id without its row"));
            };
            jobs.push(packed_row(queue, claim_id, now, deadline, id, packed)?);
            rest = after;
            continue;
        }
        let width = redis::from_redis_value_ref::<usize>(first)?;
        if width != FULL_ROW || after.len() < width {
            return Err(StoreError::decode(
                "claim",
                format!("a row of {width} values, {} left", after.len()),
            ));
        }
        let (row, after) = after.split_at(width);
        jobs.push(claimed_row(queue, claim_id, now, deadline, row)?);
        rest = after;
    }
    Ok(jobs)
}

/// The values of a claim's row for a job with an option, a phase or a checkpoint set.
const FULL_ROW: usize = 12;

/// A leased job with every option at its default: what a job that never ran is.
fn fresh_claimed(
    (queue, claim_id, now, deadline): (&str, &str, i64, i64),
    id: &str,
    epoch: &str,
    attempts: u32,
    job_type: String,
    input: Vec<u8>,
    created: i64,
) -> Result<Claimed, StoreError> {
    Ok(Claimed {
        lease: Lease {
            queue: queue.to_owned(),
            id: id.parse().map_err(|e| StoreError::decode("id", e))?,
            token: LeaseToken(format!("{epoch}.{claim_id}")),
        },
        attempts,
        max_attempts: tether_model::DEFAULT_MAX_ATTEMPTS,
        job_type,
        input,
        phase: None,
        checkpoint: None,
        timeout: None,
        backoff: RetryPolicy::default(),
        ready_at_ms: created,
        started_at_ms: now,
        lease_deadline_ms: deadline,
    })
}

/// A job that never ran: its id, and `<epoch> <attempts> <created> <type> <input>` in one
/// string (its input last: any bytes).
fn packed_row(
    queue: &str,
    claim_id: &str,
    now: i64,
    deadline: i64,
    id: &[u8],
    packed: &[u8],
) -> Result<Claimed, StoreError> {
    let malformed = || {
        StoreError::decode(
            "claim",
            "a job's row is not `epoch attempts created type input`",
        )
    };
    let mut parts = packed.splitn(5, |b| *b == b' ');
    let mut text = || {
        parts
            .next()
            .and_then(|part| std::str::from_utf8(part).ok())
            .ok_or_else(malformed)
    };
    let (epoch, attempts, created, job_type) = (text()?, text()?, text()?, text()?);
    let input = parts.next().ok_or_else(malformed)?;
    fresh_claimed(
        (queue, claim_id, now, deadline),
        std::str::from_utf8(id).map_err(|_| malformed())?,
        epoch,
        attempts.parse().map_err(|_| malformed())?,
        job_type.to_owned(),
        input.to_vec(),
        created.parse().map_err(|_| malformed())?,
    )
}

/// One job of a claim's reply in twelve values: `id, epoch, attempts, type, input,
/// created, max, timeout, backoff, phase, checkpoint, run_at` ('' for those unset).
fn claimed_row(
    queue: &str,
    claim_id: &str,
    now: i64,
    deadline: i64,
    values: &[redis::Value],
) -> Result<Claimed, StoreError> {
    // The value at `i`, `None` past the row's end (a short row is an error below).
    fn at<T: redis::FromRedisValue>(
        values: &[redis::Value],
        i: usize,
    ) -> Result<Option<T>, StoreError> {
        Ok(values.get(i).map(redis::from_redis_value_ref).transpose()?)
    }
    let text = |i: usize| at::<String>(values, i).map(Option::unwrap_or_default);
    let number = |i: usize| {
        at::<i64>(values, i)?
            .ok_or_else(|| StoreError::decode("claim", format!("a row of {} values", values.len())))
    };
    let created = number(5)?;
    let (max, timeout, backoff) = (text(6)?, text(7)?, text(8)?);
    let cp = at::<Vec<u8>>(values, 10)?.unwrap_or_default();
    let fresh = fresh_claimed(
        (queue, claim_id, now, deadline),
        &text(0)?,
        &text(1)?,
        u32::try_from(number(2)?).unwrap_or(0),
        text(3)?,
        at::<Vec<u8>>(values, 4)?.unwrap_or_default(),
        created,
    )?;
    Ok(Claimed {
        max_attempts: max.parse().unwrap_or(tether_model::DEFAULT_MAX_ATTEMPTS),
        phase: text(9)?.parse().ok(),
        checkpoint: (!cp.is_empty()).then_some(cp),
        timeout: timeout.parse().ok().map(Duration::from_millis),
        backoff: codec::decode_backoff(&backoff),
        ready_at_ms: text(11)?.parse().unwrap_or(created).max(created),
        ..fresh
    })
}

/// What one [`Store::claim_batch`] leased, and whether flow control held jobs back.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ClaimBatch {
    pub jobs: Vec<Claimed>,
    /// Set when a paused queue or a limit held back jobs that are ready.
    pub held_back: Option<HeldBack>,
}

/// Why and for how long flow control held a claim back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeldBack {
    /// Claim again after this long (a new entry in the stream does not mean the held
    /// jobs may start).
    pub retry_after: Duration,
    /// What held it back: `paused`, `concurrency`, `rate`, `group_concurrency` or
    /// `group_rate` (the first that bound).
    pub limit: String,
}

impl Store {
    /// Leases up to `count` ready jobs of `queue` to `worker` for `ttl`: one script call
    /// per [`MAX_BATCH`] jobs, until the stream has no more.
    ///
    /// Each call carries a random claim id, which becomes part of its leases' tokens.
    /// When a reply is lost (connection error, timeout) the call is sent again with the
    /// same id and answered with the jobs it leased the first time, so no job is left
    /// leased to nobody with an attempt spent. `worker` must be unique to the process.
    pub async fn claim(
        &self,
        queue: &str,
        worker: &str,
        count: usize,
        ttl: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        Ok(self.claim_batch(queue, worker, count, ttl).await?.jobs)
    }

    /// [`Store::claim`], also telling when flow control (a paused queue, a limit) held
    /// jobs back: the worker then claims again after [`ClaimBatch::held_back`] rather
    /// than waiting for new entries.
    pub async fn claim_batch(
        &self,
        queue: &str,
        worker: &str,
        count: usize,
        ttl: Duration,
    ) -> Result<ClaimBatch, StoreError> {
        let mut out = Vec::new();
        let mut held_back = None;
        let mut wanted = count.max(1);
        while wanted > 0 {
            let asked = wanted.min(MAX_BATCH);
            let claimed = self.claim_chunk(queue, worker, asked, ttl).await;
            let claimed = match (claimed, out.is_empty()) {
                (Ok((claimed, wait)), _) => {
                    held_back = wait;
                    claimed
                }
                (Err(e), true) => return Err(e),
                // Jobs are leased already: hand them over; the next claim gets the rest.
                (Err(e), false) => {
                    tracing::debug!(error = %e, "claim stopped after a partial batch");
                    break;
                }
            };
            let got = claimed.len();
            out.extend(claimed);
            if got < asked {
                break;
            }
            wanted -= got;
        }
        Ok(ClaimBatch {
            jobs: out,
            held_back,
        })
    }

    /// One claim call, resent with the same claim id when its reply is lost. A claim
    /// whose resends all failed is sent again by the worker's next claim of the queue.
    async fn claim_chunk(
        &self,
        queue: &str,
        worker: &str,
        count: usize,
        ttl: Duration,
    ) -> Result<(Vec<Claimed>, Option<HeldBack>), StoreError> {
        let unanswered = (queue.to_owned(), worker.to_owned());
        let claim_id = self
            .inner
            .unanswered_claims
            .lock()
            .unwrap()
            .remove(&unanswered)
            .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
        let once = || self.claim_once(queue, worker, count, ttl, &claim_id);
        let result = match self.idempotent(once).await {
            Err(e) if e.is_missing_group() => {
                // Redis lost the stream (restart without persistence, flush): set the queue up again.
                self.recreate_queue(queue).await?;
                self.idempotent(once).await
            }
            other => other,
        };
        if matches!(&result, Err(e) if e.is_retryable()) {
            // The claim may have leased jobs whose reply was lost.
            self.inner
                .unanswered_claims
                .lock()
                .unwrap()
                .insert(unanswered, claim_id);
        }
        result
    }

    async fn claim_once(
        &self,
        queue: &str,
        worker: &str,
        count: usize,
        ttl: Duration,
        claim_id: &str,
    ) -> Result<(Vec<Claimed>, Option<HeldBack>), StoreError> {
        let keys = QueueKeys::new(queue);
        let mut inv = Self::invocation(&SCRIPTS.claim, &keys);
        inv.arg(count.clamp(1, MAX_BATCH))
            .arg(worker)
            .arg(ttl.as_millis() as u64)
            .arg(claim_id)
            .arg(self.config().retention.as_millis() as u64);
        let reply: Vec<redis::Value> = inv.invoke_async(&mut self.conn()).await?;
        let mut it = reply.into_iter();
        let mut head = || it.next().map(redis::from_redis_value::<i64>).transpose();
        let (now, deadline, wait) = (
            head()?.unwrap_or(0),
            head()?.unwrap_or(0),
            head()?.unwrap_or(-1),
        );
        let reason: String = it
            .next()
            .map(redis::from_redis_value)
            .transpose()?
            .unwrap_or_default();
        let held_back = u64::try_from(wait).ok().map(|ms| HeldBack {
            retry_after: Duration::from_millis(ms),
            limit: reason,
        });
        let jobs = claimed_rows(queue, claim_id, now, deadline, it.as_slice())?;
        Ok((jobs, held_back))
    }

    /// Renews many leases of one queue (the heartbeat): one call per [`MAX_BATCH`] leases.
    /// Returns the new deadline (the earliest of the calls') and a status per lease, in order.
    pub async fn renew(
        &self,
        queue: &str,
        leases: &[(JobId, LeaseToken)],
        ttl: Duration,
    ) -> Result<(i64, Vec<RenewStatus>), StoreError> {
        let keys = QueueKeys::new(queue);
        let mut deadline = None;
        let mut statuses = Vec::with_capacity(leases.len());
        for chunk in leases.chunks(MAX_BATCH) {
            let mut inv = Self::invocation(&SCRIPTS.renew, &keys);
            inv.arg(ttl.as_millis() as u64);
            for (id, token) in chunk {
                inv.arg(id.to_string()).arg(token.as_str());
            }
            let (first, words): (i64, Vec<String>) = inv.invoke_async(&mut self.conn()).await?;
            deadline = Some(deadline.map_or(first, |d: i64| d.min(first)));
            for word in &words {
                statuses.push(reply::lease("renew", word)?);
            }
        }
        Ok((deadline.unwrap_or(0), statuses))
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
            .arg(lease.token.as_str())
            .arg(ttl.as_millis() as u64)
            .arg(progress.min(100))
            .arg(message.unwrap_or(""))
            .arg(eta_ms.map(|e| e.to_string()).unwrap_or_default());
        let (word, _deadline): (String, i64) = inv.invoke_async(&mut self.conn()).await?;
        reply::lease("progress", &word)
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
            .arg(lease.token.as_str())
            .arg(phase.as_str())
            .arg(progress_object);
        let word: String = inv.invoke_async(&mut self.conn()).await?;
        reply::lease("checkpoint", &word)
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

    /// Records the outcomes of many attempts of one queue, one script call per
    /// [`MAX_BATCH`]; each is fenced by its own lease and answered on its own, in order.
    /// Safe to resend as a whole.
    pub async fn finish_many(
        &self,
        queue: &str,
        outcomes: &[(&Lease, &Outcome)],
    ) -> Result<Vec<Result<FinishOutcome, LeaseError>>, StoreError> {
        let mut out = Vec::with_capacity(outcomes.len());
        for chunk in outcomes.chunks(MAX_BATCH) {
            out.extend(self.finish_chunk(queue, chunk).await?);
        }
        Ok(out)
    }

    async fn finish_chunk(
        &self,
        queue: &str,
        outcomes: &[(&Lease, &Outcome)],
    ) -> Result<Vec<Result<FinishOutcome, LeaseError>>, StoreError> {
        let keys = QueueKeys::new(queue);
        let mut inv = Self::invocation(&SCRIPTS.finish, &keys);
        inv.arg(self.config().retention.as_millis() as u64);
        for (lease, outcome) in outcomes {
            debug_assert_eq!(lease.queue, queue);
            inv.arg(lease.id.to_string()).arg(lease.token.as_str());
            match outcome {
                Outcome::Success(result) => inv.arg("success").arg(result.as_slice()),
                Outcome::Cancelled { message } => inv.arg("cancelled").arg(message),
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
        Ok(words.iter().map(|word| reply::finish(word)).collect())
    }

    /// Hands leases back at once (graceful shutdown); the attempts are not counted.
    pub async fn release(
        &self,
        queue: &str,
        leases: &[(JobId, LeaseToken)],
    ) -> Result<usize, StoreError> {
        self.release_after(queue, leases, Duration::ZERO).await
    }

    /// Hands leases back, ready again after `delay` (a job this worker cannot run, so
    /// that another worker gets it first; the delay doubles with each hand-back of the
    /// same job, up to 2 s); the attempts are not counted. One call per [`MAX_BATCH`]
    /// leases; returns how many were handed back.
    pub async fn release_after(
        &self,
        queue: &str,
        leases: &[(JobId, LeaseToken)],
        delay: Duration,
    ) -> Result<usize, StoreError> {
        let keys = QueueKeys::new(queue);
        let mut released = 0;
        for chunk in leases.chunks(MAX_BATCH) {
            let mut inv = Self::invocation(&SCRIPTS.release, &keys);
            inv.arg(self.config().retention.as_millis() as u64)
                .arg(delay.as_millis() as u64);
            for (id, token) in chunk {
                inv.arg(id.to_string()).arg(token.as_str());
            }
            let n: usize = inv.invoke_async(&mut self.conn()).await?;
            released += n;
        }
        Ok(released)
    }

    /// Takes back up to `limit` jobs whose lease lapsed (one call per [`MAX_BATCH`] lease
    /// entries) and says what became of them; stale lease entries are removed and counted
    /// apart.
    pub async fn reap(&self, queue: &str, limit: usize) -> Result<Reaped, StoreError> {
        let keys = &QueueKeys::new(queue);
        let mut out = Reaped::default();
        in_chunks(
            limit,
            |asked| async move {
                let mut inv = Self::invocation(&SCRIPTS.reap, keys);
                inv.arg(asked)
                    .arg(self.config().retention.as_millis() as u64);
                let (requeued, failed, cancelled, stale): (
                    Vec<String>,
                    Vec<String>,
                    Vec<String>,
                    usize,
                ) = inv.invoke_async(&mut self.conn()).await?;
                let seen = requeued.len() + failed.len() + cancelled.len() + stale;
                Ok((seen, (requeued, failed, cancelled, stale)))
            },
            |(requeued, failed, cancelled, stale)| {
                out.requeued.extend(parse_ids(&requeued));
                out.failed.extend(parse_ids(&failed));
                out.cancelled.extend(parse_ids(&cancelled));
                out.stale += stale;
            },
        )
        .await?;
        Ok(out)
    }

    /// Makes up to `limit` due delayed jobs ready (one call per [`MAX_BATCH`]). Returns how
    /// many, and how long until the next one is due.
    pub async fn promote(
        &self,
        queue: &str,
        limit: usize,
    ) -> Result<(usize, Option<Duration>), StoreError> {
        let keys = QueueKeys::new(queue);
        let mut total = 0;
        let mut left = limit;
        loop {
            let asked = left.clamp(1, MAX_BATCH);
            let mut inv = Self::invocation(&SCRIPTS.promote, &keys);
            inv.arg(asked);
            let (promoted, next_ms): (usize, i64) = inv.invoke_async(&mut self.conn()).await?;
            total += promoted;
            left = left.saturating_sub(promoted);
            if promoted < asked || left == 0 {
                return Ok((
                    total,
                    (next_ms >= 0).then(|| Duration::from_millis(next_ms as u64)),
                ));
            }
        }
    }

    /// Deletes up to `limit` finished jobs past retention with their index entries
    /// (one call per [`MAX_BATCH`]). Returns how many were deleted.
    pub async fn expire(&self, queue: &str, limit: usize) -> Result<usize, StoreError> {
        let keys = QueueKeys::new(queue);
        let mut total = 0;
        let mut left = limit;
        while left > 0 {
            let asked = left.min(MAX_BATCH);
            let mut inv = Self::invocation(&SCRIPTS.expire, &keys);
            inv.arg(asked);
            let deleted: usize = inv.invoke_async(&mut self.conn()).await?;
            total += deleted;
            if deleted < asked {
                break;
            }
            left -= deleted;
        }
        Ok(total)
    }

    /// Publishes this worker's self-description; it lapses after `ttl` unless refreshed.
    pub async fn put_worker(&self, info: &WorkerInfo, ttl: Duration) -> Result<(), StoreError> {
        let mut value = serde_json::to_value(info).map_err(|e| StoreError::decode("worker", e))?;
        // The layout this worker reads: a newer version refuses to start beside it when
        // it would write records the worker misreads (registrations without it are 1).
        value["layout"] = keys::LAYOUT_VERSION.into();
        let json = value.to_string();
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

    /// Every registered worker id, sorted, with its description (`None`: lapsed).
    pub(crate) async fn registrations(&self) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let mut conn = self.conn();
        let mut ids: Vec<String> = conn.smembers(keys::WORKERS).await?;
        ids.sort();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| keys::worker(id)).collect();
        // (The cluster client splits an MGET by slot.)
        let descriptions: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        Ok(ids.into_iter().zip(descriptions).collect())
    }

    /// Live workers; the ones whose description lapsed are forgotten.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, StoreError> {
        let mut out = Vec::new();
        let mut lapsed = Vec::new();
        for (id, description) in self.registrations().await? {
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
            let _: () = self.conn().srem(keys::WORKERS, lapsed).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn a_fresh_jobs_row_is_one_string_and_gets_the_defaults() {
        let id = JobId::new().to_string();
        // Its input is last and may hold any byte, spaces too.
        let mut packed = b"1 1 1700000000000 noop ".to_vec();
        packed.extend_from_slice(b"\xc2 a b\x00");
        let flat = [bulk(&id), Value::BulkString(packed)];
        let jobs = claimed_rows("q", "ab12", 1_700_000_000_005, 1_700_000_030_005, &flat).unwrap();
        let job = jobs.into_iter().next().unwrap();
        assert_eq!(job.lease.id.to_string(), id);
        assert_eq!(job.lease.token.0, "1.ab12");
        assert_eq!((job.attempts, job.max_attempts), (1, 5));
        assert_eq!(job.job_type, "noop");
        assert_eq!(job.input, b"\xc2 a b\x00");
        assert_eq!((job.phase, job.checkpoint, job.timeout), (None, None, None));
        assert_eq!(job.backoff, tether_model::RetryPolicy::default());
        assert_eq!(job.ready_at_ms, 1_700_000_000_000);
        assert_eq!(job.lease_deadline_ms, 1_700_000_030_005);
        // An empty input is an empty last part.
        let flat = [bulk(&id), bulk("2 2 1700000000000 noop ")];
        let jobs = claimed_rows("q", "ab12", 0, 0, &flat).unwrap();
        assert_eq!((jobs[0].attempts, jobs[0].input.len()), (2, 0));
    }

    #[test]
    fn a_malformed_string_row_is_an_error_not_a_panic() {
        let id = JobId::new().to_string();
        for (id, packed) in [
            (id.as_str(), ""),
            (id.as_str(), "1 1 1700000000000 noop"),
            (id.as_str(), "1 x 1700000000000 noop in"),
            (id.as_str(), "1 1 later noop in"),
            ("not-an-id", "1 1 1700000000000 noop in"),
        ] {
            assert!(
                claimed_rows("q", "ff", 0, 0, &[bulk(id), bulk(packed)]).is_err(),
                "{id} {packed:?}"
            );
        }
        // An id with nothing after it, or followed by no string.
        assert!(claimed_rows("q", "ff", 0, 0, &[bulk(&id)]).is_err());
        assert!(claimed_rows("q", "ff", 0, 0, &[bulk(&id), Value::Int(1)]).is_err());
    }

    #[test]
    fn a_row_of_twelve_values_carries_what_the_job_has_set() {
        let id = JobId::new().to_string();
        let row = [
            bulk(&id),
            bulk("7"),
            Value::Int(3),
            bulk("export"),
            bulk("in"),
            bulk("1700000000000"),
            bulk("2"),
            bulk("5000"),
            bulk("100,2,1000,0.5"),
            bulk("check"),
            bulk("cp"),
            bulk("1700000001000"),
        ];
        let job = claimed_row("q", "ff", 0, 0, &row).unwrap();
        assert_eq!(job.lease.token.0, "7.ff");
        assert_eq!((job.attempts, job.max_attempts), (3, 2));
        assert_eq!(job.phase, Some(tether_model::Phase::Check));
        assert_eq!(job.checkpoint.as_deref(), Some(&b"cp"[..]));
        assert_eq!(job.timeout, Some(Duration::from_millis(5000)));
        assert_eq!(job.backoff.cap_ms, 1000);
        assert_eq!(job.ready_at_ms, 1_700_000_001_000);
        // Only some of the six set: the others are '' and read as their defaults.
        let row = [
            bulk(&id),
            bulk("2"),
            Value::Int(2),
            bulk("t"),
            bulk(""),
            bulk("1700000000000"),
            bulk(""),
            bulk(""),
            bulk(""),
            bulk(""),
            bulk(""),
            bulk("1700000002000"),
        ];
        let job = claimed_row("q", "ff", 0, 0, &row).unwrap();
        assert_eq!(job.max_attempts, 5);
        assert_eq!((job.phase, job.checkpoint, job.timeout), (None, None, None));
        assert_eq!(job.ready_at_ms, 1_700_000_002_000);
    }

    #[test]
    fn a_short_row_is_an_error_not_a_panic() {
        let row = [bulk(&JobId::new().to_string()), bulk("1")];
        assert!(claimed_row("q", "ff", 0, 0, &row).is_err());
        // A count of values the reply does not hold, or a count that is no row's.
        let flat = [Value::Int(12), bulk(&JobId::new().to_string()), bulk("1")];
        assert!(claimed_rows("q", "ff", 0, 0, &flat).is_err());
        let flat = [Value::Int(2), bulk(&JobId::new().to_string()), bulk("1")];
        assert!(claimed_rows("q", "ff", 0, 0, &flat).is_err());
    }

    #[test]
    fn a_flat_reply_is_split_into_its_rows() {
        let (a, b, c) = (JobId::new(), JobId::new(), JobId::new());
        let mut flat = vec![bulk(&a.to_string()), bulk("1 1 1700000000000 t in")];
        flat.push(Value::Int(12));
        flat.extend(
            [
                &b.to_string(),
                "1",
                "1",
                "t",
                "",
                "1700000000000",
                "3",
                "",
                "",
                "",
                "",
                "",
            ]
            .map(bulk),
        );
        flat.extend([bulk(&c.to_string()), bulk("1 1 1700000000000 t ")]);
        let jobs = claimed_rows("q", "ff", 0, 0, &flat).unwrap();
        assert_eq!(jobs.len(), 3);
        assert_eq!((jobs[0].lease.id, jobs[0].max_attempts), (a, 5));
        assert_eq!((jobs[1].lease.id, jobs[1].max_attempts), (b, 3));
        assert_eq!(jobs[2].lease.id, c);
        assert!(claimed_rows("q", "ff", 0, 0, &[]).unwrap().is_empty());
    }
}
