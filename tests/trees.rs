//! Task trees: children spawned exactly once (also when the parent runs again after a
//! crash), a parent that waits for its children in other queues (on a cluster, other
//! masters), the links (`parent_id`, `root_id`, `subtasks`) and the roll-up. Every test
//! runs on one Redis and on a three-master cluster.

use std::time::Duration;

use serde_json::{Value, json};
use tether_model::tree::FailurePolicy;
use tether_model::{JobId, JobSpec, Status};
use tether_producer::{ErrorKind, Producer};
use tether_suite::*;
use tether_testkit::TestRedis;
use tether_worker::{Check, Child, Handler, JobContext, JobError, OneStep, Step};

const T: Duration = Duration::from_secs(60);

/// Spawns three `noop` children, then panics on its first attempt: the second attempt
/// spawns the same three again, which must not make six.
#[derive(Debug, Clone, Copy)]
struct SpawnThenCrash;

impl OneStep for SpawnThenCrash {
    type Input = Value;
    type Output = Value;
    async fn run(&self, ctx: &JobContext, _: Value) -> Result<Value, JobError> {
        for _ in 0..3 {
            ctx.spawn(JobSpec::new("noop").queue("kids")).await?;
        }
        ctx.spawn_keyed("the-report", JobSpec::new("noop").queue("kids"))
            .await?;
        if ctx.attempt() == 1 {
            panic!("crash after spawning");
        }
        Ok(json!({"spawned": 4}))
    }
}

/// Three levels: spawns two `fanout` children (each with two `sleep` grandchildren),
/// waits for them with their progress rolled up, weighing the slow one 3.
#[derive(Debug, Clone, Copy)]
struct Nest;

impl Handler for Nest {
    type Input = Value;
    type Progress = ();
    type Output = Value;

    async fn handle(&self, ctx: &JobContext, _: &Value) -> Result<Step<(), Value>, JobError> {
        // A quick child of weight 1 and a slow one of weight 3: the root is at 25 % in
        // between.
        for (weight, ms) in [(1, 100), (3, 2000)] {
            let spec = JobSpec::new("fanout")
                .queue("middle")
                .input_json(json!({"children": 2, "child_ms": ms, "child_queue": "kids"}))
                .weight(weight);
            ctx.spawn(spec).await?;
        }
        Ok(Step::Started(()))
    }

    async fn check_complete(
        &self,
        ctx: &JobContext,
        _: &Value,
        _: &mut (),
    ) -> Result<Check<Value>, JobError> {
        let children = ctx.children().await?;
        ctx.set_progress(i64::from(Child::rolled_up(&children)), "children")
            .await?;
        if children.iter().all(Child::is_final) {
            Ok(Check::Done(json!({"children": children.len()})))
        } else {
            Ok(Check::Pending)
        }
    }

    fn check_interval(&self) -> (Duration, Duration) {
        (Duration::from_millis(20), Duration::from_millis(100))
    }
}

/// Spawns ten minute-long `sleep` children, then snoozes for a minute: a parent that is
/// pending (scheduled) while its children run.
#[derive(Debug, Clone, Copy)]
struct SpawnThenSnooze;

impl OneStep for SpawnThenSnooze {
    type Input = Value;
    type Output = Value;
    async fn run(&self, ctx: &JobContext, _: Value) -> Result<Value, JobError> {
        for _ in 0..10 {
            let spec = JobSpec::new("sleep")
                .queue("kids")
                .input_json(json!({"ms": 60_000}));
            ctx.spawn(spec).await?;
        }
        Err(JobError::snooze(Duration::from_secs(60)))
    }
}

/// Spawns one external task (in queue kids) and waits for it: a tree with a child no
/// worker runs.
#[derive(Debug, Clone, Copy)]
struct AwaitExternal;

impl Handler for AwaitExternal {
    type Input = Value;
    type Progress = ();
    type Output = Value;

    async fn handle(&self, ctx: &JobContext, _: &Value) -> Result<Step<(), Value>, JobError> {
        let spec = JobSpec::new("export")
            .queue("kids")
            .external(Duration::from_secs(30));
        ctx.spawn(spec).await?;
        Ok(Step::Started(()))
    }

