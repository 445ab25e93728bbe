//! Tether on Redis Cluster: every script runs in one slot, queues spread over
//! the masters, and the CLI and REST API read across all of them.
//! (The lifecycle suite runs each of its tests on a cluster too.)

use std::collections::BTreeSet;

use std::time::Duration;

use serde_json::{Value, json};
use tether_model::{ErrorCode, JobSpec, Phase, Status};
use tether_store::{Outcome, RenewStatus, Store, StoreConfig};
use tether_suite::*;
use tether_testkit::RedisCluster;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_script_runs_in_one_slot_on_the_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let queue = cluster.names_on_every_master("q", 1).pop().unwrap();
    let store = store(&cluster).await;
    assert!(store.is_cluster());
    let mut config = StoreConfig::new(cluster.url());
    config.retention = Duration::from_millis(1);
    let short_retention = Store::connect(config).await.unwrap();
    let ttl = Duration::from_secs(30);
    let spec = || JobSpec::new("noop").queue(&queue);
    let claim_one = async |store: &Store, ttl: Duration| {
        let job = store.enqueue(&spec()).await.unwrap();
        // Earlier steps leave ready jobs behind: lease them all, keep this one.
        let claimed = store.claim(&queue, "w", 100, ttl).await.unwrap();
        claimed
            .into_iter()
            .find(|c| c.lease.id == job.id)
            .expect("the new job is claimed")
    };
    // Redis Cluster refuses a script that touches a key outside its slot (CROSSSLOT or
    // "non local key"): running each one here proves all their keys share the queue's tag.
    for name in tether_store::test_support::script_names() {
        match name {
            "enqueue" => {
                store.enqueue(&spec()).await.unwrap();
                store.enqueue_many(&[spec(), spec(), spec()]).await.unwrap();
            }
            "claim" => {
                claim_one(&store, ttl).await;
            }
            "renew" => {
                let c = claim_one(&store, ttl).await;
                let (_, status) = store
                    .renew(&queue, &[(c.lease.id, c.lease.token.clone())], ttl)
                    .await
                    .unwrap();
                assert_eq!(status, [RenewStatus::Renewed]);
            }
            "progress" => {
                let c = claim_one(&store, ttl).await;
                let status = store
                    .progress(&c.lease, ttl, 40, Some("half"), None)
                    .await
                    .unwrap();
                assert_eq!(status, RenewStatus::Renewed);
            }
            "checkpoint" => {
                let c = claim_one(&store, ttl).await;
                let status = store
                    .checkpoint(&c.lease, Phase::Check, b"\x80")
                    .await
                    .unwrap();
                assert_eq!(status, RenewStatus::Renewed);
            }
            "finish" => {
                let c = claim_one(&store, ttl).await;
                store
                    .finish(&c.lease, &Outcome::Success(b"\xc0".to_vec()))
                    .await
                    .unwrap();
            }
            "release" => {
                let c = claim_one(&store, ttl).await;
                let released = store
                    .release(&queue, &[(c.lease.id, c.lease.token.clone())])
                    .await
                    .unwrap();
                assert_eq!(released, 1);
            }
            "cancel" => {
                let job = store.enqueue(&spec()).await.unwrap();
                store.cancel(&queue, job.id, None).await.unwrap();
            }
            "reap" => {
                let c = claim_one(&store, Duration::from_millis(1)).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                let reaped = store.reap(&queue, 100).await.unwrap();
                assert!(reaped.contains(&c.lease.id));
            }
            "promote" => {
                store
                    .enqueue(&spec().delay(Duration::from_millis(1)))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                let (promoted, _) = store.promote(&queue, 100).await.unwrap();
                assert!(promoted >= 1);
            }
            "retry_dead" => {
                let job = store.enqueue(&spec().max_attempts(1)).await.unwrap();
                let claimed = store.claim(&queue, "w", 100, ttl).await.unwrap();
                let c = claimed.into_iter().find(|c| c.lease.id == job.id).unwrap();
                let error = Outcome::Error {
                    retryable: false,
                    retry_delay: Duration::ZERO,
                    message: "no".into(),
                    code: ErrorCode::Custom("No".into()),
                    info: vec![],
                };
                store.finish(&c.lease, &error).await.unwrap();
                store.retry_dead(&queue, job.id, None).await.unwrap();
            }
            "expire" => {
                let c = claim_one(&short_retention, ttl).await;
                short_retention
                    .finish(&c.lease, &Outcome::Success(b"\xc0".to_vec()))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                assert!(short_retention.expire(&queue, 100).await.unwrap() >= 1);
            }
            "set_labels" => {
                let job = store.enqueue(&spec()).await.unwrap();
                store
                    .set_labels(&queue, job.id, None, Some("n"), Some("d"))
                    .await
                    .unwrap();
            }
            "watch" => {
                use futures::StreamExt;
                let job = store.enqueue(&spec()).await.unwrap();
                let mut changes = Box::pin(store.job_changes(&queue, job.id).await.unwrap());
                store.cancel(&queue, job.id, None).await.unwrap();
                let announced = tokio::time::timeout(Duration::from_secs(5), changes.next()).await;
                assert!(matches!(announced, Ok(Some(()))), "the cancel is announced");
            }
            "forget" => {
                store.ensure_queue("idle-queue").await.unwrap();
                let forgotten = store.forget_idle_queues(Duration::ZERO).await.unwrap();
                assert!(forgotten.iter().any(|q| q == "idle-queue"), "{forgotten:?}");
                assert!(!forgotten.contains(&queue), "a queue with jobs is kept");
            }
            "delete" => {
                let job = store.enqueue(&spec()).await.unwrap();
                store.cancel(&queue, job.id, None).await.unwrap();
                store.delete_final(&queue, job.id, None).await.unwrap();
                assert!(store.get(&queue, job.id).await.unwrap().is_none());
            }
            "consistency" => {}
            "deadline" => {
                let late = spec().start_by(Duration::from_millis(1));
                let job = store.enqueue(&late).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                let expired = store.expire_unstarted(&queue, 100).await.unwrap();
                assert!(expired.contains(&job.id), "{expired:?}");
            }
            "snooze" => {
                let c = claim_one(&store, ttl).await;
                let outcome = store.snooze(&c.lease, Duration::ZERO).await.unwrap();
                assert_eq!(outcome, tether_store::SnoozeOutcome::Snoozed);
            }
            "settings" => {
                let limits = tether_model::LimitsPatch {
                    rate: Some(Some(1_000)),
                    ..Default::default()
                };
                assert_eq!(
                    store.set_limits(&queue, &limits).await.unwrap().rate,
                    Some(1_000)
                );
            }
            "unhold" => {
                store.pause(&queue, Some("noop")).await.unwrap();
                store.enqueue(&spec()).await.unwrap();
                // Held while its type is paused; back once resumed.
                let _ = store.claim(&queue, "w", 100, ttl).await.unwrap();
                store.resume(&queue, Some("noop")).await.unwrap();
                claim_one(&store, ttl).await;
            }
            "drive" => {
                let job = store.enqueue(&spec().external(ttl)).await.unwrap();
                let call = tether_store::Drive::Progress {
                    percent: 50,
                    message: Some("half"),
                };
                let driven = store.drive(&queue, job.id, None, &call).await.unwrap();
                assert_eq!(driven.status, tether_model::Status::Processing);
                let done = tether_store::Drive::Complete(None);
                store.drive(&queue, job.id, None, &done).await.unwrap();
            }
            "lapse" => {
                let lease = Duration::from_secs(1);
                let job = store.enqueue(&spec().external(lease)).await.unwrap();
                tokio::time::sleep(lease + Duration::from_millis(20)).await;
                let lapsed = store.lapse_external(&queue, 100).await.unwrap();
                assert!(lapsed.failed.contains(&job.id), "{lapsed:?}");
            }
            "adopt" => {
                // The parent in this queue, its child in another queue (another master).
                let c = claim_one(&store, ttl).await;
                let other = cluster
                    .names_on_every_master("kids", 3)
                    .into_iter()
                    .find(|q| {
                        cluster.master_for(&format!("{{{q}}}")).url()
                            != cluster.master_for(&format!("{{{queue}}}")).url()
                    })
                    .unwrap();
                let child = JobSpec::new("noop").queue(&other);
                let spawned = store.spawn(&c.lease, "#0", 0, child.clone()).await.unwrap();
                let again = store.spawn(&c.lease, "#0", 0, child).await.unwrap();
                assert_eq!(
                    (spawned.id, spawned.created, again.created),
                    (again.id, true, false)
                );
                let job = store.get(&queue, c.lease.id).await.unwrap().unwrap();
                assert_eq!(job.subtasks, vec![spawned.id]);
            }
            "mend" => {
                // What a worker of an older layout does with `n` and `w` entries: trims them as
                // stale, stranding their jobs (and any earlier step's ready ones).
                let job = store.enqueue(&spec()).await.unwrap();
                let stream = format!("tether:{{{queue}}}:stream");
                let mut conn = cluster.master_for(&stream).connection();
                let _: () = redis::cmd("XTRIM")
                    .arg(&stream)
                    .arg("MAXLEN")
                    .arg(0)
                    .query(&mut conn)
                    .unwrap();
                assert!(store.mend(&queue).await.unwrap().readied >= 1);
                let claimed = store.claim(&queue, "w", 100, ttl).await.unwrap();
                assert!(claimed.iter().any(|c| c.lease.id == job.id));
            }
            "waiting_heads" => {
                // A listing's read of plain jobs waiting with no record (layout 4).
                let job = store.enqueue(&spec()).await.unwrap();
                let summaries = store.job_summaries(&queue, &[job.id]).await.unwrap();
                assert_eq!(summaries.len(), 1);
                assert_eq!(summaries[0].status, Status::Pending);
            }
            other => panic!("script {other} is not exercised on the cluster"),
        }
        let problems = store.check_consistency(&queue).await.unwrap();
        assert!(problems.is_empty(), "after {name}: {problems:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_and_api_work_across_queues_on_every_master() {
    let cluster = RedisCluster::start(3, 1);
    let queues = cluster.names_on_every_master("q", 2);
    let worker = WorkerProcess::start(&cluster, &["--queue", &queues.join(",")]);
    let api = ApiProcess::start(&cluster, &["--insecure-no-auth"]);

    let mut ids = Vec::new();
    for queue in &queues {
        let out = tether(
            &cluster,
            &[
                "enqueue",
                "--queue",
                queue,
                "--type",
                "sleep",
                "--input",
                r#"{"ms": 5}"#,
                "--count",
                "3",
            ],
        );
        ids.extend(out.lines().map(str::to_owned));
    }
    assert_eq!(ids.len(), 3 * queues.len());

    // stats: every queue, each with its three successes.
    let stats = eventually(T, "not all succeeded", async || {
        let stats: Value = serde_json::from_str(&tether(&cluster, &["stats", "--json"])).unwrap();
        if queues.iter().all(|q| stats[q]["success"] == json!(3)) {
            Ok(stats)
        } else {
            Err(stats)
        }
    })
    .await;
    for q in &queues {
        assert_eq!(
            (&stats[q]["pending"], &stats[q]["processing"]),
            (&json!(0), &json!(0))
        );
    }

    // list: one page with every job of every queue; get: each one by id alone.
    let listed: Value =
        serde_json::from_str(&tether(&cluster, &["list", "--json", "--limit", "100"])).unwrap();
    let listed: BTreeSet<String> = listed["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, ids.iter().cloned().collect());
    for id in &ids {
        let job: Value = serde_json::from_str(&tether(&cluster, &["get", id, "--json"])).unwrap();
        assert_eq!(job["status"], "success", "{job}");
    }

    // workers: the one worker, serving every queue.
    let workers: Value = serde_json::from_str(&tether(&cluster, &["workers", "--json"])).unwrap();
    assert_eq!(workers.as_array().map(Vec::len), Some(1), "{workers}");
    assert_eq!(workers[0]["queues"], json!(queues));

    // The REST API lists across queues (following next links) and shows each task.
    let mut seen = BTreeSet::new();
    let mut path = "/v2/tasks?limit=4".to_owned();
    loop {
        let (status, body) = http(api.port, "GET", &path, &[], "");
        assert_eq!(status, 200, "{body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        for task in page["tasks"].as_array().unwrap() {
            seen.insert(task["id"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => path = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ids.iter().cloned().collect());
    let (status, body) = http(api.port, "GET", &format!("/v2/tasks/{}", ids[0]), &[], "");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(
        api.port,
        "POST",
        "/v2/tasks",
        &[("Content-Type", "application/json")],
        &json!({"type": "noop", "input": {}, "queue": queues[5]}).to_string(),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = http(api.port, "GET", "/readyz", &[], "");
    assert_eq!(status, 200, "{body}");
    let checked = tether(&cluster, &["check"]);
    assert_eq!(
        checked.matches(": consistent").count(),
        queues.len(),
        "{checked}"
    );
    drop(worker);
    assert_consistent(&cluster).await;
}

/// With `min_replicas`, an enqueue is acknowledged only once a replica has it; when
/// none confirms in time the producer is told (NotReplicated), and resending with the
/// same idempotency key is safe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueues_wait_for_a_replica_and_say_when_none_confirms() {
    let cluster = RedisCluster::start(3, 1);
    let queue = cluster.names_on_every_master("q", 1).remove(0);
    let mut config = StoreConfig::new(cluster.url());
    config.min_replicas = 1;
    // Generous: a busy machine can take a while to relay the replica's acknowledgement.
    config.replication_timeout = Duration::from_secs(2);
    let store = Store::connect(config).await.unwrap();
    let spec = |key: &str| JobSpec::new("noop").queue(&queue).idempotency_key(key);
    store.enqueue(&spec("first")).await.expect("replicated");

    let master = cluster.master_for(&format!("{{{queue}}}"));
    let replica = cluster.replicas_of(master)[0];
    replica.pause();
    let refused = store.enqueue(&spec("second")).await;
    replica.resume();
    assert!(
        matches!(
            refused,
            Err(tether_store::StoreError::NotReplicated {
                confirmed: 0,
                wanted: 1
            })
        ),
        "{refused:?}"
    );
    let again = store
        .enqueue(&spec("second"))
        .await
        .expect("replicated now");
    assert!(
        !again.created,
        "the resend finds the job written the first time"
    );
    assert_eq!(store.stats(&queue).await.unwrap().pending, 2);
}
