//! The chaos runner: a mixed workload over several `tether worker` processes
//! while faults are injected, then Tether's promises checked from outside:
//!
//! * every acknowledged enqueue reaches a final state (lost = 0), the one expected;
//! * each job has one recorded outcome (the consistency check matches records,
//!   indexes and outcome counters);
//! * executions are counted from a ledger in a Redis that is never faulted:
//!   at least one per job, never more than the job's attempts; duplicates are
//!   reported, not hidden;
//! * no job stays with a dead or frozen worker longer than lease_ttl + one reap
//!   interval (plus scheduling slack).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tether_producer::{JobId, JobSpec, ListQuery, Producer, RetryPolicy, Status};
use tether_testkit::{
    Failover, FaultProxy, RedisCluster, RedisEndpoint, RedisOptions, RedisServer, eventually, poll,
};

use crate::{WorkerProcess, producer};

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` of a random worker (a fresh one replaces it).
    KillWorker,
    /// SIGSTOP of a random worker for 2.5 × lease_ttl, then SIGCONT.
    PauseWorker,
    /// `kill -9` of redis-server and a restart from its AOF (single Redis only).
    RestartRedis,
    /// `CLIENT KILL TYPE normal` on every master: all workers' connections cut.
    ClientKill,
    /// The proxy between workers and Redis resets every connection (single Redis only).
    ProxyDrop,
    /// The proxy holds all traffic for 1.5 × lease_ttl (single Redis only).
    ProxyStall,
    /// A queue's master hands over to its replica (cluster only).
    Failover(Failover),
    /// `FLUSHALL`: Redis loses everything. Not a fault Tether survives: it proves
    /// the checker reports lost jobs.
    FlushAll,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Failover(Failover::Graceful) => f.write_str("failover"),
            Fault::Failover(Failover::Kill) => f.write_str("failover-kill"),
            other => write!(f, "{}", format!("{other:?}").to_lowercase()),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosPlan {
    pub name: &'static str,
    pub jobs: usize,
    pub workers: usize,
    /// A 3-master, 3-replica cluster instead of one Redis (with AOF, behind a proxy).
    pub cluster: bool,
    /// Injected in turn, one every `fault_every`, while jobs are being enqueued.
    pub faults: Vec<Fault>,
    pub fault_every: Duration,
    /// Jobs are enqueued at an even rate over this long.
    pub enqueue_for: Duration,
    /// How long, after the last fault, every job may take to finish.
    pub drain_for: Duration,
    /// Flow-control limits set on every queue before the run; the jobs are spread
    /// over `groups` groups, and no recorded run may break a cap.
    pub limits: Option<ChaosLimits>,
}

/// Caps for a chaos run under flow control.
#[derive(Debug, Clone, Copy)]
pub struct ChaosLimits {
    pub concurrency: u32,
    pub group_concurrency: u32,
    pub groups: usize,
}

impl ChaosPlan {
    /// 600 jobs over 8 s, three workers, one Redis with AOF behind the proxy,
    /// one of `faults` (in turn) every 1.5 s, up to 60 s for the rest to finish.
    pub fn new(name: &'static str, faults: Vec<Fault>) -> ChaosPlan {
        ChaosPlan {
            name,
            jobs: 600,
            workers: 3,
            cluster: false,
            faults,
            fault_every: Duration::from_millis(1500),
            enqueue_for: Duration::from_secs(8),
            drain_for: Duration::from_secs(60),
            limits: None,
        }
    }
}

pub const LEASE_TTL: Duration = Duration::from_secs(1);
pub const REAP_INTERVAL: Duration = Duration::from_millis(250);
/// The promise: a lease lapses within `LEASE_TTL` of its worker's death, and the
/// next reap comes within one `REAP_INTERVAL` (which has ±20% jitter).
pub const RECOVERY_BOUND: Duration =
    Duration::from_millis(LEASE_TTL.as_millis() as u64 + REAP_INTERVAL.as_millis() as u64 * 6 / 5);
/// Process scheduling and polling on a busy 2-core machine; the runner asserts
/// `RECOVERY_BOUND + SLACK` and prints that sum with its parts.
pub const SLACK: Duration = Duration::from_secs(1);
const QUEUES: [&str; 3] = ["chaos-a", "chaos-b", "chaos-c"];

/// What a run measured.
#[derive(Debug, Default)]
pub struct ChaosReport {
    pub name: &'static str,
    pub jobs: usize,
    pub acknowledged: usize,
    pub faults: BTreeMap<String, usize>,
    /// Acknowledged jobs not final (or gone) at the end.
    pub lost: Vec<JobId>,
    /// Final, but not in the state their kind ends in.
    pub unexpected: Vec<String>,
    /// Consistency-check findings.
    pub inconsistencies: Vec<String>,
    /// Ledger checks: a job with no execution, or more executions than attempts.
    pub execution_errors: Vec<String>,
    pub executions: usize,
    pub duplicate_executions: usize,
    /// Longest time a dead or frozen worker's job stayed with it.
    pub worst_recovery: Duration,
    /// Longest time from the end of a Redis-side fault to the next recorded outcome.
    pub worst_resume: Duration,
    /// Moments when more recorded runs overlapped than a cap allows (from every
    /// job's started_at and finished_at).
    pub cap_violations: Vec<String>,
    /// The most recorded runs that overlapped, in a queue and in one group.
    pub peak_running: (usize, usize),
    pub elapsed: Duration,
}

impl ChaosReport {
    /// Panics with the whole report unless every promise held.
    pub fn assert_promises(&self) {
        let bound = RECOVERY_BOUND + SLACK;
        assert!(
            self.lost.is_empty()
                && self.unexpected.is_empty()
                && self.inconsistencies.is_empty()
                && self.execution_errors.is_empty()
                && self.cap_violations.is_empty()
                && self.worst_recovery <= bound
                && self.acknowledged == self.jobs,
            "chaos run broke a promise (recovery bound {bound:?}):\n{self}\n\
             lost: {:?}\nunexpected: {:?}\ninconsistent: {:?}\nexecutions: {:?}\ncaps: {:?}",
            self.lost,
            self.unexpected,
            self.inconsistencies,
            self.execution_errors,
            self.cap_violations
        );
    }

    /// Prints the report and keeps a copy under `dir` (CI prints those at the end).
    pub fn publish(&self, dir: &str) {
        eprintln!("{self}");
        let _ = std::fs::write(
            format!("{dir}/chaos-{}.txt", self.name),
            format!("{self}\n"),
        );
    }
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, n)| format!("{k}×{n}"))
            .collect();
        write!(
            f,
            "chaos {}: {} jobs, {} acknowledged, faults [{}], lost {}, unexpected {}, \
             inconsistencies {}, executions {} ({} duplicate), worst recovery {} ms \
             (asserted bound {} ms = lease_ttl {} + reap interval with jitter {} + slack {}), \
             worst resume after a Redis fault {} ms, cap violations {} (peak running {} per \
             queue, {} per group), {:.1} s",
            self.name,
            self.jobs,
            self.acknowledged,
            faults.join(", "),
            self.lost.len(),
            self.unexpected.len(),
            self.inconsistencies.len(),
            self.executions,
            self.duplicate_executions,
            self.worst_recovery.as_millis(),
            (RECOVERY_BOUND + SLACK).as_millis(),
            LEASE_TTL.as_millis(),
            (RECOVERY_BOUND - LEASE_TTL).as_millis(),
            SLACK.as_millis(),
            self.worst_resume.as_millis(),
            self.cap_violations.len(),
            self.peak_running.0,
            self.peak_running.1,
            self.elapsed.as_secs_f64()
        )
    }
}

/// The Redis under test.
enum Target {
    Single {
        redis: RedisServer,
        proxy: FaultProxy,
    },
    Cluster(RedisCluster),
}

impl Target {
    /// Where workers connect: through the proxy, or to the cluster's seeds.
    fn worker_url(&self) -> String {
        match self {
            Target::Single { proxy, .. } => proxy.url(),
            Target::Cluster(cluster) => cluster.url(),
        }
    }
}

impl RedisEndpoint for Target {
    /// Where the runner itself connects: straight to Redis.
    fn url(&self) -> String {
        match self {
            Target::Single { redis, .. } => redis.url(),
            Target::Cluster(cluster) => cluster.url(),
        }
    }
}

/// The job kinds of the workload, in turn: (type, input).
fn job(i: usize, limits: Option<ChaosLimits>) -> JobSpec {
    let (kind, input) = match i % 5 {
        0 => ("touch", json!({"list": "touched"})),
        1 => ("sleep", json!({"ms": 20 + (i * 37) % 180})),
        2 => ("progress", json!({"steps": 4, "step_ms": 50})),
        3 => ("flaky", json!({"fail_times": 1})),
        _ => (
            "import",
            json!({"size_mb": 3, "chunk_ms": 50, "ledger": "imports"}),
        ),
    };
    let spec = JobSpec::new(kind)
        .queue(QUEUES[i % QUEUES.len()])
        .input_json(input)
        // Faults cost attempts (a reaped lease counts one); the workload must not run out.
        .max_attempts(25)
        .backoff(RetryPolicy {
            initial_ms: 50,
            factor: 2.0,
            cap_ms: 200,
            jitter: 0.0,
        })
        .idempotency_key(format!("chaos-{i}"));
    match limits {
        Some(l) => spec.group(format!("g{}", i % l.groups)),
        None => spec,
    }
}

struct Workers {
    target_url: String,
    ledger_url: String,
    running: Vec<(String, WorkerProcess)>,
    started: usize,
}

impl Workers {
    fn spawn(&mut self) {
        let id = format!("chaos-w{}", self.started);
        self.started += 1;
        let queues = QUEUES.join(",");
        let lease = format!("{}ms", LEASE_TTL.as_millis());
        let reap = format!("{}ms", REAP_INTERVAL.as_millis());
        let args = [
            "--queue",
            &queues,
            "--lease-ttl",
            &lease,
            "--reap-interval",
            &reap,
            "--concurrency",
            "8",
            "--shutdown-grace",
            "1s",
            "--ledger",
            &self.ledger_url,
            "--id",
            &id,
        ];
        let worker = WorkerProcess::start(&self.target_url, &args);
        self.running.push((id, worker));
    }
}

/// Runs `plan` and returns what it measured (call [`ChaosReport::assert_promises`]).
pub async fn run(plan: ChaosPlan) -> ChaosReport {
    let began = Instant::now();
    let target = if plan.cluster {
        Target::Cluster(RedisCluster::start(3, 1))
    } else {
        let redis = RedisServer::start(RedisOptions {
            aof: true,
            ..Default::default()
        });
        let proxy = FaultProxy::start(redis.port());
        Target::Single { redis, proxy }
    };
    let ledger = RedisServer::start(RedisOptions::default());
    let producer = producer(&target).await;
    let mut workers = Workers {
        target_url: target.worker_url(),
        ledger_url: ledger.url(),
        running: Vec::new(),
        started: 0,
    };
    if let Some(l) = plan.limits {
        let caps = tether_producer::LimitsPatch {
            concurrency: Some(Some(l.concurrency)),
            group_concurrency: Some(Some(l.group_concurrency)),
            ..Default::default()
        };
        for queue in QUEUES {
            producer
                .set_queue_settings(queue, &caps)
                .await
                .expect("limits");
        }
    }
    for _ in 0..plan.workers {
        workers.spawn();
    }

    // Enqueue at an even rate; each job is resent (same idempotency key) until acknowledged.
    let enqueuing = Arc::new(AtomicBool::new(true));
    let enqueuer = {
        let producer = producer.clone();
        let plan = plan.clone();
        let enqueuing = enqueuing.clone();
        tokio::spawn(async move {
            let gap = plan.enqueue_for / plan.jobs as u32;
            let start = tokio::time::Instant::now();
            let mut acknowledged = Vec::with_capacity(plan.jobs);
            for i in 0..plan.jobs {
                tokio::time::sleep_until(start + gap * i as u32).await;
                let refused = format!("enqueue {i} refused");
                // A closure returning an owned future: this task must be Send, and the
                // compiler cannot yet prove that of a future borrowing the closure.
                let producer = producer.clone();
                let limits = plan.limits;
                let id = eventually(Duration::from_secs(30), refused, move || {
                    let producer = producer.clone();
                    async move { producer.enqueue(job(i, limits)).await }
                })
                .await;
                acknowledged.push(id);
            }
            enqueuing.store(false, Ordering::SeqCst);
            acknowledged
        })
    };

    let mut report = ChaosReport {
        name: plan.name,
        jobs: plan.jobs,
        ..Default::default()
    };
    let mut turn = 0usize;
    let mut failovers = 0usize;
    while enqueuing.load(Ordering::SeqCst) || turn < plan.faults.len() {
        tokio::time::sleep(plan.fault_every).await;
        let fault = plan.faults[turn % plan.faults.len()];
        turn += 1;
        *report.faults.entry(fault.to_string()).or_default() += 1;
        match fault {
            Fault::KillWorker | Fault::PauseWorker => {
                let victim = (turn * 7) % workers.running.len();
                let (id, worker) = &mut workers.running[victim];
                let id = id.clone();
                let held = held_by(&producer, &id).await;
                let at = Instant::now();
                if fault == Fault::KillWorker {
                    worker.child.kill();
                    workers.running.remove(victim);
                    workers.spawn();
                    let recovery = recovered(&producer, &id, &held, at).await;
                    report.worst_recovery = report.worst_recovery.max(recovery);
                } else {
                    worker.child.signal(nix::sys::signal::Signal::SIGSTOP);
                    let recovery = recovered(&producer, &id, &held, at).await;
                    report.worst_recovery = report.worst_recovery.max(recovery);
                    tokio::time::sleep((LEASE_TTL * 5 / 2).saturating_sub(at.elapsed())).await;
                    workers.running[victim]
                        .1
                        .child
                        .signal(nix::sys::signal::Signal::SIGCONT);
                }
            }
            redis_fault => {
                // A failover stalls one queue; the other faults, every queue.
                let affected: &[&str] = match redis_fault {
                    Fault::Failover(_) => &QUEUES[failovers % QUEUES.len()..][..1],
                    _ => &QUEUES,
                };
                let before = finished_count(&producer, affected).await;
                let at = Instant::now();
                match (&target, redis_fault) {
                    (Target::Single { redis, .. }, Fault::RestartRedis) => redis.restart(),
                    (Target::Single { proxy, .. }, Fault::ProxyDrop) => proxy.drop_all(),
                    (Target::Single { proxy, .. }, Fault::ProxyStall) => {
                        proxy.stall(true);
                        tokio::time::sleep(LEASE_TTL * 3 / 2).await;
                        proxy.stall(false);
                    }
                    (Target::Single { redis, .. }, Fault::ClientKill) => client_kill(redis),
                    (Target::Single { redis, .. }, Fault::FlushAll) => {
                        let _: redis::RedisResult<()> =
                            redis::cmd("FLUSHALL").query(&mut redis.connection());
                    }
                    (Target::Cluster(cluster), Fault::ClientKill) => {
                        for node in cluster.nodes().iter().filter(|n| n.is_running()) {
                            client_kill(node);
                        }
                    }
                    (Target::Cluster(cluster), Fault::Failover(how)) => {
                        let queue = QUEUES[failovers % QUEUES.len()];
                        failovers += 1;
                        tokio::task::block_in_place(|| {
                            let master = cluster.master_for(&format!("tether:{{{queue}}}:stream"));
                            cluster.fail_over(master, how);
                        });
                    }
                    (_, other) => panic!("fault {other} does not apply to this topology"),
                }
                let ended = Instant::now();
                if redis_fault != Fault::FlushAll && resumed(&producer, affected, before).await {
                    // Stalls end when the fault does; the others count from when they began.
                    let from = if redis_fault == Fault::ProxyStall {
                        ended
                    } else {
                        at
                    };
                    report.worst_resume = report.worst_resume.max(from.elapsed());
                }
            }
        }
    }

    let acknowledged = enqueuer.await.expect("enqueuer");
    report.acknowledged = acknowledged.len();
    let finished = check_outcomes(
        &producer,
        &acknowledged,
        &ledger,
        plan.drain_for,
        &mut report,
    )
    .await;
    if let Some(limits) = plan.limits {
        check_caps(&finished, limits, &mut report);
    }
    // Into the report rather than a panic here, so a broken run shows all its figures.
    for queue in QUEUES {
        match producer.check_consistency(queue).await {
            Ok(problems) => report
                .inconsistencies
                .extend(problems.into_iter().map(|p| format!("{queue}: {p}"))),
            Err(e) => report
                .inconsistencies
                .push(format!("{queue}: check failed: {e}")),
        }
    }
    drop(workers);
    report.elapsed = began.elapsed();
    report
}

/// The jobs a worker holds now, straight from their records.
async fn held_by(producer: &Producer, worker: &str) -> Vec<JobId> {
    let query = ListQuery {
        status: Some(Status::Processing),
        limit: 1000,
        ..Default::default()
    };
    match producer.list(query).await {
        Ok(page) => page
            .jobs
            .into_iter()
            .filter(|j| j.worker.as_deref() == Some(worker))
            .map(|j| j.id)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Waits until none of `held` is still processing under `worker`; returns how long
/// that took from `since` (bounded: it gives up after 15 s and returns that).
async fn recovered(producer: &Producer, worker: &str, held: &[JobId], since: Instant) -> Duration {
    let mut open: Vec<JobId> = held.to_vec();
    while !open.is_empty() && since.elapsed() < Duration::from_secs(15) {
        let mut still = Vec::new();
        for id in open {
            match producer.get(id).await {
                Ok(Some(job))
                    if job.status == Status::Processing
                        && job.worker.as_deref() == Some(worker) =>
                {
                    still.push(id)
                }
                Ok(_) => {}
                Err(_) => still.push(id),
            }
        }
        open = still;
        if !open.is_empty() {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    since.elapsed()
}

/// (outcomes recorded, jobs not yet finished) in `queues`.
async fn finished_count(producer: &Producer, queues: &[&str]) -> (u64, u64) {
    let mut total = (0, 0);
    for queue in queues {
        if let Ok([s]) = producer.stats(&[queue.to_string()]).await.as_deref() {
            total.0 += s.success + s.failure + s.cancelled;
            total.1 += s.pending + s.scheduled + s.processing;
        }
    }
    total
}

/// Waits (up to 20 s) until `queues` record an outcome after `before`. False when
/// there was nothing left to finish there, or it never happened.
async fn resumed(producer: &Producer, queues: &[&str], before: (u64, u64)) -> bool {
    poll(Duration::from_secs(20), async || {
        let now = finished_count(producer, queues).await;
        if now.0 > before.0 {
            Ok(true)
        } else if now.1 == 0 && before.1 == 0 {
            Ok(false)
        } else {
            Err(())
        }
    })
    .await
    .unwrap_or(false)
}

fn client_kill(node: &RedisServer) {
    let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query(&mut node.connection());
}

/// Waits for every acknowledged job to finish, then checks states and the ledger.
async fn check_outcomes(
    producer: &Producer,
    acknowledged: &[JobId],
    ledger: &RedisServer,
    drain_for: Duration,
    report: &mut ChaosReport,
) -> Vec<tether_producer::Job> {
    let mut jobs = HashMap::new();
    let mut open: Vec<JobId> = acknowledged.to_vec();
    // Whatever is still open once `drain_for` has passed is lost.
    let _ = poll(drain_for, async || {
        let mut still = Vec::new();
        for id in open.drain(..) {
            match producer.get(id).await {
                Ok(Some(job)) if job.status.is_final() => {
                    jobs.insert(id, job);
                }
                _ => still.push(id),
            }
        }
        open = still;
        if open.is_empty() { Ok(()) } else { Err(()) }
    })
    .await;
    report.lost = open;

    let mut conn = ledger.connection();
    let read = |conn: &mut redis::Connection, list: &str| -> HashMap<String, usize> {
        let entries: Vec<String> = redis::cmd("LRANGE")
            .arg(list)
            .arg(0)
            .arg(-1)
            .query(conn)
            .unwrap_or_default();
        let mut counts = HashMap::new();
        for e in entries {
            *counts
                .entry(e.trim_end_matches(":handle").to_owned())
                .or_default() += 1;
        }
        counts
    };
    // The demo handlers write under their own namespace only.
    let touched = read(&mut conn, "tether-demo:touched");
    let imported = read(&mut conn, "tether-demo:imports");
    for job in jobs.values() {
        if job.status != Status::Success {
            report.unexpected.push(format!(
                "{} {} ended {} ({:?}: {})",
                job.job_type, job.id, job.status, job.error_code, job.message
            ));
        }
        let ledger = match job.job_type.as_str() {
            "touch" => &touched,
            "import" => &imported,
            _ => continue,
        };
        let runs = ledger.get(&job.id.to_string()).copied().unwrap_or(0);
        report.executions += runs;
        report.duplicate_executions += runs.saturating_sub(1);
        if runs == 0 || runs > job.attempts as usize {
            report.execution_errors.push(format!(
                "{} {}: {runs} executions, {} attempts",
                job.job_type, job.id, job.attempts
            ));
        }
    }
    jobs.into_values().collect()
}

/// Every instant at which more recorded runs (a final job's started_at to its
/// finished_at) overlapped in one queue, or in one group of it, than its cap allows.
fn check_caps(jobs: &[tether_producer::Job], limits: ChaosLimits, report: &mut ChaosReport) {
    // (time, +1 start / -1 end, queue, group); at one instant an end comes first: a
    // slot freed and taken in the same millisecond is no overlap.
    let mut events = Vec::new();
    for job in jobs {
        if let (Some(start), Some(end)) = (job.started_at, job.finished_at) {
            let group = job.group.clone().unwrap_or_default();
            events.push((start, 1i32, job.queue.clone(), group.clone()));
            events.push((end, -1i32, job.queue.clone(), group));
        }
    }
    events.sort_by_key(|e| (e.0, e.1));
    let mut running: HashMap<String, i32> = HashMap::new();
    let mut in_group: HashMap<(String, String), i32> = HashMap::new();
    for (at, delta, queue, group) in events {
        let q = running.entry(queue.clone()).or_default();
        *q += delta;
        let g = in_group.entry((queue.clone(), group.clone())).or_default();
        *g += delta;
        // (A run that started and ended in the same millisecond has its end sorted
        // first: the count dips below zero for that instant, which is no peak.)
        report.peak_running.0 = report.peak_running.0.max((*q).max(0) as usize);
        report.peak_running.1 = report.peak_running.1.max((*g).max(0) as usize);
        if *q > limits.concurrency as i32 {
            report
                .cap_violations
                .push(format!("{queue}: {q} running at {at}"));
        }
        if *g > limits.group_concurrency as i32 {
            report
                .cap_violations
                .push(format!("{queue} group {group}: {g} running at {at}"));
        }
    }
}
