//! `/v2/schedules`: create, list, show, PATCH, pause, resume, trigger and delete,
//! owner-scoped like tasks, and firings that show in the task bodies.

mod common;
use common::call_as as call;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use tether_api::{ApiConfig, Auth};
use tether_producer::Producer;
use tether_store::{Store, StoreConfig};
use tether_testkit::{RedisOptions, RedisServer};
use tether_worker::{CancellationToken, Worker};

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";
const ADMIN: &str = "ops-token-0123456789";

/// The API over a fresh Redis, with alice's, bob's and an admin's tokens and `config`'s
/// other settings; the Redis and a store of it are kept for the test.
struct Env {
    redis: RedisServer,
    store: Store,
    app: axum::Router,
    stop: CancellationToken,
}

async fn env(config: ApiConfig) -> Env {
    let redis = RedisServer::start(RedisOptions::default());
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let auth = Auth::from_toml(&format!(
        "[[tokens]]\ntoken = \"{ALICE}\"\nowner = \"alice\"\n[[tokens]]\ntoken = \"{BOB}\"\nowner = \"bob\"\n[[tokens]]\ntoken = \"{ADMIN}\"\nowner = \"ops\"\nrole = \"admin\"\n"
    ))
    .unwrap();
    let stop = CancellationToken::new();
    let config = ApiConfig { auth, ..config };
    let (app, _) = tether_api::router(Producer::from_store(store.clone()), config, stop.clone());
    Env {
        redis,
        store,
        app,
        stop,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_through_the_api() {
    let Env {
        redis,
        store,
        app,
        stop,
    } = env(ApiConfig::default()).await;
    let worker = tether_demo_handlers::register(Worker::builder(store).queues(["s"]), &redis.url())
        .build()
        .unwrap();
    let token = stop.clone();
    tokio::spawn(async move { worker.run(token).await.unwrap() });

    let body =
        json!({"name": "tick", "type": "noop", "queue": "s", "every": "1s", "overlap": "allow"});
    let (status, created) = call(&app, "POST", "/v2/schedules", ALICE, Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["next_fire_times"].as_array().unwrap().len(), 5);
    assert_eq!(created["owner"], "alice");
    let (status, again) = call(&app, "POST", "/v2/schedules", ALICE, Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    for bad in [
        json!({"name": "x", "type": "noop"}),
        json!({"name": "x", "type": "noop", "cron": "61 * * * *"}),
        json!({"name": "x", "type": "noop", "cron": "* * * * *", "tz": "Mars/Olympus"}),
        json!({"name": "bad name", "type": "noop", "every": 5}),
        json!({"name": "x", "type": "noop", "every": 0.1}),
        json!({"name": "x", "type": "noop", "every": 5, "overlap": "sometimes"}),
        json!({"name": "x", "type": "noop", "every": 5, "surprise": 1}),
    ] {
        let (status, answer) = call(&app, "POST", "/v2/schedules", ALICE, Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {answer}");
        assert!(answer["message"].is_string());
    }

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, shown) = call(&app, "GET", "/v2/schedules/tick", ALICE, None).await;
    assert_eq!(status, StatusCode::OK);
    let last = shown["last_job_id"].as_str().expect("fired").to_owned();
    assert!(shown["last_job_status"].is_string(), "{shown}");
    let (_, task) = call(&app, "GET", &format!("/v2/tasks/{last}"), ALICE, None).await;
    assert_eq!(task["schedule"], "tick");
    assert!(task["fire_time"].as_str().is_some(), "{task}");

    // Bob sees none of it and cannot act on it; his own schedule may have the same name.
    let (_, bobs) = call(&app, "GET", "/v2/schedules", BOB, None).await;
    assert_eq!(bobs["schedules"], json!([]));
    for (method, path) in [
        ("GET", "/v2/schedules/tick"),
        ("POST", "/v2/schedules/tick/pause"),
        ("POST", "/v2/schedules/tick/trigger"),
        ("DELETE", "/v2/schedules/tick"),
    ] {
        let (status, _) = call(&app, method, path, BOB, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
    }

    let (status, patched) = call(
        &app,
        "PATCH",
        "/v2/schedules/tick",
        ALICE,
        Some(json!({"cron": "0 0 * * *", "tz": "Europe/Berlin", "input": {"a": 1}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["trigger"]["cron"]["tz"], "Europe/Berlin");
    assert_eq!(patched["job"]["input"], json!({"a": 1}));
    assert_eq!(patched["overlap"], "allow", "fields not given are kept");

    let (status, paused) = call(&app, "POST", "/v2/schedules/tick/pause", ALICE, None).await;
    assert_eq!((status, &paused["paused"]), (StatusCode::OK, &json!(true)));
    let (_, resumed) = call(&app, "POST", "/v2/schedules/tick/resume", ALICE, None).await;
    assert_eq!(resumed["paused"], json!(false));
    let (status, fired) = call(&app, "POST", "/v2/schedules/tick/trigger", ALICE, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(fired["schedule"], "tick");
    let (status, _) = call(&app, "DELETE", "/v2/schedules/tick", ALICE, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&app, "GET", "/v2/schedules/tick", ALICE, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, doc) = call(&app, "GET", "/openapi.json", ALICE, None).await;
    for path in [
        "/v2/schedules",
        "/v2/schedules/{name}",
        "/v2/schedules/{name}/pause",
        "/v2/schedules/{name}/resume",
        "/v2/schedules/{name}/trigger",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} is in the OpenAPI document"
        );
    }
    stop.cancel();
}

/// A schedule is held to what the API allows a task: its type must be registered and its
/// queue allowed, at create and at every change. A schedule of an unknown type, or moved
/// by a PATCH into a queue not allowed, fired tasks there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_held_to_the_apis_types_and_queues() {
    let Env {
        redis: _redis,
        app,
        stop,
        ..
    } = env(ApiConfig {
        job_types: Some(vec!["noop".into(), "tether.batch".into()]),
        allowed_queues: Some(vec!["default".into(), "s".into()]),
        ..ApiConfig::default()
    })
    .await;
    // A batch fires jobs of its own: they are held to the same rules.
    let far = serde_json::to_value(tether_model::tree::BatchInput {
        jobs: vec![tether_model::JobSpec::new("noop").queue("elsewhere")],
        then: tether_model::JobSpec::new("noop"),
    })
    .unwrap();
    for (bad, status, code) in [
        (
            json!({"name": "b", "type": "tether.batch", "input": far, "every": 60}),
            StatusCode::FORBIDDEN,
            "QueueNotAllowed",
        ),
        (
            json!({"name": "unk", "type": "nonexistent", "every": 60}),
            StatusCode::BAD_REQUEST,
            "UnknownTaskType",
        ),
        (
            json!({"name": "far", "type": "noop", "queue": "elsewhere", "every": 60}),
            StatusCode::FORBIDDEN,
            "QueueNotAllowed",
        ),
    ] {
        let (got, answer) = call(&app, "POST", "/v2/schedules", ALICE, Some(bad.clone())).await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{bad} → {answer}"
        );
    }
    let body = json!({"name": "tick", "type": "noop", "queue": "s", "every": 60});
    let (status, created) = call(&app, "POST", "/v2/schedules", ALICE, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    for (change, status, code) in [
        (
            json!({"queue": "elsewhere"}),
            StatusCode::FORBIDDEN,
            "QueueNotAllowed",
        ),
        (
            json!({"type": "nonexistent"}),
            StatusCode::BAD_REQUEST,
            "UnknownTaskType",
        ),
    ] {
        let (got, answer) = call(
            &app,
            "PATCH",
            "/v2/schedules/tick",
            ALICE,
            Some(change.clone()),
        )
        .await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{change} → {answer}"
        );
    }
    let (_, shown) = call(&app, "GET", "/v2/schedules/tick", ALICE, None).await;
    assert_eq!(
        (
            shown["job"]["queue"].as_str(),
            shown["job"]["job_type"].as_str()
        ),
        (Some("s"), Some("noop")),
        "{shown}"
    );
    stop.cancel();
}

/// An admin lists every owner's schedules and reaches each by its `self` link, which
/// names the owner: every route of one schedule answered 404 for another owner's. A
/// tenant naming another owner is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_reach_every_owners_schedule_by_its_self_link() {
    let Env {
        redis: _redis,
        app,
        stop,
        ..
    } = env(ApiConfig::default()).await;
    for token in [ALICE, BOB] {
        let body = json!({"name": "nightly", "type": "noop", "every": "1h"});
        let (status, created) = call(&app, "POST", "/v2/schedules", token, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(
            created["self"], "/v2/schedules/nightly",
            "the owner's own link"
        );
    }
    let (_, listed) = call(&app, "GET", "/v2/schedules", ADMIN, None).await;
    let mut links: Vec<String> = listed["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["self"].as_str().unwrap().to_owned())
        .collect();
    links.sort();
    assert_eq!(
        links,
        [
            "/v2/schedules/nightly?owner=alice",
            "/v2/schedules/nightly?owner=bob"
        ]
    );
    let bobs = "/v2/schedules/nightly?owner=bob";
    let (status, shown) = call(&app, "GET", bobs, ADMIN, None).await;
    assert_eq!(
        (status, shown["owner"].as_str()),
        (StatusCode::OK, Some("bob")),
        "{shown}"
    );
    let (status, paused) = call(
        &app,
        "POST",
        "/v2/schedules/nightly/pause?owner=bob",
        ADMIN,
        None,
    )
    .await;
    assert_eq!(
        (status, paused["paused"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{paused}"
    );
    let (_, alices) = call(&app, "GET", "/v2/schedules/nightly", ALICE, None).await;
    assert_eq!(alices["paused"], false, "only bob's was paused: {alices}");
    let (status, answer) = call(&app, "GET", bobs, ALICE, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, _) = call(&app, "DELETE", bobs, ADMIN, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&app, "GET", "/v2/schedules/nightly", BOB, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "bob's is gone");
    stop.cancel();
}
