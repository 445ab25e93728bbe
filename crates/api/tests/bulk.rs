//! Bulk actions, search and throughput (what the console needs to operate queues), on
//! one Redis and on a three-master cluster: one request acts on many tasks, bounded,
//! going on from a cursor; a tenant never touches another tenant's tasks, even with a
//! filter that matches them; acting across owners is for admins.

mod common;
use common::{call_as as call, call_text};

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use serde_json::{Value, json};
use tether_api::{ApiConfig, Auth};
use tether_producer::{JobId, JobSpec, Producer};
use tether_store::{Store, StoreConfig};
use tether_testkit::{RedisEndpoint, TestRedis, Topology, eventually};
use tether_worker::{CancellationToken, Worker};

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

struct Env {
    redis: TestRedis,
    app: Router,
    producer: Producer,
    stop: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn env(topology: Topology) -> Env {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let auth = Auth::from_toml(&format!(
        "[[tokens]]\ntoken = \"{ALICE}\"\nowner = \"alice\"\n[[tokens]]\ntoken = \"{BOB}\"\nowner = \"bob\"\n\
         [[tokens]]\ntoken = \"{ADMIN}\"\nowner = \"ops\"\nrole = \"admin\"\n"
    ))
    .unwrap();
    let stop = CancellationToken::new();
    let producer = Producer::from_store(store);
    let (app, _) = tether_api::router(
        producer.clone(),
        ApiConfig {
            auth,
            ..ApiConfig::default()
        },
        stop.clone(),
    );
    Env {
        redis,
        app,
        producer,
        stop,
    }
}

impl Env {
    /// `n` tasks of `owner` in `queue`, delayed an hour so that nothing runs them.
    async fn pending(&self, owner: &str, queue: &str, n: usize) -> Vec<String> {
        let specs = (0..n)
            .map(|i| {
                JobSpec::new("noop")
                    .queue(queue)
                    .name(format!("{owner}-report-{i}"))
                    .delay(Duration::from_secs(3600))
            })
            .collect();
        let ids = self
            .producer
            .for_owner(owner)
            .enqueue_many(specs)
            .await
            .unwrap();
        ids.iter().map(JobId::to_string).collect()
    }

    /// `n` tasks of no owner in `queue` that wait on the stream since their enqueue (no
    /// worker reads these queues; an owner's tasks are served in its group, a list):
    /// the queue's index of jobs holds none of them (layout 2).
    async fn waiting(&self, queue: &str, n: usize) -> Vec<String> {
        let specs = (0..n)
            .map(|i| {
                JobSpec::new("noop")
                    .queue(queue)
                    .name(format!("waiting-{i}"))
            })
            .collect();
        let ids: Vec<String> = self
            .producer
            .enqueue_many(specs)
            .await
            .unwrap()
            .iter()
            .map(JobId::to_string)
            .collect();
        // Not vacuous: none of them is in the queue's index of jobs.
        let key = format!("tether:{{{queue}}}:jobs");
        let mut node = match &self.redis {
            TestRedis::Single(server) => server.connection(),
            TestRedis::Cluster(cluster) => cluster.master_for(&key).connection(),
        };
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.zscore(&key, id);
        }
        let scores: Vec<Option<f64>> = pipe.query(&mut node).unwrap();
        assert!(scores.iter().all(Option::is_none), "{queue}: tasks indexed");
        ids
    }

    /// Cancels what `filter` matches in requests of at most 2,000 tasks, each going on
    /// from the previous one's cursor: (tasks cancelled, requests).
    async fn cancel_to_the_end(&self, token: &str, filter: &Value) -> (u64, u32) {
        let (mut acted, mut requests, mut cursor) = (0, 0, Value::Null);
        loop {
            let body = json!({"action": "cancel", "filter": filter, "cursor": cursor});
            let (status, done) = self.bulk(token, body).await;
            assert_eq!(status, StatusCode::OK, "{done}");
            assert!(done["examined"].as_u64().unwrap() <= 2000, "{done}");
            assert_eq!(done["skipped"], 0, "{done}");
            acted += done["acted"].as_u64().unwrap();
            requests += 1;
            cursor = done["next"].clone();
            if cursor.is_null() {
                return (acted, requests);
            }
            assert!(requests < 5, "{done}");
        }
    }

