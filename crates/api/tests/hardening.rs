//! The API against anonymous and hostile clients: error answers that reveal
//! nothing, bounded metric labels, tokens-file checks, connection timeouts,
//! caps on event streams and shared pub/sub connections.

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

// ---------------------------------------------------------------------------
// Item 2: metric labels come from bounded sets; /metrics can move off the API port.

fn series(metrics: &str, name: &str, label: &str) -> std::collections::BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| {
            let start = l.find(&format!("{label}=\""))? + label.len() + 2;
            let end = start + l[start..].find('"')?;
            Some(l[start..end].to_owned())
        })
        .collect()
}

/// Made-up methods, unmatched routes, and hundreds of new queue and type names
/// add at most a bounded number of series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_labels_stay_bounded_under_made_up_methods_and_names() {
    let env = env(config()).await;
    for i in 0..50 {
        let method = format!("MADEUP{i}{}", "X".repeat(200));
        let req = Request::builder()
            .method(method.as_str())
            .uri(format!("/no/such/route/{i}"))
            .body(Body::empty())
            .unwrap();
        let _ = send(&env.app, req).await;
        let req = Request::builder()
            .method(method.as_str())
            .uri("/v2/tasks")
            .body(Body::empty())
            .unwrap();
        let _ = send(&env.app, req).await;
    }
    for i in 0..150 {
        let body = json!({"type": format!("type-{i}"), "queue": format!("queue-{i}")});
        let (status, task) = call(&env.app, "POST", "/v2/tasks", Some(ALICE), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{task}");
    }
    let (_, metrics) = call(&env.app, "GET", "/metrics", None, None).await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        !metrics.contains("MADEUP"),
        "a made-up method became a label"
    );
    let methods = series(&metrics, "tether_http_requests_total", "method");
    assert!(methods.contains("other"), "{methods:?}");
    assert!(methods.len() <= 8, "{methods:?}");
    let routes = series(&metrics, "tether_http_requests_total", "route");
    assert!(!routes.iter().any(|r| r.contains("no/such")), "{routes:?}");
    let queues = series(&metrics, "tether_jobs_enqueued_total", "queue");
    let types = series(&metrics, "tether_jobs_enqueued_total", "type");
    assert!(queues.contains("other") && types.contains("other"));
    assert!(queues.len() <= 40, "{} queue labels", queues.len());
    assert!(types.len() <= 40, "{} type labels", types.len());
    eprintln!(
        "/metrics: {} bytes; {} method, {} queue, {} type label values",
        metrics.len(),
        methods.len(),
        queues.len(),
        types.len()
    );
    assert!(
        metrics.len() < 64 * 1024,
        "/metrics is {} bytes",
        metrics.len()
    );
}

/// A bare HTTP/1.1 GET over a socket: (status, body).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

struct Served {
    addr: std::net::SocketAddr,
    stop: CancellationToken,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
        self.done.abort();
    }
}

/// `tether_api::serve` on a free loopback port.
async fn serve(store: &Store, config: ApiConfig) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let done = tokio::spawn(tether_api::serve(
        listener,
        Producer::from_store(store.clone()),
        config,
        stop.clone(),
    ));
    Served { addr, stop, done }
}

/// With a metrics address, /metrics is served there and not on the API port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_served_on_their_own_address() {
    let env = env(config()).await;
    let metrics_addr: std::net::SocketAddr = format!("127.0.0.1:{}", tether_testkit::free_port())
        .parse()
        .unwrap();
    let served = serve(
        &env.store,
        ApiConfig {
            metrics_addr: Some(metrics_addr),
            ..config()
        },
    )
    .await;
    // This process, not another test's that took the port meanwhile.
    eventually(
        Duration::from_secs(5),
        "metrics port never opened",
        async || {
            tether_testkit::pid_listens_on(std::process::id(), metrics_addr.port())
                .then_some(())
                .ok_or("not yet")
        },
    )
    .await;
    assert_eq!(http_get(served.addr, "/healthz").await.0, 200);
    assert_eq!(http_get(served.addr, "/metrics").await.0, 404);
    let (status, body) = http_get(metrics_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("tether_http_requests_total"), "{body}");
    assert_eq!(http_get(metrics_addr, "/healthz").await.0, 200);
    assert_eq!(http_get(metrics_addr, "/v2/tasks").await.0, 404);
}

