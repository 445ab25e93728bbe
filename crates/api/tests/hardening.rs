//! The API against anonymous and hostile clients: error answers that reveal
//! nothing, bounded metric labels, tokens-file checks, connection timeouts,
//! caps on event streams and shared pub/sub connections.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tether_api::{ApiConfig, Auth};
use tether_producer::Producer;
use tether_store::{Store, StoreConfig};
use tether_testkit::{RedisOptions, RedisServer};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

fn tokens() -> Auth {
    Auth::from_toml(&format!(
        "[[tokens]]\ntoken = \"{ALICE}\"\nowner = \"alice\"\n[[tokens]]\ntoken = \"{BOB}\"\nowner = \"bob\"\n\
         [[tokens]]\ntoken = \"{ADMIN}\"\nowner = \"ops\"\nrole = \"admin\"\n"
    ))
    .unwrap()
}

fn config() -> ApiConfig {
    ApiConfig {
        auth: tokens(),
        ..ApiConfig::default()
    }
}

struct Env {
    redis: RedisServer,
    store: Store,
    app: Router,
    stop: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn env(config: ApiConfig) -> Env {
    let redis = RedisServer::start(RedisOptions::default());
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let stop = CancellationToken::new();
    let (app, _) = tether_api::router(Producer::from_store(store.clone()), config, stop.clone());
    Env {
        redis,
        store,
        app,
        stop,
    }
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, value)
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let (status, _, value) = send(app, req).await;
    (status, value)
}

// ---------------------------------------------------------------------------
// Item 7: error answers and links.

/// A Redis error that is not about the connection (here a key of the wrong type
/// inside a script) is a 500 with a request id and a plain message: no Redis
/// text, no script SHA, no Lua line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_errors_answer_500_with_a_request_id_and_no_redis_detail() {
    let env = env(config()).await;
    let mut conn = env.redis.connection();
    let _: () = redis::cmd("SET")
        .arg("tether:{default}:jobs")
        .arg("not a sorted set")
        .query(&mut conn)
        .unwrap();
    let req = Request::post("/v2/tasks")
        .header(header::AUTHORIZATION, format!("Bearer {ALICE}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"type": "noop"}).to_string()))
        .unwrap();
    let (status, headers, body) = send(&env.app, req).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["code"], "InternalError", "{body}");
    let text = body.to_string();
    for leak in ["WRONGTYPE", "script", "user_script", "f_", "redis"] {
        assert!(!text.contains(leak), "{leak:?} leaks in {text}");
    }
    let id = body["request_id"].as_str().expect("a request id");
    assert!(body["message"].as_str().unwrap().contains(id), "{body}");
    assert_eq!(headers["x-request-id"].to_str().unwrap(), id);
    assert!(!headers.contains_key(header::RETRY_AFTER));
}

/// 503 stays for an unreachable Redis, with a plain message and Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_is_503_without_detail() {
    let env = env(config()).await;
    env.redis.kill();
    let req = Request::post("/v2/tasks")
        .header(header::AUTHORIZATION, format!("Bearer {ALICE}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"type": "noop"}).to_string()))
        .unwrap();
    let (status, headers, body) = send(&env.app, req).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "ServiceUnavailable");
    assert!(headers.contains_key(header::RETRY_AFTER));
    let text = body.to_string();
    for leak in ["refused", "127.0.0.1", "os error", "redis:"] {
        assert!(!text.contains(leak), "{leak:?} leaks in {text}");
    }
}

fn with_host(uri: &str, host: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::HOST, host)
        .header(header::ACCEPT, "application/json")
        .body(Body::empty())
        .unwrap()
}

/// The Host header is not reflected into links unless it is a plain host[:port].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_never_reflect_a_hostile_host_header() {
    let env = env(config()).await;
    for uri in ["/versions", "/"] {
        for host in [
            "evil.example\"",
            "evil.example/<script>",
            "a b",
            "evil.example\\",
            "evil.example@x",
        ] {
            let (_, _, body) = send(&env.app, with_host(uri, host)).await;
            let href = body["versions"][0]["links"][0]["href"].as_str().unwrap();
            assert_eq!(href, "http://localhost/v2/", "{uri} with Host {host:?}");
        }
        let (_, _, body) = send(&env.app, with_host(uri, "api.example:9292")).await;
        assert_eq!(
            body["versions"][0]["links"][0]["href"],
            "http://api.example:9292/v2/"
        );
    }
    // A configured public URL wins over any Host header.
    let public = env_with(ApiConfig {
        public_url: Some("https://tasks.example.com/".into()),
        ..config()
    })
    .await;
    let (_, _, body) = send(&public.app, with_host("/versions", "evil.example")).await;
    assert_eq!(
        body["versions"][0]["links"][0]["href"],
        "https://tasks.example.com/v2/"
    );
}

async fn env_with(config: ApiConfig) -> Env {
    env(config).await
}