    /// `n` dead tasks of `owner` in `queue`: a worker fails each for good.
    async fn dead(&self, owner: &str, queue: &str, n: usize) -> Vec<String> {
        let store = Store::connect(StoreConfig::new(self.redis.url()))
            .await
            .unwrap();
        let builder = Worker::builder(store)
            .queues([queue])
            .lease_ttl(Duration::from_secs(3))
            .concurrency(8);
        let worker = tether_demo_handlers::register(builder, &self.redis.url())
            .build()
            .unwrap();
        let stop = self.stop.child_token();
        let running = tokio::spawn({
            let stop = stop.clone();
            async move { worker.run(stop).await.unwrap() }
        });
        let specs = (0..n)
            .map(|_| {
                JobSpec::new("fail")
                    .queue(queue)
                    .max_attempts(1)
                    .input(&json!({"message": "broken", "fatal": true}))
                    .unwrap()
            })
            .collect();
        let ids: Vec<String> = self
            .producer
            .for_owner(owner)
            .enqueue_many(specs)
            .await
            .unwrap()
            .iter()
            .map(JobId::to_string)
            .collect();
        for id in &ids {
            self.until(id, "failure").await;
        }
        stop.cancel();
        running.await.unwrap();
        ids
    }

    async fn status(&self, id: &str) -> (StatusCode, Value) {
        call(&self.app, "GET", &format!("/v2/tasks/{id}"), ADMIN, None).await
    }

    async fn until(&self, id: &str, status: &str) {
        eventually(
            Duration::from_secs(20),
            format!("{id} never {status}"),
            async || {
                let (_, task) = self.status(id).await;
                if task["status"] == status {
                    Ok(())
                } else {
                    Err(task)
                }
            },
        )
        .await
    }

    async fn bulk(&self, token: &str, body: Value) -> (StatusCode, Value) {
        call(&self.app, "POST", "/v2/tasks/bulk", token, Some(body)).await
    }

    async fn consistent(&self) {
        for queue in self.producer.queues().await.unwrap() {
            let violations = self.producer.check_consistency(&queue).await.unwrap();
            assert!(violations.is_empty(), "{queue}: {violations:?}");
        }
    }
}

