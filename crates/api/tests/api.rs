//! The REST API against a real Redis and a real worker.

mod common;
use common::call;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tether_api::{ApiConfig, Auth};
use tether_producer::Producer;
use tether_store::{Store, StoreConfig};
use tether_testkit::{RedisOptions, RedisServer, eventually};
use tether_worker::{CancellationToken, Worker};
use tower::ServiceExt;

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

struct Env {
    redis: RedisServer,
    app: Router,
    stop: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn env(with_worker: bool) -> Env {
    let redis = RedisServer::start(RedisOptions::default());
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let auth = Auth::from_toml(&format!(
        "[[tokens]]\ntoken = \"{ALICE}\"\nowner = \"alice\"\n[[tokens]]\ntoken = \"{BOB}\"\nowner = \"bob\"\n\
         [[tokens]]\ntoken = \"{ADMIN}\"\nowner = \"ops\"\nrole = \"admin\"\n"
    ))
    .unwrap();
    let types = tether_demo_handlers::DEMO_TYPES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let config = ApiConfig {
        auth,
        job_types: Some(types),
        body_limit: 64 * 1024,
        ..ApiConfig::default()
    };
    let stop = CancellationToken::new();
    let (app, _) = tether_api::router(Producer::from_store(store.clone()), config, stop.clone());
    if with_worker {
        let builder = Worker::builder(store)
            .lease_ttl(Duration::from_secs(3))
            .concurrency(8);
        let worker = tether_demo_handlers::register(builder, &redis.url())
            .build()
            .unwrap();
        let token = stop.clone();
        tokio::spawn(async move { worker.run(token).await.unwrap() });
    }
    Env { redis, app, stop }
}

async fn create(app: &Router, token: &str, body: Value) -> Value {
    let (status, task) = call(app, "POST", "/v2/tasks", Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    task
}

/// Polls a task until it has `status`; returns it.
async fn until_status(app: &Router, id: &str, status: &str) -> Value {
    let reached = format!("task {id} never reached {status}");
    eventually(Duration::from_secs(10), reached, async || {
        let (_, task) = call(app, "GET", &format!("/v2/tasks/{id}"), Some(ALICE), None).await;
        if task["status"] == status {
            Ok(task)
        } else {
            Err(task)
        }
    })
    .await
}

/// Reads the SSE stream of a task until it closes; returns (event, task) pairs.
async fn events(app: &Router, id: &str, token: &str) -> Vec<(String, Value)> {
    let req = Request::get(format!("/v2/tasks/{id}/events"))
        .header("X-Auth-Token", token)
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let body = tokio::time::timeout(Duration::from_secs(30), resp.into_body().collect())
        .await
        .expect("stream ends")
        .unwrap();
    let text = String::from_utf8(body.to_bytes().to_vec()).unwrap();
    text.split("\n\n")
        .filter_map(|block| {
            let event = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((event.to_owned(), serde_json::from_str(data).unwrap()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_follow_events_to_success() {
    let env = env(true).await;
    let task = create(
        &env.app,
        ALICE,
        json!({"type": "import", "input": {"size_mb": 5, "chunk_ms": 150}}),
    )
    .await;
    for field in [
        "id",
        "type",
        "status",
        "input",
        "owner",
        "message",
        "created_at",
        "updated_at",
        "self",
        "schema",
        "result",
    ] {
        assert!(
            task.get(field).is_some(),
            "Glance field {field} missing: {task}"
        );
    }
    assert_eq!(
        (
            task["status"].clone(),
            task["owner"].clone(),
            task["message"].clone()
        ),
        (json!("pending"), json!("alice"), json!(""))
    );
    assert_eq!(task["result"], Value::Null);
    assert_eq!(task["schema"], "/v2/schemas/task");
    let id = task["id"].as_str().unwrap();
    assert_eq!(task["self"], format!("/v2/tasks/{id}"));
    let created = task["created_at"].as_str().unwrap();
    assert!(
        created.len() == 20 && created.ends_with('Z'),
        "Glance time format: {created}"
    );

    let stream = events(&env.app, id, ALICE).await;
    assert_eq!(stream.first().unwrap().0, "snapshot");
    let (last_event, last) = stream.last().unwrap();
    assert_eq!(last_event, "finished");
    assert_eq!(last["status"], "success");
    assert_eq!(last["result"], json!({"imported_mb": 5, "checks": 5}));
    assert!(
        stream
            .iter()
            .any(|(e, t)| e == "progress" && (1..100).contains(&t["progress"].as_u64().unwrap())),
        "{stream:?}"
    );

    let (status, shown) = call(
        &env.app,
        "GET",
        &format!("/v2/tasks/{id}"),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        shown["expires_at"].is_string(),
        "finished tasks show expires_at"
    );
    assert_eq!(
        (shown["progress"].clone(), shown["phase"].clone()),
        (json!(100), json!("check"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_with_next_links_filters_and_sorts() {
    let env = env(false).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let t = if i % 2 == 0 { "noop" } else { "sleep" };
        ids.push(
            create(&env.app, ALICE, json!({"type": t, "input": {}})).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // Three pages of 3, 3, 1, newest first, by following `next`.
    let mut uri = "/v2/tasks?limit=3".to_owned();
    let mut pages = Vec::new();
    loop {
        let (status, page) = call(&env.app, "GET", &uri, Some(ALICE), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(
            (page["first"].clone(), page["schema"].clone()),
            (json!("/v2/tasks"), json!("/v2/schemas/tasks"))
        );
        let tasks: Vec<String> = page["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            page["tasks"][0].get("input").is_none() && page["tasks"][0].get("result").is_none(),
            "summaries"
        );
        pages.push(tasks);
        match page.get("next") {
            Some(next) => uri = next.as_str().unwrap().to_owned(),
            None => break,
        }
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 1]
    );
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(pages.concat(), newest_first);

    let (_, sleeps) = call(
        &env.app,
        "GET",
        "/v2/tasks?type=sleep&sort_dir=asc",
        Some(ALICE),
        None,
    )
    .await;
    let got: Vec<&str> = sleeps["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[1].as_str(), ids[3].as_str(), ids[5].as_str()]);
    let (_, cancelled) = call(
        &env.app,
        "POST",
        &format!("/v2/tasks/{}/cancel", ids[0]),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(cancelled["status"], "cancelled");
    let (_, by_status) = call(
        &env.app,
        "GET",
        "/v2/tasks?status=cancelled",
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(by_status["tasks"].as_array().unwrap().len(), 1);
    // Sort by type, paging two at a time, never skips or repeats across equal keys.
    let mut uri = "/v2/tasks?sort_key=type&sort_dir=asc&limit=2".to_owned();
    let mut seen = Vec::new();
    loop {
        let (_, page) = call(&env.app, "GET", &uri, Some(ALICE), None).await;
        seen.extend(page["tasks"].as_array().unwrap().iter().map(|t| {
            (
                t["type"].as_str().unwrap().to_owned(),
                t["id"].as_str().unwrap().to_owned(),
            )
        }));
        match page.get("next") {
            Some(next) => uri = next.as_str().unwrap().to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "sorted by type then creation: {seen:?}"
    );
    for bad in [
        "/v2/tasks?limit=0",
        "/v2/tasks?limit=1001",
        "/v2/tasks?sort_key=owner",
        "/v2/tasks?sort_dir=up",
        "/v2/tasks?status=done",
        "/v2/tasks?marker=nonsense",
        "/v2/tasks?limit=abc",
        "/v2/tasks?colour=red",
    ] {
        let (status, err) = call(&env.app, "GET", bad, Some(ALICE), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {err}");
        assert_eq!(err["code"], "BadRequest", "{bad}");
    }
    // A well-formed marker of no visible task: not found.
    let unknown = "/v2/tasks?marker=01a20aa8-09b3-77e0-afe4-856b6835d6ee";
    let (status, _) = call(&env.app, "GET", unknown, Some(ALICE), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Every filter carries into `next`, escaped: `next` dropped `group`, `priority` and
/// `dead` (its second page listed other groups' tasks), and pasted values raw (a group
/// holding `&` ended the query there). A tenant's group filter names the group as its
/// create did (`g1`, stored as `alice/g1`): `group=g1` listed nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_links_keep_every_filter_and_groups_read_as_created() {
    let env = env(false).await;
    for group in ["a&b=c", "other", "a&b=c", "other", "a&b=c"] {
        create(
            &env.app,
            ALICE,
            json!({"type": "noop", "group": group, "priority": 3}),
        )
        .await;
    }
    create(&env.app, ALICE, json!({"type": "noop", "group": "a&b=c"})).await;
    for first in [
        "/v2/tasks?group=a%26b%3Dc&priority=3&limit=1",
        "/v2/tasks?group=alice%2Fa%26b%3Dc&priority=3&limit=1",
    ] {
        let mut uri = first.to_owned();
        let mut seen = Vec::new();
        for _ in 0..10 {
            let (status, page) = call(&env.app, "GET", &uri, Some(ALICE), None).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {page}");
            for task in page["tasks"].as_array().unwrap() {
                seen.push((task["group"].clone(), task["priority"].clone()));
            }
            match page.get("next") {
                Some(next) => uri = next.as_str().unwrap().to_owned(),
                None => break,
            }
        }
        assert_eq!(seen, vec![(json!("alice/a&b=c"), json!(3)); 3], "{first}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_are_isolated_and_tokens_required() {
    let env = env(false).await;
    let mine = create(&env.app, ALICE, json!({"type": "noop", "input": null})).await;
    let id = mine["id"].as_str().unwrap();
    create(&env.app, BOB, json!({"type": "noop"})).await;

    for (token, expected) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("wrong-token-0123456789"), StatusCode::UNAUTHORIZED),
    ] {
        let (status, err) = call(&env.app, "GET", "/v2/tasks", token, None).await;
        assert_eq!(
            (status, err["code"].clone()),
            (expected, json!("Unauthorized"))
        );
    }
    let uri = format!("/v2/tasks/{id}");
    assert_eq!(
        call(&env.app, "GET", &uri, Some(BOB), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&env.app, "POST", &format!("{uri}/cancel"), Some(BOB), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(
            &env.app,
            "PATCH",
            &uri,
            Some(BOB),
            Some(json!({"name": "mine now"}))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let (_, bobs) = call(&env.app, "GET", "/v2/tasks", Some(BOB), None).await;
    assert_eq!(
        bobs["tasks"].as_array().unwrap().len(),
        1,
        "bob never sees alice's task"
    );
    assert_eq!(
        call(&env.app, "GET", "/v2/tasks?owner=alice", Some(BOB), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    let (_, all) = call(&env.app, "GET", "/v2/tasks", Some(ADMIN), None).await;
    assert_eq!(all["tasks"].as_array().unwrap().len(), 2, "admin sees all");
    let (_, alices) = call(&env.app, "GET", "/v2/tasks?owner=alice", Some(ADMIN), None).await;
    assert_eq!(alices["tasks"][0]["id"], id);
    assert_eq!(
        call(&env.app, "GET", &uri, Some(ADMIN), None).await.0,
        StatusCode::OK
    );

    let (status, patched) = call(
        &env.app,
        "PATCH",
        &uri,
        Some(ALICE),
        Some(json!({"name": "nightly", "description": "the big one"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (patched["name"].clone(), patched["description"].clone()),
        (json!("nightly"), json!("the big one"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_codes() {
    let env = env(true).await;
    let app = &env.app;
    let post = |body: &'static str, content_type: &'static str| {
        let app = app.clone();
        async move {
            let req = Request::post("/v2/tasks")
                .header("X-Auth-Token", ALICE)
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body))
                .unwrap();
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let body: Value =
                serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes())
                    .unwrap();
            (status, body)
        }
    };
    let (s, e) = post("{not json", "application/json").await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("BadRequest"))
    );
    let (s, e) = post(
        r#"{"type": "noop", "max_attempts": "three"}"#,
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        e["message"].as_str().unwrap().contains("max_attempts"),
        "names the field: {e}"
    );
    let (s, e) = post(r#"{"type": "noop", "colour": 1}"#, "application/json").await;
    assert!(
        s == StatusCode::BAD_REQUEST && e["message"].as_str().unwrap().contains("colour"),
        "{e}"
    );
    let (s, e) = post(r#"{"type": "transcode"}"#, "application/json").await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("UnknownTaskType"))
    );
    let (s, e) = post(r#"{"type": "noop", "queue": "a{b}"}"#, "application/json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, e) = post(r#"{"type": "noop"}"#, "text/plain").await;
    assert_eq!(
        (s, e["code"].clone()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            json!("UnsupportedMediaType")
        )
    );
    let big = format!(
        r#"{{"type": "noop", "input": "{}"}}"#,
        "x".repeat(100 * 1024)
    )
    .leak();
    let (s, e) = post(big, "application/json").await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::PAYLOAD_TOO_LARGE, json!("PayloadTooLarge"))
    );

    // 409s: cancel of a finished task, of a non-cancelable one, retry of a live one.
    let done = create(app, ALICE, json!({"type": "noop"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    until_status(app, &done, "success").await;
    let (s, e) = call(
        app,
        "POST",
        &format!("/v2/tasks/{done}/cancel"),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::CONFLICT, json!("InvalidState"))
    );
    let (s, e) = call(
        app,
        "POST",
        &format!("/v2/tasks/{done}/retry"),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::CONFLICT, json!("InvalidState"))
    );
    let fixed = create(
        app,
        ALICE,
        json!({"type": "sleep", "input": {"ms": 1}, "cancelable": false, "delay": "1m"}),
    )
    .await;
    let (s, e) = call(
        app,
        "POST",
        &format!("/v2/tasks/{}/cancel", fixed["id"].as_str().unwrap()),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::CONFLICT, json!("NotSupported"))
    );

    // A dead task is re-queued by retry (202).
    let dead = create(
        app,
        ALICE,
        json!({"type": "fail", "input": {"fatal": true}}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    until_status(app, &dead, "failure").await;
    let (s, t) = call(
        app,
        "POST",
        &format!("/v2/tasks/{dead}/retry"),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{t}");
    assert!(t["attempts"].as_u64().unwrap() <= 1, "a fresh run: {t}");
    // It fails again (fatal input), after exactly one attempt of its new run.
    let again = until_status(app, &dead, "failure").await;
    assert_eq!(again["attempts"], 1);

    for (method, uri) in [
        ("GET", "/v2/nothing"),
        ("GET", "/v2/tasks/not-a-uuid"),
        ("DELETE", "/v2/tasks"),
    ] {
        let (s, e) = call(app, method, uri, Some(ALICE), None).await;
        assert!(
            s == StatusCode::NOT_FOUND || s == StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}: {s}"
        );
        assert!(e["code"].is_string(), "{method} {uri}: JSON error");
    }
}

/// A time limit under 1 ms (`0`, `"0s"`, `1e-308`) is no time limit, as the document
/// says: it failed every attempt at once ("timed out after 0.000s") until the attempts
/// ran out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_under_a_millisecond_is_no_time_limit() {
    let env = env(true).await;
    for timeout in [json!(0), json!(1e-308), json!("0s")] {
        let task = create(
            &env.app,
            ALICE,
            json!({"type": "sleep", "input": {"ms": 50}, "timeout": timeout, "max_attempts": 1}),
        )
        .await;
        let id = task["id"].as_str().unwrap();
        let done = until_status(&env.app, id, "success").await;
        assert_eq!(done["attempts"], 1, "{timeout}: {done}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_a_cancelled_task_end_with_cancelled() {
    let env = env(true).await;
    let task = create(
        &env.app,
        ALICE,
        json!({"type": "progress", "input": {"steps": 100, "step_ms": 100}}),
    )
    .await;
    let id = task["id"].as_str().unwrap().to_owned();
    let app = env.app.clone();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        call(
            &app,
            "POST",
            &format!("/v2/tasks/{id}/cancel"),
            Some(ALICE),
            None,
        )
        .await
    });
    let stream = events(&env.app, task["id"].as_str().unwrap(), ALICE).await;
    let (status, _) = canceller.await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED);
    let (event, last) = stream.last().unwrap();
    assert_eq!(
        (
            event.as_str(),
            last["status"].clone(),
            last["error_code"].clone()
        ),
        ("finished", json!("cancelled"), json!("RequestCanceled"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_versions_openapi_and_probes() {
    let env = env(false).await;
    let (s, schema) = call(&env.app, "GET", "/v2/schemas/task", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(schema["name"], "task");
    assert!(
        schema["properties"]["status"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("cancelled"))
    );
    assert!(
        schema["properties"]["type"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("import"))
    );
    let (_, tasks) = call(&env.app, "GET", "/v2/schemas/tasks", None, None).await;
    assert_eq!(tasks["name"], "tasks");
    let (_, versions) = call(&env.app, "GET", "/versions", None, None).await;
    assert_eq!(versions["versions"][0]["status"], "CURRENT");
    assert_eq!(
        call(&env.app, "GET", "/", None, None).await.0,
        StatusCode::MULTIPLE_CHOICES
    );
    let (_, openapi) = call(&env.app, "GET", "/openapi.json", None, None).await;
    for path in [
        "/v2/tasks",
        "/v2/tasks/{id}",
        "/v2/tasks/{id}/cancel",
        "/v2/tasks/{id}/retry",
        "/v2/tasks/{id}/events",
    ] {
        assert!(
            openapi["paths"].get(path).is_some(),
            "openapi documents {path}"
        );
    }
    assert_eq!(
        call(&env.app, "GET", "/healthz", None, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&env.app, "GET", "/readyz", None, None).await.0,
        StatusCode::OK
    );
    let (_, metrics) = call(&env.app, "GET", "/metrics", None, None).await;
    assert!(
        metrics.as_str().unwrap().contains(
            "tether_http_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"}"
        )
    );

    env.redis.kill();
    let (s, e) = call(
        &env.app,
        "POST",
        "/v2/tasks",
        Some(ALICE),
        Some(json!({"type": "noop"})),
    )
    .await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::SERVICE_UNAVAILABLE, json!("ServiceUnavailable")),
        "{e}"
    );
    assert_eq!(
        call(&env.app, "GET", "/readyz", None, None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "[a-z{}. ]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::hash_map("[a-z_]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Bodies of the right shape with wrong values, and of wrong shapes.
    fn body() -> impl Strategy<Value = Value> {
        let field = prop_oneof![
            Just("type"),
            Just("input"),
            Just("queue"),
            Just("delay"),
            Just("run_at"),
            Just("max_attempts"),
            Just("timeout"),
            Just("idempotency_key"),
            Just("name"),
            Just("description"),
            Just("cancelable"),
            Just("other"),
        ];
        prop_oneof![
            proptest::collection::vec((field, json_value()), 0..6).prop_map(
                |fields| Value::Object(
                    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )
            ),
            json_value(),
        ]
    }

    #[test]
    fn no_request_body_produces_a_server_error() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let env = rt.block_on(env(false));
        let config = ProptestConfig {
            cases: 300,
            ..ProptestConfig::default()
        };
        proptest!(config, |(body in body())| {
            let (status, answer) = rt.block_on(call(&env.app, "POST", "/v2/tasks", Some(ALICE), Some(body.clone())));
            prop_assert!(!status.is_server_error(), "{body} → {status} {answer}");
            prop_assert!(status == StatusCode::CREATED || answer["code"].is_string(), "{body} → {status} {answer}");
            let (status, _) = rt.block_on(call(&env.app, "PATCH", "/v2/tasks/01a20aa8-09b3-77e0-afe4-856b6835d6ee", Some(ALICE), Some(body)));
            prop_assert!(!status.is_server_error());
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_counts_dead_filter_and_the_web_console() {
    let env = env(true).await;
    let dead = create(
        &env.app,
        ALICE,
        json!({"type": "fail", "input": {"fatal": true}}),
    )
    .await;
    let ok = create(&env.app, ALICE, json!({"type": "noop", "input": {}})).await;
    until_status(&env.app, dead["id"].as_str().unwrap(), "failure").await;
    until_status(&env.app, ok["id"].as_str().unwrap(), "success").await;

    // Queue counts cover every owner: admins only.
    let (status, queues) = call(&env.app, "GET", "/v2/queues", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK, "{queues}");
    assert_eq!(queues["queues"][0]["queue"], "default");
    assert_eq!(
        (
            &queues["queues"][0]["failure"],
            &queues["queues"][0]["success"],
            &queues["queues"][0]["dead"]
        ),
        (&json!(1), &json!(1), &json!(1))
    );
    let (status, body) = call(&env.app, "GET", "/v2/queues", Some(ALICE), None).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::FORBIDDEN, &json!("Forbidden"))
    );
    assert_eq!(
        call(&env.app, "GET", "/v2/queues", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // dead=true lists the dead task only; a bad value is a 400.
    let (_, page) = call(&env.app, "GET", "/v2/tasks?dead=true", Some(ALICE), None).await;
    let ids: Vec<&Value> = page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["id"])
        .collect();
    assert_eq!(ids, [&dead["id"]]);
    let (status, _) = call(&env.app, "GET", "/v2/tasks?dead=maybe", Some(ALICE), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A browser at / goes to the console; the console's files are embedded and locked down.
    let request = Request::builder()
        .uri("/")
        .header(header::ACCEPT, "text/html,application/xhtml+xml")
        .body(Body::empty())
        .unwrap();
    let response = env.app.clone().oneshot(request).await.unwrap();
    assert!(response.status().is_redirection());
    assert_eq!(response.headers()[header::LOCATION], "/ui/");
    for (path, kind) in [
        ("/ui/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
    ] {
        let response = env
            .app
            .clone()
            .oneshot(Request::builder().uri(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fanout_shows_its_tree_and_lists_its_children() {
    let env = env(true).await;
    let app = &env.app;
    let task = create(
        app,
        ALICE,
        json!({"type": "fanout", "input": {"children": 3, "child_ms": 10}}),
    )
    .await;
    let id = task["id"].as_str().unwrap();
    let done = until_status(app, id, "success").await;
    assert_eq!(done["result"]["children"], 3);
    assert_eq!(done["subtask_count"], 3);
    assert_eq!(done["root_id"], id);
    assert_eq!(done["parent_id"], Value::Null);
    assert_eq!(done["subtasks_link"], format!("/v2/tasks?parent={id}"));
    let subtasks = done["subtasks"].as_array().unwrap().clone();
    assert_eq!(subtasks.len(), 3);

    // Paged, in spawn order.
    let (status, page) = call(
        app,
        "GET",
        &format!("/v2/tasks?parent={id}&limit=2"),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let first: Vec<Value> = page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    assert_eq!(first, subtasks[..2]);
    for child in page["tasks"].as_array().unwrap() {
        assert_eq!(child["parent_id"], id);
        assert_eq!(child["root_id"], id);
        assert_eq!(child["owner"], "alice");
    }
    let next = page["next"].as_str().unwrap().to_owned();
    let (_, rest) = call(app, "GET", &next, Some(ALICE), None).await;
    assert_eq!(rest["tasks"][0]["id"], subtasks[2]);
    assert!(rest.get("next").is_none(), "{rest}");

    // Another tenant sees no children (nor the parent); an admin does.
    let (status, _) = call(
        app,
        "GET",
        &format!("/v2/tasks?parent={id}"),
        Some(BOB),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, page) = call(
        app,
        "GET",
        &format!("/v2/tasks?parent={id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        (status, page["tasks"].as_array().unwrap().len()),
        (StatusCode::OK, 3)
    );
    let (status, _) = call(app, "GET", "/v2/tasks?parent=not-a-task", Some(ALICE), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
