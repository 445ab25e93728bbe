//! Owners (tenants) of one API are mutually untrusted: nothing one owner sends can
//! reveal, block or exhaust another owner's tasks. Admins are trusted.

mod common;
use common::call_as as call;

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use serde_json::{Value, json};
use tether_api::{ApiConfig, Auth};
use tether_producer::Producer;
use tether_store::{Store, StoreConfig};
use tether_testkit::{RedisOptions, RedisServer, eventually};
use tether_worker::{CancellationToken, Worker};

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

struct Env {
    _redis: RedisServer,
    app: Router,
    stop: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn auth() -> Auth {
    Auth::from_toml(&format!(
        "[[tokens]]\ntoken = \"{ALICE}\"\nowner = \"alice\"\n[[tokens]]\ntoken = \"{BOB}\"\nowner = \"bob\"\n\
         [[tokens]]\ntoken = \"{ADMIN}\"\nowner = \"ops\"\nrole = \"admin\"\n"
    ))
    .unwrap()
}

/// An API over a private Redis; `store` and `api` adjust the defaults.
async fn env_with(
    with_worker: bool,
    store: impl FnOnce(&mut StoreConfig),
    api: impl FnOnce(&mut ApiConfig),
) -> Env {
    let redis = RedisServer::start(RedisOptions::default());
    let mut store_config = StoreConfig::new(redis.url());
    store(&mut store_config);
    let store = Store::connect(store_config).await.unwrap();
    let mut config = ApiConfig {
        auth: auth(),
        ..ApiConfig::default()
    };
    api(&mut config);
    let stop = CancellationToken::new();
    let (app, _) = tether_api::router(Producer::from_store(store.clone()), config, stop.clone());
    if with_worker {
        let builder = Worker::builder(store)
            .lease_ttl(Duration::from_secs(3))
            .concurrency(4);
        let worker = tether_demo_handlers::register(builder, &redis.url())
            .build()
            .unwrap();
        let token = stop.clone();
        tokio::spawn(async move { worker.run(token).await.unwrap() });
    }
    Env {
        _redis: redis,
        app,
        stop,
    }
}

async fn env(with_worker: bool) -> Env {
    env_with(with_worker, |_| {}, |_| {}).await
}

async fn create(app: &Router, token: &str, body: Value) -> String {
    let (status, task) = call(app, "POST", "/v2/tasks", token, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    task["id"].as_str().unwrap().to_owned()
}

/// Polls a task until it has `status`; returns it.
async fn until_status(app: &Router, id: &str, token: &str, status: &str) -> Value {
    let reached = format!("task {id} never reached {status}");
    eventually(Duration::from_secs(15), reached, async || {
        let (_, task) = call(app, "GET", &format!("/v2/tasks/{id}"), token, None).await;
        if task["status"] == status {
            Ok(task)
        } else {
            Err(task)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_scoped_by_owner() {
    let env = env(false).await;
    let body = json!({"type": "noop", "idempotency_key": "nightly-report", "delay": "1m"});
    let alices = create(&env.app, ALICE, body.clone()).await;
    // Bob's create with the same key is his own, new task; nothing of alice's leaks.
    let (status, answer) = call(&env.app, "POST", "/v2/tasks", BOB, Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert!(!answer.to_string().contains(&alices), "{answer}");
    assert_eq!(answer["owner"], "bob");
    let bobs = answer["id"].as_str().unwrap().to_owned();
    // Each owner's resend still finds their own task.
    for (token, id) in [(ALICE, &alices), (BOB, &bobs)] {
        let (status, again) = call(&env.app, "POST", "/v2/tasks", token, Some(body.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "{again}");
        assert_eq!(again["id"], json!(id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_marker_is_answered_like_a_missing_one() {
    let env = env(false).await;
    let mut alices = Vec::new();
    for t in ["noop", "sleep", "touch"] {
        alices.push(create(&env.app, ALICE, json!({"type": t, "delay": "1m"})).await);
    }
    for t in ["fail", "progress"] {
        create(&env.app, BOB, json!({"type": t, "delay": "1m"})).await;
    }
    let missing = tether_producer::JobId::new().to_string();
    for sort_key in ["created_at", "updated_at", "status", "type", "id"] {
        for foreign in &alices {
            let ask = |marker: &str| {
                format!("/v2/tasks?limit=1&sort_key={sort_key}&sort_dir=asc&marker={marker}")
            };
            let (s1, a1) = call(&env.app, "GET", &ask(foreign), BOB, None).await;
            let (s2, a2) = call(&env.app, "GET", &ask(&missing), BOB, None).await;
            assert_eq!(
                (s1, a1.to_string().replace(foreign.as_str(), "X")),
                (s2, a2.to_string().replace(missing.as_str(), "X")),
                "sort_key={sort_key}: another owner's marker is answered unlike a missing one"
            );
        }
    }
    // The owner's own marker and an admin's still work.
    let (status, _) = call(
        &env.app,
        "GET",
        &format!("/v2/tasks?marker={}", alices[1]),
        ALICE,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &env.app,
        "GET",
        &format!("/v2/tasks?marker={}", alices[1]),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_force_cancel_a_running_non_cancelable_task() {
    let env = env(true).await;
    let id = create(
        &env.app,
        ALICE,
        json!({"type": "sleep", "input": {"ms": 600_000}, "cancelable": false}),
    )
    .await;
    until_status(&env.app, &id, ALICE, "processing").await;
    let cancel = format!("/v2/tasks/{id}/cancel");
    let force = format!("{cancel}?force=true");
    let (status, answer) = call(&env.app, "POST", &cancel, ADMIN, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    // Only admins may force: the owner may not override their own `cancelable: false`.
    let (status, answer) = call(&env.app, "POST", &force, ALICE, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, answer) = call(&env.app, "POST", &force, ADMIN, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    // The worker stops the handler at its next heartbeat (lease 3 s: every second).
    let task = until_status(&env.app, &id, ALICE, "cancelled").await;
    assert_eq!(task["error_code"], "RequestCanceled");
    // A pending one is cancelled at once.
    let later = create(
        &env.app,
        BOB,
        json!({"type": "noop", "cancelable": false, "delay": "1h"}),
    )
    .await;
    let (status, answer) = call(
        &env.app,
        "POST",
        &format!("/v2/tasks/{later}/cancel?force=true"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_past_the_horizon_is_refused() {
    let env = env(false).await;
    for body in [
        json!({"type": "noop", "run_at": "9999-12-31T00:00:00Z"}),
        json!({"type": "noop", "delay": 100_000_000}),
        json!({"type": "noop", "delay": "31days"}),
    ] {
        let (status, answer) = call(&env.app, "POST", "/v2/tasks", ALICE, Some(body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        assert_eq!(answer["code"], "BeyondHorizon", "{answer}");
        assert!(answer["message"].as_str().unwrap().contains("30 days"));
    }
    create(&env.app, ALICE, json!({"type": "noop", "delay": "29days"})).await;
    let (_, list) = call(&env.app, "GET", "/v2/tasks", ALICE, None).await;
    assert_eq!(list["tasks"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_past_the_pending_quota_gets_429() {
    let env = env_with(false, |s| s.max_pending_per_owner = 3, |_| {}).await;
    let delayed = json!({"type": "noop", "delay": "1h"});
    let mut alices = Vec::new();
    for _ in 0..3 {
        alices.push(create(&env.app, ALICE, delayed.clone()).await);
    }
    let (status, answer) = call(&env.app, "POST", "/v2/tasks", ALICE, Some(delayed.clone())).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(answer["code"], "QuotaExceeded");
    // A resend with a key she used is an answer, not a new job: no quota spent.
    let keyed = json!({"type": "noop", "delay": "1h", "idempotency_key": "k"});
    let (status, answer) = call(&env.app, "POST", "/v2/tasks", ALICE, Some(keyed.clone())).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    // Bob is not affected by alice's jobs.
    create(&env.app, BOB, delayed.clone()).await;
    // A finished job no longer counts.
    let (status, _) = call(
        &env.app,
        "POST",
        &format!("/v2/tasks/{}/cancel", alices[0]),
        ALICE,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    create(&env.app, ALICE, keyed.clone()).await;
    let (status, again) = call(&env.app, "POST", "/v2/tasks", ALICE, Some(keyed)).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a resend of an accepted key: {again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_created_only_in_allowed_queues() {
    let env = env_with(
        false,
        |_| {},
        |a| a.allowed_queues = Some(vec!["default".into(), "mail".into()]),
    )
    .await;
    create(&env.app, ALICE, json!({"type": "noop", "queue": "mail"})).await;
    create(&env.app, ALICE, json!({"type": "noop"})).await;
    for token in [ALICE, ADMIN] {
        let (status, answer) = call(
            &env.app,
            "POST",
            "/v2/tasks",
            token,
            Some(json!({"type": "noop", "queue": "junk-1"})),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        assert_eq!(answer["code"], "QueueNotAllowed");
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("default, mail"),
            "{answer}"
        );
    }
}

/// The body of a batch (`tether.batch`) of `jobs`, then `then`, as a tenant can send one.
fn batch_body(jobs: Vec<tether_producer::JobSpec>, then: tether_producer::JobSpec) -> Value {
    let input = tether_model::tree::BatchInput { jobs, then };
    json!({"type": tether_model::tree::BATCH_TYPE, "input": input})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_held_to_its_callers_queues_types_and_quota() {
    use tether_producer::JobSpec;
    let env = env_with(
        false,
        |s| s.max_pending_per_owner = 5,
        |a| {
            a.allowed_queues = Some(vec!["default".into(), "mail".into()]);
            a.job_types = Some(vec!["noop".into(), "tether.batch".into()]);
        },
    )
    .await;
    let noop = || JobSpec::new("noop");
    let refused =
        [
            (
                batch_body(vec![noop(), noop().queue("junk-1")], noop()),
                StatusCode::FORBIDDEN,
                "QueueNotAllowed",
            ),
            (
                batch_body(vec![noop()], noop().queue("junk-1")),
                StatusCode::FORBIDDEN,
                "QueueNotAllowed",
            ),
            (
                batch_body(vec![JobSpec::new("evil")], noop()),
                StatusCode::BAD_REQUEST,
                "UnknownTaskType",
            ),
            // A batch inside a batch is held to the same rules.
            (
                batch_body(
                    vec![JobSpec::new("tether.batch").input_json(
                        batch_body(vec![noop().queue("junk-1")], noop())["input"].clone(),
                    )],
                    noop(),
                ),
                StatusCode::FORBIDDEN,
                "QueueNotAllowed",
            ),
            // A group no body could give (its owner's name would make it too long to spawn).
            (
                batch_body(vec![noop().group("g".repeat(200))], noop()),
                StatusCode::BAD_REQUEST,
                "BadRequest",
            ),
            // A batch whose input its worker could not read.
            (
                json!({"type": "tether.batch", "input": {"jobs": "all of them"}}),
                StatusCode::BAD_REQUEST,
                "BadRequest",
            ),
            // The batch, a batch of two in it and `then`, and `then`: six tasks, past the quota.
            (
                batch_body(
                    vec![
                        JobSpec::new("tether.batch")
                            .input_json(batch_body(vec![noop(), noop()], noop())["input"].clone()),
                    ],
                    noop(),
                ),
                StatusCode::TOO_MANY_REQUESTS,
                "QuotaExceeded",
            ),
            // The batch, its four jobs and `then` are six unfinished tasks: past the quota.
            (
                batch_body(vec![noop(), noop(), noop(), noop()], noop()),
                StatusCode::TOO_MANY_REQUESTS,
                "QuotaExceeded",
            ),
        ];
    for (body, status, code) in refused {
        let (got, answer) = call(&env.app, "POST", "/v2/tasks", ALICE, Some(body.clone())).await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
    }
    // Three jobs and `then`: five, as many as the quota allows.
    create(
        &env.app,
        ALICE,
        batch_body(vec![noop(), noop().queue("mail"), noop()], noop()),
    )
    .await;
    // Until a worker spawns its jobs, the batch counts as one unfinished task: another
    // such batch would not fit beside it, a task does.
    let again = batch_body(vec![noop(), noop(), noop()], noop());
    let (status, answer) = call(&env.app, "POST", "/v2/tasks", ALICE, Some(again)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    // (Only one task is unfinished: the answer says why a batch does not fit.)
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains("1 unfinished") && message.contains("every job it carries"),
        "{message}"
    );
    create(&env.app, ALICE, json!({"type": "noop"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batchs_jobs_and_then_belong_to_its_owner() {
    use tether_producer::JobSpec;
    let env = env_with(true, |s| s.max_pending_per_owner = 5, |_| {}).await;
    // Jobs written as bob's, in bob's group, and a `then` posing as a child of bob's.
    let bobs = || JobSpec::new("noop").owner("bob").group("bob");
    let mut then = bobs();
    let bobs_task = create(&env.app, BOB, json!({"type": "noop", "delay": "1h"})).await;
    let bobs_id: tether_producer::JobId = bobs_task.parse().unwrap();
    then.parent = Some(tether_model::tree::ParentLink {
        id: bobs_id,
        queue: "default".into(),
        root: bobs_id,
    });
    let batch = create(&env.app, ALICE, batch_body(vec![bobs()], then)).await;
    let done = until_status(&env.app, &batch, ALICE, "success").await;
    let then = done["result"]["then"].as_str().unwrap().to_owned();
    let then = until_status(&env.app, &then, ALICE, "success").await;
    assert_eq!(
        (&then["owner"], &then["group"]),
        (&json!("alice"), &json!("alice/bob"))
    );
    assert_eq!(then["parent_id"], Value::Null, "{then}");
    let (_, children) = call(
        &env.app,
        "GET",
        &format!("/v2/tasks?parent={batch}"),
        ALICE,
        None,
    )
    .await;
    let child = &children["tasks"][0];
    assert_eq!(
        (&child["owner"], &child["group"]),
        (&json!("alice"), &json!("alice/bob"))
    );
    // Bob sees only his own task.
    let (_, list) = call(&env.app, "GET", "/v2/tasks", BOB, None).await;
    let ids: Vec<&Value> = list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["id"])
        .collect();
    assert_eq!(ids, [&json!(bobs_task)], "{list}");
    // All finished, alice's whole quota is hers again (the batch was weighed, not counted,
    // as its jobs and `then`).
    for _ in 0..5 {
        create(&env.app, ALICE, json!({"type": "noop", "delay": "1h"})).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_spawned_under_an_external_task_is_held_to_its_callers_queues() {
    use tether_producer::JobSpec;
    let env = env_with(
        false,
        |_| {},
        |a| a.allowed_queues = Some(vec!["default".into()]),
    )
    .await;
    let parent = create(&env.app, ALICE, json!({"type": "import", "external": true})).await;
    let mut child = batch_body(
        vec![JobSpec::new("noop").queue("junk-1")],
        JobSpec::new("noop"),
    );
    child["key"] = json!("k");
    let path = format!("/v2/tasks/{parent}/children");
    let (status, answer) = call(&env.app, "POST", &path, ALICE, Some(child)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["code"], "QueueNotAllowed");
}

/// A batch stored as its creator wrote it (before the producer scoped batches, or by a
/// schedule, whose jobs are enqueued as stored): the worker makes its jobs and `then` the
/// batch's owner's, in the owner's groups, as no schedule's firing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_scopes_the_jobs_of_a_batch_stored_unscoped() {
    use tether_producer::JobSpec;
    let env = env(true).await;
    let store = Store::connect(StoreConfig::new(env._redis.url()))
        .await
        .unwrap();
    let mut bobs = JobSpec::new("noop").owner("bob").group("bob");
    bobs.schedule = Some("bobs-nightly".into());
    let input = tether_model::tree::BatchInput {
        jobs: vec![bobs.clone()],
        then: bobs,
    };
    // The array form, which the worker reads as well as the object form.
    let input = json!([input.jobs, input.then]);
    let batch = JobSpec::new("tether.batch")
        .input_json(input)
        .owner("alice");
    let batch = store.enqueue(&batch).await.unwrap().id.to_string();
    let done = until_status(&env.app, &batch, ALICE, "success").await;
    let then = done["result"]["then"].as_str().unwrap().to_owned();
    let then = until_status(&env.app, &then, ALICE, "success").await;
    let path = format!("/v2/tasks?parent={batch}");
    let (_, children) = call(&env.app, "GET", &path, ALICE, None).await;
    for job in [&then, &children["tasks"][0]] {
        let seen = (&job["owner"], &job["group"], &job["schedule"]);
        assert_eq!(
            seen,
            (&json!("alice"), &json!("alice/bob"), &Value::Null),
            "{job}"
        );
    }
}

/// `.` and `..` are the URL path's own segments: a queue or schedule of either name
/// could be made but never reached (clients and browsers resolve them away, `%2E` too),
/// so `/v2/queues/../pause` is `/v2/pause`. They are refused, as any other bad name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_are_no_queue_or_schedule_names() {
    let env = env(false).await;
    for name in [".", ".."] {
        let task = json!({"type": "noop", "queue": name});
        let (status, answer) = call(&env.app, "POST", "/v2/tasks", ALICE, Some(task)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {answer}");
        let schedule = json!({"name": name, "type": "noop", "every": 60});
        let (status, answer) = call(&env.app, "POST", "/v2/schedules", ALICE, Some(schedule)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {answer}");
    }
    // Dots among other characters are names like any other.
    for name in ["...", ".x", "x..", "a.b"] {
        create(&env.app, ALICE, json!({"type": "noop", "queue": name})).await;
    }
}
