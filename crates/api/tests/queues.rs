//! `/v2/queues/{queue}`: a queue's flow control through the API (admins only), and
//! priority, group and start_by on tasks.

mod common;
use common::call_as as call;

use axum::http::StatusCode;
use serde_json::json;
use tether_api::{ApiConfig, Auth};
use tether_producer::Producer;
use tether_store::{Store, StoreConfig};
use tether_testkit::{RedisOptions, RedisServer};
use tether_worker::CancellationToken;

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

async fn app(redis: &RedisServer) -> axum::Router {
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let auth = Auth::from_toml(&format!(
        "[[tokens]]\ntoken = \"{ALICE}\"\nowner = \"alice\"\n\
         [[tokens]]\ntoken = \"{BOB}\"\nowner = \"bob\"\n\
         [[tokens]]\ntoken = \"{ADMIN}\"\nowner = \"ops\"\nrole = \"admin\"\n"
    ))
    .unwrap();
    let config = ApiConfig {
        auth,
        ..ApiConfig::default()
    };
    tether_api::router(
        Producer::from_store(store),
        config,
        CancellationToken::new(),
    )
    .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_steer_a_queue() {
    let redis = RedisServer::start(RedisOptions::default());
    let app = app(&redis).await;

    // Owners may neither read nor change a queue's flow control: it covers every owner.
    for (method, uri) in [
        ("GET", "/v2/queues/default"),
        ("PATCH", "/v2/queues/default"),
        ("POST", "/v2/queues/default/pause"),
        ("POST", "/v2/queues/default/resume"),
    ] {
        let body = (method == "PATCH").then(|| json!({"concurrency": 1}));
        let (status, answer) = call(&app, method, uri, ALICE, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {answer}");
    }

    let (status, q) = call(&app, "GET", "/v2/queues/default", ADMIN, None).await;
    assert_eq!(status, StatusCode::OK, "{q}");
    assert_eq!(q["paused"], false);
    assert_eq!(q["concurrency"], json!(null));

    let patch = json!({"concurrency": 5, "rate": "20", "group_concurrency": 2});
    let (status, q) = call(&app, "PATCH", "/v2/queues/default", ADMIN, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{q}");
    assert_eq!(
        (
            &q["concurrency"],
            &q["rate"],
            &q["group_concurrency"],
            &q["group_rate"]
        ),
        (&json!(5), &json!(20), &json!(2), &json!(null))
    );
    // null, 0 or "none" clears one; the others stay.
    let patch = json!({"rate": null, "group_concurrency": 0});
    let (_, q) = call(&app, "PATCH", "/v2/queues/default", ADMIN, Some(patch)).await;
    assert_eq!((&q["concurrency"], &q["rate"]), (&json!(5), &json!(null)));
    assert_eq!(q["group_concurrency"], json!(null));
    for bad in [
        json!({"concurrency": -1}),
        json!({"concurrency": 10_000_000}),
        json!({"rate": "fast"}),
        json!({"speed": 1}),
    ] {
        let (status, answer) = call(
            &app,
            "PATCH",
            "/v2/queues/default",
            ADMIN,
            Some(bad.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
    }
    let (status, _) = call(&app, "GET", "/v2/queues/no%20such", ADMIN, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (_, q) = call(&app, "POST", "/v2/queues/default/pause", ADMIN, None).await;
    assert_eq!(q["paused"], true);
    let pause_type = json!({"type": "resize"});
    let (_, q) = call(
        &app,
        "POST",
        "/v2/queues/default/pause",
        ADMIN,
        Some(pause_type),
    )
    .await;
    assert_eq!(q["paused_types"], json!(["resize"]));
    let bad_type = json!({"type": "no spaces"});
    let (status, _) = call(
        &app,
        "POST",
        "/v2/queues/default/pause",
        ADMIN,
        Some(bad_type),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, q) = call(&app, "POST", "/v2/queues/default/resume", ADMIN, None).await;
    assert_eq!(
        (&q["paused"], &q["paused_types"]),
        (&json!(false), &json!(["resize"]))
    );
    let (_, listed) = call(&app, "GET", "/v2/queues", ADMIN, None).await;
    let default = listed["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "default")
        .cloned();
    // The queue appears in the list once it has jobs; its settings ride along then.
    if let Some(default) = default {
        assert_eq!(default["concurrency"], json!(5));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_carry_priority_group_and_start_by() {
    let redis = RedisServer::start(RedisOptions::default());
    let app = app(&redis).await;
    let body = json!({"type": "noop", "priority": 0, "group": "tenant-7", "start_by": "30s"});
    let (status, task) = call(&app, "POST", "/v2/tasks", ALICE, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    // A tenant's group is its own: the owner goes in front.
    assert_eq!(
        (&task["priority"], &task["group"]),
        (&json!(0), &json!("alice/tenant-7"))
    );
    assert!(task["start_by"].is_string(), "{task}");
    // The owner is the default group.
    let (_, task) = call(
        &app,
        "POST",
        "/v2/tasks",
        ALICE,
        Some(json!({"type": "noop"})),
    )
    .await;
    assert_eq!(
        (&task["priority"], &task["group"]),
        (&json!(5), &json!("alice"))
    );
    assert_eq!(task["start_by"], json!(null));
    for bad in [
        json!({"type": "noop", "priority": 10}),
        json!({"type": "noop", "group": ""}),
        json!({"type": "noop", "start_by": "soon"}),
    ] {
        let (status, answer) = call(&app, "POST", "/v2/tasks", ALICE, Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
    }
    let (_, page) = call(&app, "GET", "/v2/tasks?priority=0", ALICE, None).await;
    assert_eq!(page["tasks"].as_array().unwrap().len(), 1, "{page}");
    let (_, page) = call(&app, "GET", "/v2/tasks?group=alice/tenant-7", ALICE, None).await;
    assert_eq!(page["tasks"].as_array().unwrap().len(), 1, "{page}");
}

/// A tenant cannot put jobs into another tenant's group, where they would count
/// against that group's concurrency and rate: a tenant's group is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_join_another_tenants_group() {
    let redis = RedisServer::start(RedisOptions::default());
    let app = app(&redis).await;
    let one = json!({"group_concurrency": 1});
    let (status, _) = call(&app, "PATCH", "/v2/queues/default", ADMIN, Some(one)).await;
    assert_eq!(status, StatusCode::OK);
    let hostile = json!({"type": "noop", "group": "alice"});
    let (status, task) = call(&app, "POST", "/v2/tasks", BOB, Some(hostile)).await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    assert_eq!(task["group"], json!("bob/alice"));
    let (_, task) = call(
        &app,
        "POST",
        "/v2/tasks",
        ALICE,
        Some(json!({"type": "noop"})),
    )
    .await;
    assert_eq!(task["group"], json!("alice"));
    // Both start at once: bob's job holds no place of alice's group.
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let claimed = store
        .claim("default", "w", 10, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    // An admin may name any group.
    let any = json!({"type": "noop", "group": "alice"});
    let (_, task) = call(&app, "POST", "/v2/tasks", ADMIN, Some(any)).await;
    assert_eq!(task["group"], json!("alice"));
}