fn counts(answer: &Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| {
        answer[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {answer}"))
    };
    (n("matched"), n("acted"), n("skipped"), n("not_found"))
}

/// A tenant's cancel by filter acts on its own tasks only, though the filter matches
/// the other tenant's; its ids of the other tenant's tasks are not found; a filter
/// naming another owner is refused; an admin's dry run counts every owner's.
async fn tenants_act_on_their_own_tasks(topology: Topology) {
    let env = env(topology).await;
    let alices = [
        env.pending("alice", "reports", 6).await,
        env.pending("alice", "mail", 4).await,
    ]
    .concat();
    let bobs = [
        env.pending("bob", "reports", 5).await,
        env.pending("bob", "mail", 3).await,
    ]
    .concat();

    // The confirmation's count: alice sees hers only.
    let (status, dry) = env
        .bulk(
            ALICE,
            json!({"action": "cancel", "filter": {"status": "pending"}, "dry_run": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(counts(&dry), (10, 0, 0, 0), "{dry}");
    assert!(dry["next"].is_null(), "{dry}");
    for id in alices.iter().chain(&bobs) {
        assert_eq!(env.status(id).await.1["status"], "pending");
    }

    // Alice's cancel of "all matching", with a filter that matches bob's tasks too.
    let (status, done) = env
        .bulk(
            ALICE,
            json!({"action": "cancel", "filter": {"type": "noop"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(counts(&done), (10, 10, 0, 0), "{done}");
    for id in &alices {
        assert_eq!(env.status(id).await.1["status"], "cancelled", "{id}");
    }
    for id in &bobs {
        assert_eq!(env.status(id).await.1["status"], "pending", "{id}");
    }

    // Bob's ids in alice's request: not found, untouched.
    let ids: Vec<&String> = bobs.iter().take(3).chain(alices.iter().take(2)).collect();
    let (status, answer) = env
        .bulk(ALICE, json!({"action": "cancel", "ids": ids}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Alice's two are cancelled already: selected, and ignored by a cancel.
    assert_eq!(counts(&answer), (0, 0, 0, 3), "{answer}");
    assert_eq!(answer["ignored"], 2, "{answer}");
    for id in &bobs {
        assert_eq!(env.status(id).await.1["status"], "pending", "{id}");
    }

    // Another owner's tasks by filter: admins only.
    for body in [
        json!({"action": "cancel", "filter": {"owner": "bob"}}),
        json!({"action": "cancel", "filter": {"owner": "bob"}, "dry_run": true}),
    ] {
        let (status, answer) = env.bulk(ALICE, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    }
    let (status, answer) = env
        .bulk(
            ALICE,
            json!({"action": "cancel", "filter": {"owner": "alice"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // An admin counts and acts across owners, or on one owner's.
    let (status, dry) = env
        .bulk(
            ADMIN,
            json!({"action": "cancel", "filter": {"queue": "reports"}, "dry_run": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(counts(&dry).0, 5, "{dry}");
    assert_eq!(dry["ignored"], 6, "{dry}");
    let (status, done) = env
        .bulk(
            ADMIN,
            json!({"action": "cancel", "filter": {"owner": "bob"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(counts(&done), (8, 8, 0, 0), "{done}");
    for id in &bobs {
        assert_eq!(env.status(id).await.1["status"], "cancelled", "{id}");
    }

    // Delete of finished tasks: bob's, by bob; alice's stay.
    let (status, done) = env
        .bulk(
            BOB,
            json!({"action": "delete", "filter": {"status": "cancelled"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(counts(&done), (8, 8, 0, 0), "{done}");
    for id in &bobs {
        assert_eq!(env.status(id).await.0, StatusCode::NOT_FOUND, "{id}");
    }
    for id in &alices {
        assert_eq!(env.status(id).await.1["status"], "cancelled", "{id}");
    }
    env.consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_act_on_their_own_tasks_single() {
    tenants_act_on_their_own_tasks(Topology::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_act_on_their_own_tasks_cluster() {
    tenants_act_on_their_own_tasks(Topology::Cluster).await;
}

/// A queue's dead tasks, retried or purged at once: a dry run counts them; a tenant's
/// request covers its own dead tasks; the admin's every owner's.
async fn dead_tasks_retried_and_purged(topology: Topology) {
    let env = env(topology).await;
    let alices = env.dead("alice", "imports", 3).await;
    let bobs = env.dead("bob", "imports", 2).await;
    let path = |what: &str| format!("/v2/queues/imports/dead/{what}");

    let (status, dry) = call(
        &env.app,
        "POST",
        &path("retry"),
        ADMIN,
        Some(json!({"dry_run": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(counts(&dry), (5, 0, 0, 0), "{dry}");

    // Bob retries his dead: no worker runs them now, so they wait, pending.
    let (status, done) = call(&env.app, "POST", &path("retry"), BOB, None).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(counts(&done), (2, 2, 0, 0), "{done}");
    for id in &bobs {
        assert_eq!(env.status(id).await.1["status"], "pending", "{id}");
    }
    for id in &alices {
        assert_eq!(env.status(id).await.1["status"], "failure", "{id}");
    }

    // Alice purges hers; then the admin finds no dead task left.
    let (status, done) = call(&env.app, "POST", &path("purge"), ALICE, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(counts(&done), (3, 3, 0, 0), "{done}");
    for id in &alices {
        assert_eq!(env.status(id).await.0, StatusCode::NOT_FOUND, "{id}");
    }
    let (_, dry) = call(
        &env.app,
        "POST",
        &path("purge"),
        ADMIN,
        Some(json!({"dry_run": true})),
    )
    .await;
    assert_eq!(counts(&dry).0, 0, "{dry}");
    let (_, list) = call(&env.app, "GET", "/v2/tasks?dead=true", ADMIN, None).await;
    assert_eq!(list["tasks"], json!([]), "{list}");
    env.consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_tasks_retried_and_purged_single() {
    dead_tasks_retried_and_purged(Topology::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_tasks_retried_and_purged_cluster() {
    dead_tasks_retried_and_purged(Topology::Cluster).await;
}

/// One request acts on at most 2,000 tasks and answers where it stopped; the next
/// request goes on from there, across queues, missing none and repeating none, also
/// where hundreds of tasks were created in the same millisecond (one enqueue batch).
async fn a_large_filter_goes_on_from_a_cursor(topology: Topology) {
    let env = env(topology).await;
    let mut all = env.pending("alice", "a-queue", 1500).await;
    all.extend(env.pending("alice", "b-queue", 1200).await);
    // Others' tasks, most waiting on the stream: an admin's walk of a queue reads them
    // beside its index.
    let others = [
        env.waiting("a-queue", 700).await,
        env.pending("bob", "a-queue", 5).await,
        env.waiting("b-queue", 600).await,
    ]
    .concat();
    let dry_run = json!({"action": "cancel", "filter": {"type": "noop"}, "dry_run": true});
    // The count goes to its end in one request (20,000 tasks at most).
    let (status, dry) = env.bulk(ALICE, dry_run.clone()).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(counts(&dry).0, 2700, "{dry}");
    assert!(dry["next"].is_null(), "{dry}");
    let (status, dry) = env.bulk(ADMIN, dry_run).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(counts(&dry).0, 4005, "{dry}");

    let filter = json!({"type": "noop"});
    assert_eq!(env.cancel_to_the_end(ALICE, &filter).await, (2700, 2));
    for id in all.iter().step_by(97) {
        assert_eq!(env.status(id).await.1["status"], "cancelled", "{id}");
    }

    // The admin's walk of every owner's reads each queue's index and its stream, from
    // cursors, through tasks of one enqueue batch on the stream.
    let filter = json!({"status": "pending"});
    assert_eq!(env.cancel_to_the_end(ADMIN, &filter).await, (1305, 3));
    for id in others.iter().step_by(37) {
        assert_eq!(env.status(id).await.1["status"], "cancelled", "{id}");
    }
    env.consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_filter_goes_on_from_a_cursor_single() {
    a_large_filter_goes_on_from_a_cursor(Topology::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_filter_goes_on_from_a_cursor_cluster() {
    a_large_filter_goes_on_from_a_cursor(Topology::Cluster).await;
}

/// Every malformed or oversized request is a 4xx that changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bulk_requests_are_refused() {
    let env = env(Topology::Single).await;
    let ids = env.pending("alice", "reports", 3).await;
    let many: Vec<String> = (0..1001).map(|_| JobId::new().to_string()).collect();
    let long = "x".repeat(100_000);
    for (body, expected) in [
        (json!({"action": "cancel"}), StatusCode::BAD_REQUEST),
        (
            json!({"action": "cancel", "ids": ids, "filter": {}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"action": "cancel", "ids": []}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"action": "cancel", "ids": many}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"action": "cancel", "ids": ["not-an-id"]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"action": "cancel", "ids": [ids[0]], "cursor": "reports/0/"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"action": "explode", "filter": {}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"action": "cancel", "filter": {}, "extra": 1}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"action": "cancel", "filter": {"status": "sleeping"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"action": "cancel", "filter": {"queue": "no spaces"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"action": "cancel", "filter": {"queue": long}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"action": "cancel", "filter": {"owner": long}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"action": "cancel", "filter": {"priority": 10}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"action": "cancel", "filter": {"priority": -1}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"action": "cancel", "filter": {"nope": 1}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"action": "cancel", "filter": {}, "cursor": long}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"action": "cancel", "filter": {}, "cursor": "no-slashes"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"action": "cancel", "filter": {}, "cursor": "a/b/c/x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"action": "cancel", "filter": {}, "cursor": "reports/1/\n"}),
            StatusCode::BAD_REQUEST,
        ),
        // Well-formed cursors that name no place.
        (
            json!({"action": "cancel", "filter": {}, "cursor": "bad queue!/0/"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"action": "cancel", "filter": {}, "cursor": "reports/99999999999999999999999/"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"action": "cancel", "filter": {}, "cursor": "reports/1/abc"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"action": "cancel", "filter": {}, "dry_run": "yes"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, answer) = env.bulk(ALICE, body.clone()).await;
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(answer["code"].is_string(), "{answer}");
    }
    for text in [
        "[]",
        "not json",
        "{\"action\": \"cancel\", \"ids\": {}}",
        "null",
    ] {
        let (status, answer) = call_text(
            &env.app,
            "POST",
            "/v2/tasks/bulk",
            Some(ALICE),
            Some(text.into()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}: {answer}");
    }
    let (status, _) = call(
        &env.app,
        "POST",
        "/v2/tasks/bulk",
        "wrong-token",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for (path, body) in [
        ("/v2/queues/no%20spaces/dead/retry", None),
        ("/v2/queues/reports/dead/purge", Some(json!({"dry_run": 1}))),
        (
            "/v2/queues/reports/dead/purge",
            Some(json!({"action": "cancel"})),
        ),
    ] {
        let (status, answer) = call(&env.app, "POST", path, ALICE, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
    }
    for id in &ids {
        assert_eq!(env.status(id).await.1["status"], "pending", "{id}");
    }
}

/// A task is found by its id, by the start of its id and by a word of its name, among
/// the caller's tasks only.
async fn search_by_id_prefix_and_name(topology: Topology) {
    let env = env(topology).await;
    let alices = env.pending("alice", "reports", 30).await;
    let bobs = env.pending("bob", "mail", 30).await;
    let waiting = env.waiting("mail", 12).await;
    let search = |token: &'static str, q: String| {
        let app = env.app.clone();
        async move {
            let path = format!("/v2/search?q={}", urlencode(&q));
            let (status, answer) = call(&app, "GET", &path, token, None).await;
            assert_eq!(status, StatusCode::OK, "{q}: {answer}");
            answer["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        search(ALICE, alices[7].clone()).await,
        vec![alices[7].clone()]
    );
    assert_eq!(
        search(ALICE, alices[7].to_uppercase()).await,
        vec![alices[7].clone()]
    );
    assert!(search(ALICE, bobs[7].clone()).await.is_empty());
    let found = search(ALICE, alices[7][..30].to_owned()).await;
    assert_eq!(found, vec![alices[7].clone()]);
    // By name: "alice-report-1" is in 1 and 10-19.
    let mut found = search(ALICE, "ALICE-report-1".into()).await;
    found.sort();
    let mut expected: Vec<String> = std::iter::once(1)
        .chain(10..20)
        .map(|i| alices[i].clone())
        .collect();
    expected.sort();
    assert_eq!(found, expected);
    assert!(search(ALICE, "bob-report".into()).await.is_empty());
    assert_eq!(
        search(BOB, "bob-report-29".into()).await,
        vec![bobs[29].clone()]
    );
    assert_eq!(search(ADMIN, "-report-29".into()).await.len(), 2);
    // Tasks waiting on the stream since their enqueue (no owner: an admin's), found by
    // name and by id prefix.
    let mut found = search(ADMIN, "waiting-1".into()).await;
    found.sort();
    let mut expected = vec![waiting[1].clone(), waiting[10].clone(), waiting[11].clone()];
    expected.sort();
    assert_eq!(found, expected);
    assert_eq!(
        search(ADMIN, waiting[4][..30].to_owned()).await,
        vec![waiting[4].clone()]
    );
    assert!(search(BOB, "waiting-1".into()).await.is_empty());
    for q in ["", "%00", &"x".repeat(201)] {
        let (status, answer) =
            call(&env.app, "GET", &format!("/v2/search?q={q}"), ALICE, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {answer}");
    }
    let (status, _) = call(&env.app, "GET", "/v2/search?q=x&limit=0", ALICE, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_id_prefix_and_name_single() {
    search_by_id_prefix_and_name(Topology::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_id_prefix_and_name_cluster() {
    search_by_id_prefix_and_name(Topology::Cluster).await;
}

/// A queue's last hour, per minute: the tasks created and finished, for admins.
async fn throughput_of_the_last_hour(topology: Topology) {
    let env = env(topology).await;
    env.pending("alice", "reports", 7).await;
    env.dead("bob", "reports", 4).await;
    // After the worker stopped: these stay on the stream.
    env.waiting("reports", 5).await;
    let (status, chart) = call(
        &env.app,
        "GET",
        "/v2/queues/reports/throughput",
        ADMIN,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{chart}");
    let sum = |k: &str| {
        chart[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(chart["created"].as_array().unwrap().len(), 60, "{chart}");
    assert_eq!(chart["interval_seconds"], 60);
    // Created: the delayed, the waiting (on the stream, in no index of jobs) and the dead.
    assert_eq!((sum("created"), sum("finished")), (16, 4), "{chart}");
    // This minute's interval is the last one.
    assert!(
        chart["created"][59].as_u64().unwrap() > 0 || chart["created"][58].as_u64().unwrap() > 0,
        "{chart}"
    );
    let (status, _) = call(
        &env.app,
        "GET",
        "/v2/queues/reports/throughput",
        ALICE,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &env.app,
        "GET",
        "/v2/queues/bad%20name/throughput",
        ADMIN,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, empty) = call(
        &env.app,
        "GET",
        "/v2/queues/nothing-here/throughput",
        ADMIN,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        empty["created"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| **v != 0)
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_of_the_last_hour_single() {
    throughput_of_the_last_hour(Topology::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_of_the_last_hour_cluster() {
    throughput_of_the_last_hour(Topology::Cluster).await;
}

/// Redis's command counts by name (`INFO commandstats`), to see what one request cost.
async fn command_counts(redis: &TestRedis) -> std::collections::HashMap<String, u64> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// A tenant who created many queues cannot make one request by ids cost ids × queues
/// reads: without `queue`, the product is bounded (a clear 400 past it); with it, the
/// ids are read in that queue only, as summaries (no input or result).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_cost_what_they_name_not_every_queue() {
    let env = env(Topology::Single).await;
    for i in 0..30 {
        env.pending("bob", &format!("bq{i}"), 1).await;
    }
    let mine = env.pending("alice", "reports", 50).await;
    let strangers: Vec<String> = (0..1000).map(|_| JobId::new().to_string()).collect();

    let (status, answer) = env
        .bulk(
            ALICE,
            json!({"action": "cancel", "ids": strangers, "dry_run": true}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("name their queue"),
        "{answer}"
    );

    let before = command_counts(&env.redis).await;
    let (status, answer) = env
        .bulk(
            ALICE,
            json!({"action": "cancel", "ids": mine, "queue": "reports", "dry_run": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(counts(&answer), (50, 0, 0, 0), "{answer}");
    let after = command_counts(&env.redis).await;
    let spent: u64 = after
        .iter()
        .map(|(name, n)| n - before.get(name).copied().unwrap_or(0))
        .sum();
    // One HMGET and one ZSCORE per id (INFO itself counts once).
    assert!(spent <= 2 * 50 + 5, "{spent} commands: {after:?}");
    assert_eq!(after.get("hgetall"), before.get("hgetall"), "{after:?}");

    // Ids of another queue, or another owner's, named with a queue: not found.
    let (status, answer) = env
        .bulk(
            BOB,
            json!({"action": "cancel", "ids": mine, "queue": "reports", "dry_run": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["not_found"], 50, "{answer}");
    // A few ids without a queue are still found wherever they are.
    let (status, answer) = env
        .bulk(
            ALICE,
            json!({"action": "cancel", "ids": &mine[..10], "dry_run": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(counts(&answer), (10, 0, 0, 0), "{answer}");
    // `queue` is for ids only.
    let (status, answer) = env
        .bulk(
            ALICE,
            json!({"action": "cancel", "filter": {}, "queue": "reports", "dry_run": true}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

/// A cursor is a place in the order of queue names: a tenant learns nothing of other
/// owners' queues from it, whether the queue it names exists or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_tells_no_queue_names() {
    let env = env(Topology::Single).await;
    env.pending("bob", "bobs-secret", 3).await;
    env.pending("alice", "zz-alice", 2).await;
    let ask = |cursor: &str| {
        env.bulk(
            ALICE,
            json!({"action": "cancel", "filter": {}, "dry_run": true, "cursor": cursor}),
        )
    };
    let (existing, a) = ask("bobs-secret/0/").await;
    let (missing, b) = ask("bobs-secrex/0/").await;
    assert_eq!(existing, StatusCode::OK, "{a}");
    assert_eq!((existing, &a), (missing, &b));
    // Both go on at the next queue by name, alice's.
    assert_eq!(counts(&a), (2, 0, 0, 0), "{a}");
    // A walk out of budget exactly at a queue's end names that queue's end, not the
    // next queue (which could be another owner's).
    env.pending("alice", "aa-full", 2000).await;
    let (status, d) = env
        .bulk(ALICE, json!({"action": "cancel", "filter": {}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(counts(&d), (2000, 2000, 0, 0), "{d}");
    assert!(d["next"].as_str().unwrap().starts_with("aa-full/"), "{d}");
    let (status, e) = env
        .bulk(
            ALICE,
            json!({"action": "cancel", "filter": {}, "cursor": d["next"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(
        (counts(&e), &e["next"]),
        ((2, 2, 0, 0), &Value::Null),
        "{e}"
    );
    // Past the last queue of the filter: nothing left.
    let (status, c) = env
        .bulk(
            ALICE,
            json!({"action": "cancel", "filter": {"queue": "zz-alice"}, "dry_run": true,
                   "cursor": "zzz/0/"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(
        (counts(&c), &c["next"]),
        ((0, 0, 0, 0), &Value::Null),
        "{c}"
    );
}