    async fn check_complete(
        &self,
        ctx: &JobContext,
        _: &Value,
        _: &mut (),
    ) -> Result<Check<Value>, JobError> {
        Ok(match ctx.fan_in(FailurePolicy::WaitAll).await? {
            Some(children) => Check::Done(json!({"children": children.len()})),
            None => Check::Pending,
        })
    }

    fn check_interval(&self) -> (Duration, Duration) {
        (Duration::from_millis(20), Duration::from_millis(100))
    }
}

async fn worker(redis: &TestRedis) -> InProcessWorker {
    InProcessWorker::start(redis, |b| {
        b.queues(["default", "middle", "kids"])
            .concurrency(32)
            .handler("spawn_then_crash", SpawnThenCrash)
            .handler("nest", Nest)
            .handler("spawn_then_snooze", SpawnThenSnooze)
            .handler("await_external", AwaitExternal)
    })
    .await
}

/// The side-effect ledger `ledger` (written by each run of the demo handler) names one
/// job only: the batch's follow-up was enqueued once, whatever ran it again.
fn assert_one_follow_up(redis_url: &str, ledger: &str) {
    let mut conn = redis::Client::open(redis_url)
        .unwrap()
        .get_connection()
        .unwrap();
    let ran: Vec<String> = redis::cmd("LRANGE")
        .arg(ledger)
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .unwrap();
    let distinct: std::collections::HashSet<_> = ran.iter().collect();
    assert_eq!(distinct.len(), 1, "one follow-up job: {ran:?}");
}

/// Enqueues a `fanout` job with this input.
async fn fanout(producer: &Producer, input: Value) -> tether_model::JobId {
    let spec = JobSpec::new("fanout").input_json(input);
    producer.enqueue(spec).await.unwrap()
}

/// Every child of `parent`, through the paged listing.
async fn all_children(producer: &Producer, parent: tether_model::JobId) -> Vec<tether_model::Job> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = producer.children(parent, marker, 7).await.unwrap();
        out.extend(page.jobs);
        marker = page.next_marker;
        if marker.is_none() {
            return out;
        }
    }
}