// ---------------------------------------------------------------------------
// Item 6: the tokens file.

fn entry(token: &str, owner: &str, role: &str) -> String {
    format!("[[tokens]]\ntoken = \"{token}\"\nowner = \"{owner}\"\nrole = \"{role}\"\n")
}

/// Duplicate, low-entropy and blank tokens are refused, naming the entry and
/// never the token; TOML errors do not echo the token either.
#[test]
fn bad_tokens_are_refused_without_printing_them() {
    let secret = "Zq8-secret-dup-token-77";
    let dup = format!(
        "{}{}",
        entry(secret, "alice", "user"),
        entry(secret, "ops", "admin")
    );
    let err = Auth::from_toml(&dup).expect_err("duplicate tokens must be refused");
    assert!(err.contains("duplicate") && err.contains("ops"), "{err}");
    assert!(!err.contains(secret), "{err}");

    for weak in [
        "aaaaaaaaaaaaaaaaaaaaaaaa",
        "abababababababababababab",
        "                        ",
        "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t",
        "has some spaces in it ok!",
        " leading-space-token-0123",
    ] {
        let text = entry(&weak.replace('\t', "\\t"), "carol", "user");
        let err = Auth::from_toml(&text).expect_err(&format!("{weak:?} must be refused"));
        assert!(err.contains("carol"), "{err}");
        assert!(
            !err.contains(weak.trim()) || weak.trim().is_empty(),
            "{err}"
        );
    }

    let secret = "Zq8-unterminated-secret-99";
    let broken = format!("[[tokens]]\nowner = \"dave\"\ntoken = \"{secret}\n");
    let err = Auth::from_toml(&broken).unwrap_err();
    assert!(!err.contains(secret), "{err}");
    assert!(err.contains("line 3"), "{err}");
    let typed = "[[tokens]]\nowner = \"erin\"\ntoken = 98765432109876543\n";
    let err = Auth::from_toml(typed).unwrap_err();
    assert!(!err.contains("98765432109876543"), "{err}");
}

/// A tokens file readable by group or others is reported.
#[test]
fn a_tokens_file_readable_by_others_is_reported() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.toml");
    std::fs::write(&path, entry(ALICE, "alice", "user")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let warning = Auth::file_mode_warning(&path).expect("a warning for mode 644");
    assert!(
        warning.contains("644") && warning.contains("chmod 600"),
        "{warning}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(Auth::file_mode_warning(&path).is_some());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(Auth::file_mode_warning(&path), None);
    assert!(Auth::from_file(&path).is_ok());
}

// ---------------------------------------------------------------------------
// Item 5: header-read and idle timeouts.

/// Reads until the server closes the socket; how long that took, or None when it
/// was still open after `patience`.
async fn closed_within(socket: &mut tokio::net::TcpStream, patience: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + patience).into(), socket.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// A client that starts its headers and never finishes them is cut off after
/// the header-read timeout; so is one that sends nothing at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_are_cut_off_after_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let env = env(config()).await;
    let served = serve(
        &env.store,
        ApiConfig {
            header_read_timeout: Duration::from_millis(800),
            ..config()
        },
    )
    .await;
    let mut half = tokio::net::TcpStream::connect(served.addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let mut silent = tokio::net::TcpStream::connect(served.addr).await.unwrap();
    let took = closed_within(&mut half, Duration::from_secs(5)).await;
    assert!(
        took.is_some(),
        "half-sent headers kept the connection open for 5 s"
    );
    assert!(took.unwrap() >= Duration::from_millis(700), "{took:?}");
    assert!(
        closed_within(&mut silent, Duration::from_secs(5))
            .await
            .is_some(),
        "a silent connection stayed open for 5 s"
    );
    // A complete request is still answered.
    assert_eq!(http_get(served.addr, "/healthz").await.0, 200);
}

/// A connection on which alice has sent a task's headers, announcing a body of 1,000
/// bytes, and the first bytes of it, `begun`.
async fn post_begun(addr: std::net::SocketAddr, begun: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v2/tasks HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ALICE}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{begun}"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket
}

