//! `tether api` as a process: SIGTERM ends open event streams and the process cleanly.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use tether_suite::{ApiProcess, http};
use tether_testkit::{RedisOptions, RedisServer, free_port, spawn_serving_on, tether_bin};

fn request(port: u16, raw: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    stream
}

#[test]
fn sigterm_closes_event_streams_and_exits_cleanly() {
    let redis = RedisServer::start(RedisOptions::default());
    let ApiProcess {
        child: mut api,
        port,
    } = ApiProcess::start(&redis, &["--insecure-no-auth"]);
    // A task no worker will run, so its event stream stays open.
    let body = r#"{"type": "noop"}"#;
    let mut create = request(
        port,
        &format!(
            "POST /v2/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    let mut answer = String::new();
    create.read_to_string(&mut answer).unwrap();
    let id = answer
        .split("\"id\":\"")
        .nth(1)
        .and_then(|s| s.get(..36))
        .expect("created task id")
        .to_owned();

    let mut events = request(
        port,
        &format!("GET /v2/tasks/{id}/events HTTP/1.1\r\nHost: x\r\n\r\n"),
    );
    let mut buf = [0u8; 8192];
    let n = events.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).contains("text/event-stream"),
        "stream opened"
    );

    let asked = Instant::now();
    let code = api.terminate(Duration::from_secs(10));
    assert_eq!(code, Some(0), "exit code after SIGTERM");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        asked.elapsed()
    );
    // The stream was ended by the server, not left hanging.
    let mut rest = Vec::new();
    let _ = events.read_to_end(&mut rest);
}

/// A port another process took between the choice and the bind (here: this test,
/// listening but never answering) must not pass for the API's: the API exits, unable
/// to bind, and is started again on another port.
#[test]
fn a_port_taken_by_another_process_is_not_mistaken_for_the_apis() {
    let redis = RedisServer::start(RedisOptions::default());
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let mut ports = [taken_port]
        .into_iter()
        .chain(std::iter::repeat_with(free_port));
    let (_api, port) = spawn_serving_on(
        "api",
        || ports.next().unwrap(),
        |port| {
            let mut cmd = Command::new(tether_bin());
            cmd.args(["api", "--insecure-no-auth", "--redis", &redis.url()])
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .env("TETHER_LOG", "error");
            cmd
        },
    );
    assert_ne!(
        port, taken_port,
        "the port this test holds is not the API's"
    );
    let (status, _) = http(port, "GET", "/healthz", &[], "");
    assert_eq!(status, 200);
}

/// The per-owner quota of unfinished jobs holds for what workers enqueue for an owner
/// too (a handler's children, a schedule's firings), as the config file's
/// `[api] max_pending_per_owner` sets it for both: a tenant's `fanout` spawned past it.
#[test]
fn workers_hold_an_owners_children_to_the_quota() {
    let redis = RedisServer::start(RedisOptions::default());
    let dir = tempfile::TempDir::new().unwrap();
    let config = dir.path().join("tether.toml");
    std::fs::write(&config, "[api]\nmax_pending_per_owner = 3\n").unwrap();
    let tokens = dir.path().join("tokens.toml");
    let token = "alice-token-0123456789";
    std::fs::write(
        &tokens,
        format!("[[tokens]]\ntoken = \"{token}\"\nowner = \"alice\"\n"),
    )
    .unwrap();
    let config = config.display().to_string();
    let tokens = tokens.display().to_string();
    let api = ApiProcess::start(&redis, &["--config", &config, "--tokens", &tokens]);
    let _worker = tether_suite::WorkerProcess::start(&redis, &["--config", &config]);
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let body = r#"{"type": "fanout", "input": {"children": 6, "child_ms": 60000, "child_queue": "elsewhere"}}"#;
    let (status, created) = http(api.port, "POST", "/v2/tasks", &headers, body);
    assert_eq!(status, 201, "{created}");
    let id = serde_json::from_str::<serde_json::Value>(&created).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The fanout fails when a spawn is refused; until then it is running.
    let deadline = Instant::now() + Duration::from_secs(20);
    let parent = loop {
        let (_, task) = http(api.port, "GET", &format!("/v2/tasks/{id}"), &headers, "");
        let task: serde_json::Value = serde_json::from_str(&task).unwrap();
        if task["status"] == "failure" || Instant::now() > deadline {
            break task;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(parent["status"], "failure", "{parent}");
    assert!(
        parent["message"]
            .as_str()
            .unwrap()
            .contains("QuotaExceeded"),
        "{parent}"
    );
    let (_, list) = http(
        api.port,
        "GET",
        "/v2/tasks?queue=elsewhere&limit=100",
        &headers,
        "",
    );
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let children = list["tasks"].as_array().unwrap().len();
    // Three children in their queue, as many as the quota allows there (it counts per
    // queue; the parent is in `default`).
    assert_eq!(children, 3, "{list}");
}