async fn a_fanout_waits_for_its_children_in_another_queue(topology: Topology) {
    let redis = TestRedis::start(topology);
    let worker = worker(&redis).await;
    let producer = producer(&redis).await.for_owner("alice");
    let id = fanout(
        &producer,
        json!({"children": 20, "child_ms": 50, "child_queue": "kids"}),
    )
    .await;
    let parent = finished(&producer, id, T).await;
    assert_eq!(parent.status, Status::Success, "{parent:?}");
    assert_eq!(parent.result.as_ref().unwrap()["children"], 20);
    let parent = producer.get(id).await.unwrap().unwrap();
    assert_eq!(parent.subtask_count, 20);
    assert_eq!(parent.subtasks.len(), 20);
    assert_eq!(parent.root_id, Some(id), "a root is its own tree's root");
    assert_eq!(parent.parent_id, None);
    let children = all_children(&producer, id).await;
    assert_eq!(
        children.iter().map(|c| c.id).collect::<Vec<_>>(),
        parent.subtasks,
        "listed in spawn order"
    );
    for child in &children {
        assert_eq!(child.queue, "kids");
        assert_eq!(child.status, Status::Success);
        assert_eq!(child.parent_id, Some(id));
        assert_eq!(child.root_id, Some(id));
        assert_eq!(
            child.owner.as_deref(),
            Some("alice"),
            "children are the parent's owner's"
        );
        // Each child finished before its parent's fan-in step did.
        assert!(child.finished_at <= parent.finished_at);
    }
    // Another owner sees neither the parent nor its children.
    let bob = producer.for_owner("bob");
    assert!(bob.children(id, None, 10).await.unwrap_err().is_not_found());

    // With fail_one, the first child fails and so does the parent, once all are final.
    let failing = fanout(
        &producer,
        json!({"children": 5, "child_ms": 50, "fail_one": true, "child_queue": "kids"}),
    )
    .await;
    let parent = finished(&producer, failing, T).await;
    assert_eq!(parent.status, Status::Failure);
    assert_eq!(parent.error_code.as_ref().unwrap().as_str(), "ChildFailed");
    let children = all_children(&producer, failing).await;
    assert_eq!(count(&children, Status::Failure), 1);
    assert_eq!(count(&children, Status::Success), 4);
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

async fn a_parent_that_runs_again_spawns_each_child_once(topology: Topology) {
    let redis = TestRedis::start(topology);
    let worker = worker(&redis).await;
    let producer = producer(&redis).await;
    let id = producer
        .enqueue(JobSpec::new("spawn_then_crash").max_attempts(3))
        .await
        .unwrap();
    let parent = finished(&producer, id, T).await;
    assert_eq!(parent.status, Status::Success, "{parent:?}");
    assert_eq!(
        parent.attempts, 2,
        "the first attempt crashed after spawning"
    );
    let parent = producer.get(id).await.unwrap().unwrap();
    assert_eq!(parent.subtask_count, 4);
    let children = all_finished(&producer, &parent.subtasks, T).await;
    assert_eq!(count(&children, Status::Success), 4);
    let stats = producer.stats(&["kids".to_owned()]).await.unwrap();
    assert_eq!(
        stats[0].success, 4,
        "four children ran, not eight: {stats:?}"
    );
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

async fn a_three_level_tree_rolls_progress_up(topology: Topology) {
    let redis = TestRedis::start(topology);
    let worker = worker(&redis).await;
    let producer = producer(&redis).await;
    let id = producer.enqueue(JobSpec::new("nest")).await.unwrap();
    // While it runs, the root's progress is its children's, rolled up.
    let mut seen_between = false;
    let top = eventually(T, "the tree finished", async || {
        let top = producer.get(id).await.unwrap().unwrap();
        if top.progress == 25 {
            seen_between = true;
        }
        if top.status.is_final() {
            Ok(top)
        } else {
            Err(format!("{} at {}%", top.status, top.progress))
        }
    })
    .await;
    assert_eq!(top.status, Status::Success, "{top:?}");
    assert!(
        seen_between,
        "the root reported partial progress while waiting"
    );
    let middles = all_children(&producer, id).await;
    assert_eq!(middles.len(), 2);
    assert_eq!(middles[1].weight, 3);
    for middle in &middles {
        assert_eq!(middle.parent_id, Some(id));
        assert_eq!(middle.root_id, Some(id));
        assert_eq!(middle.progress, 100);
        assert_eq!(middle.subtask_count, 2);
        for leaf in all_children(&producer, middle.id).await {
            assert_eq!(leaf.parent_id, Some(middle.id));
            assert_eq!(leaf.root_id, Some(id), "the root of the whole tree");
            assert_eq!(leaf.status, Status::Success);
        }
    }
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

async fn cancelling_a_parent_cancels_its_subtree(topology: Topology) {
    let redis = TestRedis::start(topology);
    let worker = worker(&redis).await;
    let producer = producer(&redis).await.for_owner("alice");
    // 40 long children and a worker of 32 slots: some run, some wait.
    let id = fanout(
        &producer,
        json!({"children": 40, "child_ms": 60_000, "child_queue": "kids"}),
    )
    .await;
    eventually(T, "children running", async || {
        let kids = producer.children(id, None, 100).await.unwrap().jobs;
        let running = count(&kids, Status::Processing);
        if kids.len() == 40 && running > 0 {
            Ok(())
        } else {
            Err(format!("{} children, {running} running", kids.len()))
        }
    })
    .await;
    producer.cancel(id).await.unwrap();
    let parent = finished(&producer, id, T).await;
    assert_eq!(parent.status, Status::Cancelled);
    let kids = producer.get(id).await.unwrap().unwrap().subtasks;
    let kids = all_finished(&producer, &kids, T).await;
    assert_eq!(count(&kids, Status::Cancelled), 40, "the whole subtree");
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

/// A cancel's walk leaves no cascade behind: every node it walked (the batch and each
/// running `fanout` below it, which has children of its own) is marked done, so
/// workers' maintenance has nothing to finish.
async fn a_finished_cancel_leaves_no_cascade(topology: Topology) {
    let redis = TestRedis::start(topology);
    let worker = worker(&redis).await;
    let producer = producer(&redis).await;
    let store = tether_store::Store::connect(tether_store::StoreConfig::new(redis.url()))
        .await
        .unwrap();
    let fanouts = (0..3)
        .map(|_| {
            JobSpec::new("fanout")
                .input_json(json!({"children": 4, "child_ms": 60_000, "child_queue": "kids"}))
        })
        .collect();
    let batch = producer
        .enqueue_batch(fanouts, JobSpec::new("noop"))
        .await
        .unwrap();
    eventually(T, "every fanout's children spawned", async || {
        let fanouts = all_children(&producer, batch).await;
        let spawned: usize = fanouts.iter().map(|f| f.subtasks.len()).sum();
        if spawned == 12 { Ok(()) } else { Err(spawned) }
    })
    .await;
    producer.cancel(batch).await.unwrap();
    for queue in ["default", "kids"] {
        assert_eq!(store.cascades(queue, 100).await.unwrap(), [], "{queue}");
    }
    worker.shutdown().await;
}

async fn failure_policies_and_the_retry_of_a_dead_parent(topology: Topology) {
    let redis = TestRedis::start(topology);
    let worker = worker(&redis).await;
    let producer = producer(&redis).await;

    // Fail fast: the first child fails, the others (long) are cancelled, the parent fails
    // at once rather than after a minute.
    let fast = fanout(
        &producer,
        json!({
            "children": 6, "child_ms": 60_000, "fail_one": true, "fail_fast": true,
            "child_queue": "kids"
        }),
    )
    .await;
    let parent = finished(&producer, fast, T).await;
    assert_eq!(parent.status, Status::Failure);
    assert_eq!(parent.error_code.as_ref().unwrap().as_str(), "ChildFailed");
    let kids = producer.get(fast).await.unwrap().unwrap().subtasks;
    let kids = all_finished(&producer, &kids, T).await;
    assert_eq!(count(&kids, Status::Failure), 1);
    assert_eq!(count(&kids, Status::Cancelled), 5);

    // Wait for all, then fail; a retry of the dead parent runs the failed child again,
    // not the ones that succeeded.
    let all = producer
        .enqueue(JobSpec::new("fanout").max_attempts(1).input_json(
            json!({"children": 4, "child_ms": 10, "fail_one": true, "child_queue": "kids"}),
        ))
        .await
        .unwrap();
    assert_eq!(finished(&producer, all, T).await.status, Status::Failure);
    let before = all_children(&producer, all).await;
    assert_eq!(count(&before, Status::Success), 3);
    producer.retry(all).await.unwrap();
    let parent = eventually(T, "the retried parent finished", async || {
        let job = producer.get(all).await.unwrap().unwrap();
        if job.status.is_final() && job.attempts == 1 && job.finished_at > before[0].finished_at {
            Ok(job)
        } else {
            Err(format!("{} attempts {}", job.status, job.attempts))
        }
    })
    .await;
    assert_eq!(
        parent.status,
        Status::Failure,
        "its failing child failed again"
    );
    let after = all_children(&producer, all).await;
    assert_eq!(after.len(), 4);
    for (b, a) in before.iter().zip(&after) {
        if b.status == Status::Success {
            assert_eq!(
                a.started_at, b.started_at,
                "a succeeded child did not run again"
            );
            assert_eq!(a.status, Status::Success);
        } else {
            assert!(a.started_at > b.started_at, "the failed child ran again");
        }
    }
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

async fn a_batch_enqueues_its_follow_up_once_with_a_summary(topology: Topology) {
    let redis = TestRedis::start(topology);
    let worker = worker(&redis).await;
    let producer = producer(&redis).await.for_owner("alice");
    let mut jobs: Vec<JobSpec> = (0..5)
        .map(|_| {
            JobSpec::new("sleep")
                .queue("kids")
                .input_json(json!({"ms": 20}))
        })
        .collect();
    jobs.push(
        JobSpec::new("fail")
            .queue("kids")
            .max_attempts(1)
            .input_json(json!({"fatal": true})),
    );
    let then = JobSpec::new("noop").input_json(json!({"note": "all done"}));
    let batch = producer.enqueue_batch(jobs, then).await.unwrap();
    let parent = finished(&producer, batch, T).await;
    assert_eq!(parent.status, Status::Success, "{parent:?}");
    let summary = parent.result.unwrap();
    let failed_child = all_children(&producer, batch)
        .await
        .into_iter()
        .find(|c| c.status == Status::Failure)
        .unwrap();
    let then_id: tether_model::JobId = summary["then"].as_str().unwrap().parse().unwrap();
    let then = finished(&producer, then_id, T).await;
    assert_eq!(then.status, Status::Success);
    assert_eq!(then.owner.as_deref(), Some("alice"));
    let summary = &then.input["summary"];
    assert_eq!(then.input["note"], "all done", "its own input is kept");
    assert_eq!(summary["batch"], batch.to_string());
    assert_eq!(summary["total"], 6);
    assert_eq!(summary["succeeded"], 5);
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["failed_ids"], json!([failed_child.id.to_string()]));
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

/// A connection to the node that holds `key`.
fn node_of(redis: &TestRedis, key: &str) -> redis::Connection {
    match redis {
        TestRedis::Single(server) => server.connection(),
        TestRedis::Cluster(cluster) => cluster.master_for(key).connection(),
    }
}

/// Runs one command on the node that holds `key` (its first argument).
fn raw(redis: &TestRedis, command: &str, key: &str, args: &[&str]) {
    let _: redis::Value = redis::cmd(command)
        .arg(key)
        .arg(args)
        .query(&mut node_of(redis, key))
        .unwrap();
}

async fn the_check_follows_links_across_queues(topology: Topology) {
    let redis = TestRedis::start(topology);
    let worker = worker(&redis).await;
    let producer = producer(&redis).await;
    let id = fanout(
        &producer,
        json!({"children": 4, "child_ms": 10, "child_queue": "kids"}),
    )
    .await;
    assert_eq!(finished(&producer, id, T).await.status, Status::Success);
    worker.shutdown().await;
    assert_consistent(&redis).await;
    let kids = producer.get(id).await.unwrap().unwrap().subtasks;
    let store = store(&redis).await;
    let problems = async |queue: &str| store.check_consistency(queue).await.unwrap();

    // The parent (queue default) forgets a child of queue kids.
    raw(
        &redis,
        "ZREM",
        &format!("tether:{{default}}:kids:{id}"),
        &[&format!("{} kids", kids[0])],
    );
    let found = problems("kids").await;
    assert!(
        found.iter().any(|p| p.contains(&format!(
            "child {} is missing from the list of its parent {id}",
            kids[0]
        ))),
        "{found:?}"
    );
    // A listed child's record is lost, its index entry kept.
    raw(
        &redis,
        "DEL",
        &format!("tether:{{kids}}:job:{}", kids[1]),
        &[],
    );
    let found = problems("default").await;
    assert!(
        found.iter().any(|p| p.contains(&format!(
            "child {} (queue kids) of parent {id} is indexed but has no record",
            kids[1]
        ))),
        "{found:?}"
    );
    // A listed child names another parent.
    let stranger = JobId::new().to_string();
    raw(
        &redis,
        "HSET",
        &format!("tether:{{kids}}:job:{}", kids[2]),
        &["par", &stranger],
    );
    let found = problems("default").await;
    assert!(
        found.iter().any(|p| p.contains(&format!(
            "child {} (queue kids) on the list of parent {id} names parent {stranger}",
            kids[2]
        ))),
        "{found:?}"
    );
    assert_eq!(
        found.len(),
        2,
        "the intact child is not reported: {found:?}"
    );
}

/// A canceller that dies half-way (the API or a producer killed after the parent's cancel,
/// in the middle of its walk of the subtree) leaves no child of the cancelled parent to
/// run: a parent waiting for its children cancels them when its worker stops it, and the
/// workers' maintenance finishes a recorded cascade its canceller did not (here, that of
/// a parent pending between two runs).
async fn a_cancel_interrupted_half_way_still_reaches_every_child(topology: Topology) {
    let redis = TestRedis::start(topology);
    let worker = worker(&redis).await;
    let producer = producer(&redis).await;
    let store = store(&redis).await;
    let waiting = fanout(
        &producer,
        json!({"children": 10, "child_ms": 60_000, "child_queue": "kids"}),
    )
    .await;
    let snoozed = producer
        .enqueue(JobSpec::new("spawn_then_snooze"))
        .await
        .unwrap();
    for (parent, status) in [(waiting, Status::Processing), (snoozed, Status::Pending)] {
        until_job(&producer, parent, T, |j| {
            j.status == status && j.subtask_count == 10
        })
        .await;
    }
    let mut kids = producer.get(waiting).await.unwrap().unwrap().subtasks;
    // The interrupted cancels: each parent's own cancel, and half of one parent's children.
    store.cancel("default", waiting, None).await.unwrap();
    store.cancel("default", snoozed, None).await.unwrap();
    for kid in &kids[..5] {
        store.cancel("kids", *kid, None).await.unwrap();
    }
    kids.extend(producer.get(snoozed).await.unwrap().unwrap().subtasks);
    // Well before the children's minute is up.
    let kids = all_finished(&producer, &kids, Duration::from_secs(30)).await;
    assert_eq!(count(&kids, Status::Cancelled), 20, "{kids:?}");
    assert_eq!(
        finished(&producer, waiting, T).await.status,
        Status::Cancelled
    );
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

/// A child no worker runs: the parent's fan-in waits for its driver, and rolls its
/// reported progress up.
async fn an_external_task_is_a_child_of_a_tree(topology: Topology) {
    let redis = TestRedis::start(topology);
    let worker = worker(&redis).await;
    let producer = producer(&redis).await.for_owner("alice");
    let id = producer
        .enqueue(JobSpec::new("await_external"))
        .await
        .unwrap();
    let parent = until_job(&producer, id, T, |j| j.subtask_count == 1).await;
    let child = parent.subtasks[0];
    let driver = producer.external_task(child);
    driver.progress(40, Some("copying")).await.unwrap();
    until_job(&producer, id, T, |j| j.progress == 40).await;
    let shown = producer.get(child).await.unwrap().unwrap();
    assert!(shown.external);
    assert_eq!(shown.queue, "kids");
    assert_eq!(shown.parent_id, Some(id));
    assert_eq!(shown.root_id, Some(id));
    assert_eq!(shown.owner.as_deref(), Some("alice"));
    driver.complete(Some(&json!({"ok": true}))).await.unwrap();
    let parent = finished(&producer, id, T).await;
    assert_eq!(parent.status, Status::Success, "{parent:?}");
    assert_eq!(parent.result.unwrap()["children"], 1);
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

/// An external task as the root of a tree of worker jobs: its driver spawns children in
/// another queue (each key once), sees them run, and a cancel of the task reaches them;
/// another owner cannot spawn under it, nor anyone under a worker's job or after its end.
async fn an_external_task_is_a_parent_of_worker_jobs(topology: Topology) {
    let redis = TestRedis::start(topology);
    let worker = worker(&redis).await;
    let alice = producer(&redis).await.for_owner("alice");
    let sleep = |ms: u64| {
        JobSpec::new("sleep")
            .queue("kids")
            .input_json(json!({"ms": ms}))
    };
    let task = alice
        .create_external(JobSpec::new("migrate"), Duration::from_secs(30))
        .await
        .unwrap();
    let a = task.spawn("disk-a", sleep(20)).await.unwrap();
    let b = task.spawn("disk-b", sleep(20)).await.unwrap();
    assert_eq!(
        task.spawn("disk-a", sleep(20)).await.unwrap(),
        a,
        "a key spawns once"
    );
    let kids = all_finished(&alice, &[a, b], T).await;
    assert_eq!(count(&kids, Status::Success), 2);
    for kid in &kids {
        assert_eq!(kid.parent_id, Some(task.id()));
        assert_eq!(kid.root_id, Some(task.id()));
        assert_eq!(kid.owner.as_deref(), Some("alice"));
        assert_eq!(kid.queue, "kids");
    }
    let parent = alice.get(task.id()).await.unwrap().unwrap();
    assert_eq!(parent.subtasks, [a, b], "listed in spawn order");
    assert_eq!(parent.status, Status::Pending, "its driver decides its end");

    // Another owner's driver does not see it; a worker's job spawns its own children.
    let bob = alice.for_owner("bob");
    let refused = bob.spawn_under_external(task.id(), "x", sleep(20)).await;
    assert!(refused.unwrap_err().is_not_found());
    let run = alice.enqueue(JobSpec::new("noop")).await.unwrap();
    finished(&alice, run, T).await;
    let refused = alice.spawn_under_external(run, "x", sleep(20)).await;
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::NotSupported);

    // A cancel of the task reaches a running child; after the task's end, no spawn.
    let long = task.spawn("long", sleep(60_000)).await.unwrap();
    until_job(&alice, long, T, |j| j.status == Status::Processing).await;
    alice.cancel(task.id()).await.unwrap();
    assert_eq!(finished(&alice, long, T).await.status, Status::Cancelled);
    // Once its cancel is requested, its driver spawns nothing more (no cascade would
    // reach a child spawned after the cancel's walk).
    let after_cancel = task.spawn("after-cancel", sleep(60_000)).await;
    assert_eq!(
        after_cancel.unwrap_err().kind(),
        ErrorKind::InvalidState {
            status: Status::Pending
        }
    );
    task.abort(Some("RequestCanceled"), Some("stopped"))
        .await
        .unwrap();
    let late = task.spawn("late", sleep(20)).await;
    assert_eq!(
        late.unwrap_err().kind(),
        ErrorKind::InvalidState {
            status: Status::Failure
        }
    );
    worker.shutdown().await;
    assert_consistent(&redis).await;
}

on_every_topology!(
    an_external_task_is_a_parent_of_worker_jobs,
    an_external_task_is_a_child_of_a_tree,
    a_cancel_interrupted_half_way_still_reaches_every_child,
    the_check_follows_links_across_queues,
    a_batch_enqueues_its_follow_up_once_with_a_summary,
    cancelling_a_parent_cancels_its_subtree,
    a_finished_cancel_leaves_no_cascade,
    failure_policies_and_the_retry_of_a_dead_parent,
    a_fanout_waits_for_its_children_in_another_queue,
    a_parent_that_runs_again_spawns_each_child_once,
    a_three_level_tree_rolls_progress_up,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_json_and_tree_show_the_links() {
    let redis = TestRedis::start(Topology::Single);
    let _worker = WorkerProcess::start(&redis, &["--queue", "default", "--queue", "kids"]);
    let out = tether(
        &redis,
        &[
            "enqueue",
            "--type",
            "fanout",
            "--input",
            r#"{"children": 3, "child_ms": 10, "child_queue": "kids"}"#,
        ],
    );
    let id: tether_model::JobId = out.trim().parse().unwrap();
    let producer = producer(&redis).await;
    let parent = finished(&producer, id, T).await;
    assert_eq!(parent.status, Status::Success);
    let job: Value =
        serde_json::from_str(&tether(&redis, &["get", &id.to_string(), "--json"])).unwrap();
    assert_eq!(job["subtasks"].as_array().unwrap().len(), 3);
    assert_eq!(job["root_id"], id.to_string());
    assert_eq!(job["parent_id"], Value::Null);
    let child = job["subtasks"][0].as_str().unwrap();
    let child: Value = serde_json::from_str(&tether(&redis, &["get", child, "--json"])).unwrap();
    assert_eq!(child["parent_id"], id.to_string());
    assert_eq!(child["root_id"], id.to_string());
    let tree = tether(&redis, &["get", &id.to_string(), "--tree"]);
    assert_eq!(tree.lines().count(), 4, "{tree}");
    assert!(tree.lines().next().unwrap().contains("fanout"), "{tree}");
    assert_eq!(tree.matches("success").count(), 4, "{tree}");
    assert!(tree.contains("└─ "), "{tree}");
    // A reader that stops early (`| head -1`) ends the output, not in a crash.
    let mut reader_gone = std::process::Command::new(tether_testkit::tether_bin())
        .args(["get", &id.to_string(), "--tree", "--redis", &redis.url()])
        .env_remove("TETHER_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(reader_gone.stdout.take());
    let out = reader_gone.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Workers killed with SIGKILL while a batch of 300 children runs: every child runs, the
/// batch's fan-in enqueues its follow-up once (the follow-up appends its id to a list, so
/// the list holds one distinct id however often it ran), and the queues are consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full tier: kills worker processes for half a minute"]
async fn a_batch_fans_in_once_while_workers_are_killed() {
    let redis = TestRedis::start(Topology::Single);
    let args = [
        "--queue",
        "default",
        "--queue",
        "kids",
        "--queue",
        "after",
        "--lease-ttl",
        "2s",
        "--reap-interval",
        "200ms",
        "--concurrency",
        "16",
    ];
    let mut workers: Vec<WorkerProcess> = (0..2)
        .map(|_| WorkerProcess::start(&redis, &args))
        .collect();
    let producer = producer(&redis).await;
    let batch = sleep_batch(&producer, 300, 400, "batch-then").await;
    // Kill one of the two workers every second, and start another: four times at most.
    // Each kill of the worker that holds the batch costs it an attempt (its lease lapses),
    // and it has five; more kills would fail it by design, not by a fault of the fan-in.
    let mut round = 0;
    let parent = loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let job = producer.get(batch).await.unwrap().unwrap();
        if job.status.is_final() || round >= 4 {
            break job;
        }
        workers[round % 2].child.kill();
        workers[round % 2] = WorkerProcess::start(&redis, &args);
        round += 1;
    };
    let parent = if parent.status.is_final() {
        parent
    } else {
        finished(&producer, batch, T).await
    };
    assert_eq!(parent.status, Status::Success, "{parent:?}");
    assert!(
        round >= 2,
        "workers were killed while the batch ran ({round} kills): {:?}",
        parent.result
    );
    let then_id: tether_model::JobId = parent.result.unwrap()["then"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let then = finished(&producer, then_id, T).await;
    assert_eq!(then.status, Status::Success, "{then:?}");
    assert_one_follow_up(&redis.url(), "tether-demo:batch-then");
    let stats = producer
        .stats(&["after".to_owned(), "kids".to_owned()])
        .await
        .unwrap();
    // The batch itself runs in its follow-up's queue: the two of them, once each.
    assert_eq!(
        stats.iter().find(|s| s.queue == "after").unwrap().success,
        2
    );
    assert_eq!(
        stats.iter().find(|s| s.queue == "kids").unwrap().success,
        300
    );
    drop(workers);
    assert_consistent(&redis).await;
}

/// Redis killed (SIGKILL) and restarted from its append-only file while a batch runs: the
/// batch finishes, its follow-up is enqueued once, and the queues are consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full tier: restarts Redis under a running batch"]
async fn a_batch_fans_in_once_across_a_redis_restart() {
    let redis = tether_testkit::RedisServer::start(RedisOptions {
        aof: true,
        ..RedisOptions::default()
    });
    let args = [
        "--queue",
        "after",
        "--queue",
        "kids",
        "--lease-ttl",
        "2s",
        "--reap-interval",
        "200ms",
    ];
    let _workers: Vec<WorkerProcess> = (0..2)
        .map(|_| WorkerProcess::start(&redis, &args))
        .collect();
    let producer = producer(&redis).await;
    let batch = sleep_batch(&producer, 200, 1000, "restart-then").await;
    eventually(T, "some children finished", async || {
        let done = producer
            .stats(&["kids".to_owned()])
            .await
            .map(|s| s[0].success)
            .unwrap_or(0);
        if done >= 20 {
            Ok(())
        } else {
            Err(format!("{done} finished"))
        }
    })
    .await;
    // Past the AOF's once-a-second fsync, then a crash and a restart from the file.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = producer.get(batch).await.unwrap().unwrap();
    assert!(
        !before.status.is_final(),
        "the restart comes while the batch runs"
    );
    redis.kill();
    redis.restart();
    // (Polled: a watch's subscription does not outlive the restart.)
    let parent = eventually(T, "the batch finished", async || {
        let job = producer.get(batch).await.map_err(|e| e.to_string())?;
        let stats = producer
            .stats(&["kids".to_owned()])
            .await
            .map_err(|e| e.to_string())?;
        match job {
            Some(job) if job.status.is_final() => Ok(job),
            other => Err(format!(
                "{:?} {:?}",
                other.map(|j| (j.status, j.progress)),
                stats
            )),
        }
    })
    .await;
    assert_eq!(parent.status, Status::Success, "{parent:?}");
    let then_id: tether_model::JobId = parent.result.unwrap()["then"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let then = all_finished(&producer, &[then_id], T).await.remove(0);
    assert_eq!(then.status, Status::Success, "{then:?}");
    assert_eq!(then.input["summary"]["total"], 200);
    assert_eq!(then.input["summary"]["succeeded"], 200);
    assert_one_follow_up(&redis.url(), "tether-demo:restart-then");
    assert_consistent(&redis).await;
}

/// A batch of `n` children sleeping `ms` in queue `kids`, whose follow-up pushes onto
/// the list `list` (the kill and restart runs watch it).
async fn sleep_batch(producer: &Producer, n: usize, ms: u64, list: &str) -> JobId {
    let jobs = (0..n)
        .map(|_| {
            JobSpec::new("sleep")
                .queue("kids")
                .input_json(json!({"ms": ms}))
        })
        .collect();
    let then = JobSpec::new("touch")
        .queue("after")
        .input_json(json!({"list": list}));
    producer.enqueue_batch(jobs, then).await.unwrap()
}