/// A client that stalls mid-body is cut off after the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_cut_off_after_the_idle_timeout() {
    let env = env(config()).await;
    let served = serve(
        &env.store,
        ApiConfig {
            idle_timeout: Duration::from_millis(800),
            ..config()
        },
    )
    .await;
    let mut socket = post_begun(served.addr, "{\"type\":").await;
    let took = closed_within(&mut socket, Duration::from_secs(5)).await;
    assert!(
        took.is_some(),
        "a stalled body kept the connection open for 5 s"
    );
}

/// A client that drips its body a byte at a time, never idle for long, is answered
/// 408 once the header-read timeout has passed since the body began: the idle timeout
/// alone let one connection live for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dripped_body_is_cut_off_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = env(config()).await;
    let served = serve(
        &env.store,
        ApiConfig {
            header_read_timeout: Duration::from_millis(800),
            idle_timeout: Duration::from_millis(600),
            ..config()
        },
    )
    .await;
    let mut socket = post_begun(served.addr, "").await;
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    // A byte every 200 ms (under the idle timeout) for at most 5 s.
    while started.elapsed() < Duration::from_secs(5) {
        if socket.write_all(b" ").await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(200), socket.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        took < Duration::from_secs(3),
        "the body dripped for {took:?}: {answer}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

// ---------------------------------------------------------------------------
// Item 5: caps on open event streams.

async fn open_events(app: &Router, id: &str, token: &str) -> axum::response::Response {
    let req = Request::get(format!("/v2/tasks/{id}/events"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(req).await.unwrap()
}

/// Past the per-caller or the total cap, opening an event stream is a 429; a
/// closed stream frees its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_capped_per_caller_and_in_total() {
    let env = env(ApiConfig {
        max_event_streams: 3,
        max_event_streams_per_caller: 2,
        ..config()
    })
    .await;
    let mut ids = std::collections::HashMap::new();
    for token in [ALICE, BOB] {
        let (status, task) = call(
            &env.app,
            "POST",
            "/v2/tasks",
            Some(token),
            Some(json!({"type": "noop", "delay": "1h"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        ids.insert(token, task["id"].as_str().unwrap().to_owned());
    }
    let a1 = open_events(&env.app, &ids[ALICE], ALICE).await;
    let a2 = open_events(&env.app, &ids[ALICE], ALICE).await;
    assert_eq!((a1.status(), a2.status()), (StatusCode::OK, StatusCode::OK));
    let a3 = open_events(&env.app, &ids[ALICE], ALICE).await;
    assert_eq!(a3.status(), StatusCode::TOO_MANY_REQUESTS, "per-caller cap");
    let b1 = open_events(&env.app, &ids[BOB], BOB).await;
    assert_eq!(b1.status(), StatusCode::OK);
    let b2 = open_events(&env.app, &ids[BOB], BOB).await;
    assert_eq!(b2.status(), StatusCode::TOO_MANY_REQUESTS, "total cap");
    let body = b2.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "TooManyStreams", "{body}");
    drop(a1);
    let again = open_events(&env.app, &ids[BOB], BOB).await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "a closed stream frees its slot"
    );
    drop((a2, b1, again));
}

// ---------------------------------------------------------------------------
// Item 5: event streams share pub/sub connections.

use tether_testkit::{RedisEndpoint, TestRedis, Topology};

fn nodes(redis: &TestRedis) -> Vec<&RedisServer> {
    match redis {
        TestRedis::Single(server) => vec![server],
        TestRedis::Cluster(cluster) => cluster.nodes().iter().collect(),
    }
}

/// (clients, pub/sub clients) on every node, not counting the connection asking.
fn clients(redis: &TestRedis) -> (usize, usize) {
    let (mut all, mut pubsub) = (0, 0);
    for node in nodes(redis) {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query(&mut node.connection())
            .unwrap();
        for line in list.lines().filter(|l| !l.contains("cmd=client|list")) {
            all += 1;
            if line
                .split(' ')
                .any(|f| f.starts_with("flags=") && f.contains('P'))
            {
                pubsub += 1;
            }
        }
    }
    (all, pubsub)
}

/// Channels subscribed on every node (PUBSUB CHANNELS is per node).
fn subscribed_channels(redis: &TestRedis) -> usize {
    nodes(redis)
        .iter()
        .map(|node| {
            let channels: Vec<String> = redis::cmd("PUBSUB")
                .arg("CHANNELS")
                .arg("tether:*")
                .query(&mut node.connection())
                .unwrap();
            channels.len()
        })
        .sum()
}

/// 50 open event streams hold one subscriber connection (plus the shared
/// command connection), each of their jobs' channels is subscribed once, every
/// stream still gets its events, and the channels are given back at the end.
async fn streams_share_pubsub(topology: Topology) {
    const STREAMS: usize = 50;
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let stop = CancellationToken::new();
    let (app, _) = tether_api::router(
        Producer::from_store(store.clone()),
        ApiConfig {
            max_event_streams_per_caller: STREAMS,
            ..config()
        },
        stop.clone(),
    );
    let queues: Vec<String> = match &redis {
        TestRedis::Cluster(cluster) => cluster.names_on_every_master("watch", 2),
        TestRedis::Single(_) => vec!["default".into()],
    };
    let (before, _) = clients(&redis);
    let mut ids = Vec::new();
    for i in 0..STREAMS {
        let body = json!({"type": "noop", "delay": "1h", "queue": queues[i % queues.len()]});
        let (status, task) = call(&app, "POST", "/v2/tasks", Some(ALICE), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{task}");
        ids.push(task["id"].as_str().unwrap().to_owned());
    }
    let mut readers = Vec::new();
    for id in &ids {
        let resp = open_events(&app, id, ALICE).await;
        assert_eq!(resp.status(), StatusCode::OK);
        readers.push(tokio::spawn(async move {
            let bytes = tokio::time::timeout(Duration::from_secs(20), resp.into_body().collect())
                .await
                .expect("the stream ends")
                .unwrap()
                .to_bytes();
            String::from_utf8_lossy(&bytes).into_owned()
        }));
    }
    let (open, pubsub) = clients(&redis);
    eprintln!(
        "{topology:?}: {before} clients before, {open} with {STREAMS} streams open ({pubsub} pub/sub)"
    );
    assert!(
        pubsub <= 2,
        "{pubsub} pub/sub connections for {STREAMS} streams"
    );
    assert!(
        open <= before + 2,
        "{open} clients with {STREAMS} streams (before: {before})"
    );
    assert_eq!(subscribed_channels(&redis), STREAMS);

    for id in &ids {
        let (status, _) = call(
            &app,
            "POST",
            &format!("/v2/tasks/{id}/cancel"),
            Some(ALICE),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    for reader in readers {
        let text = reader.await.unwrap();
        assert!(text.contains("event: snapshot"), "{text}");
        assert!(text.contains("event: finished"), "{text}");
        assert!(text.contains("\"status\":\"cancelled\""), "{text}");
    }
    eventually(
        Duration::from_secs(5),
        "channels stayed subscribed",
        async || match subscribed_channels(&redis) {
            0 => Ok(()),
            n => Err(n),
        },
    )
    .await;
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_share_one_pubsub_connection() {
    streams_share_pubsub(Topology::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_share_one_pubsub_connection_on_a_cluster() {
    streams_share_pubsub(Topology::Cluster).await;
}

/// After a Redis restart the shared subscriber reconnects and subscribes every
/// channel still watched again; the watches go on to their end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_subscriber_resubscribes_after_a_redis_restart() {
    use futures::StreamExt;
    // AOF on, so the jobs survive the restart; `always`, because with `everysec` Redis
    // postpones its writes for up to 2 s while a slow fsync runs (a busy disk), and a
    // kill then loses what it had acknowledged.
    let redis = TestRedis::Single(RedisServer::start(RedisOptions {
        aof: true,
        extra_args: ["--appendfsync", "always"].map(String::from).to_vec(),
    }));
    let TestRedis::Single(server) = &redis else {
        unreachable!()
    };
    let producer = Producer::connect(&redis.url()).await.unwrap();
    let mut watches = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let id = producer
            .enqueue(tether_producer::JobSpec::new("noop").delay(Duration::from_secs(3600)))
            .await
            .unwrap();
        watches.push(Box::pin(producer.watch(id).await.unwrap()));
        ids.push(id);
    }
    for w in &mut watches {
        assert!(matches!(
            w.next().await,
            Some(Ok(tether_producer::Event::Snapshot(_)))
        ));
    }
    assert_eq!(subscribed_channels(&redis), 5);
    server.restart();
    let again = "channels were not subscribed again";
    eventually(
        Duration::from_secs(15),
        again,
        async || match subscribed_channels(&redis) {
            5.. => Ok(()),
            n => Err(n),
        },
    )
    .await;
    assert!(
        clients(&redis).1 <= 1,
        "one subscriber connection after the restart"
    );
    for id in &ids {
        eventually(
            Duration::from_secs(10),
            "cancel after the restart",
            async || producer.cancel(*id).await,
        )
        .await;
    }
    for w in &mut watches {
        let last = tokio::time::timeout(Duration::from_secs(10), async {
            let mut last = None;
            while let Some(event) = w.next().await {
                last = Some(event);
            }
            last
        })
        .await
        .expect("the watch ends");
        assert!(
            matches!(last, Some(Ok(tether_producer::Event::Finished(_)))),
            "{last:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// The settings above, through a real `tether api` process.

fn api_command(
    redis: &RedisServer,
    tokens: &std::path::Path,
    args: &[&str],
) -> std::process::Command {
    let mut cmd = std::process::Command::new(tether_testkit::tether_bin());
    cmd.args(["api", "--redis", &redis.url(), "--tokens"])
        .arg(tokens)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null());
    cmd
}

/// `tether api` warns about a tokens file others can read (without printing a
/// token), refuses a file with a duplicate token, and applies --metrics-addr and
/// --header-read-timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tether_api_applies_the_hardening_settings() {
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::AsyncWriteExt;
    let redis = RedisServer::start(RedisOptions::default());
    let dir = tempfile::tempdir().unwrap();

    let duplicate = dir.path().join("duplicate.toml");
    std::fs::write(
        &duplicate,
        format!(
            "{}{}",
            entry(ALICE, "alice", "user"),
            entry(ALICE, "ops", "admin")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&duplicate, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = api_command(&redis, &duplicate, &["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a duplicate token");
    assert!(
        stderr.contains("duplicate") && stderr.contains("entry 2"),
        "{stderr}"
    );
    assert!(!stderr.contains(ALICE), "{stderr}");

    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, entry(ALICE, "alice", "user")).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = dir.path().join("api.log");
    // Up on both ports, or tried again on others: another test may take a port
    // between the choice and the bind.
    let mut started = None;
    for _ in 0..5 {
        let port = tether_testkit::free_port();
        let metrics_port = tether_testkit::free_port();
        let mut cmd = api_command(
            &redis,
            &tokens,
            &[
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
                "--header-read-timeout",
                "1s",
            ],
        );
        cmd.stderr(std::fs::File::create(&log).unwrap())
            .stdout(std::process::Stdio::null());
        let mut api = tether_testkit::ChildGuard::spawn(cmd);
        let listening = tether_testkit::poll(Duration::from_secs(20), async || {
            if !api.is_running() {
                Ok(false)
            } else if api.listens_on(port) && api.listens_on(metrics_port) {
                Ok(true)
            } else {
                Err(())
            }
        })
        .await;
        if listening == Ok(true) {
            started = Some((api, port, metrics_port));
            break;
        }
    }
    let (mut api, port, metrics_port) = started.expect("tether api never listened");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    assert_eq!(http_get(addr, "/metrics").await.0, 404);
    let metrics_addr = format!("127.0.0.1:{metrics_port}").parse().unwrap();
    assert_eq!(http_get(metrics_addr, "/metrics").await.0, 200);
    let mut half = tokio::net::TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut half, Duration::from_secs(5))
            .await
            .is_some(),
        "half-sent headers kept the connection open"
    );
    api.terminate(Duration::from_secs(10));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("chmod 600"), "{text}");
    assert!(!text.contains(ALICE), "{text}");
}

/// A full Redis (maxmemory reached, noeviction) is unavailability: 503, plain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_is_503_without_detail() {
    let env = env(config()).await;
    let mut conn = env.redis.connection();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query(&mut conn)
        .unwrap();
    let (status, body) = call(
        &env.app,
        "POST",
        "/v2/tasks",
        Some(ALICE),
        Some(json!({"type": "noop"})),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "ServiceUnavailable", "{body}");
    assert!(body["message"].as_str().unwrap().contains("full"), "{body}");
    assert!(!body.to_string().contains("maxmemory"), "{body}");
}
