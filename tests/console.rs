//! The web console in a real browser: headless Chromium driven through
//! chromedriver (WebDriver), against `tether api` and a `tether worker`.
//! Needs the Debian packages chromium and chromium-driver (scripts/test.sh
//! installs them). A screenshot of the job page is left in target/tmp.

use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tempfile::TempDir;
use tether_suite::*;
use tether_testkit::{ChildGuard, RedisServer, free_port};

const ADMIN_TOKEN: &str = "console-admin-token-0123456789";
const T: Duration = Duration::from_secs(30);

struct Browser {
    client: Client,
    _driver: ChildGuard,
}

async fn browser() -> Browser {
    let port = free_port();
    let driver = ChildGuard::spawn({
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    });
    eventually(
        Duration::from_secs(20),
        "chromedriver did not start",
        async || std::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,900"]
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session in headless Chromium");
    Browser {
        client,
        _driver: driver,
    }
}

fn api(port: u16, method: &str, path: &str, body: Value) -> (u16, Value) {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let mut headers = vec![("Authorization", auth.as_str())];
    let body = if body.is_null() {
        String::new()
    } else {
        headers.push(("Content-Type", "application/json"));
        body.to_string()
    };
    let (status, text) = http(port, method, path, &headers, &body);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The text of the first element matching `css`, once it exists.
async fn text(client: &Client, css: &str) -> String {
    let found = client
        .wait()
        .at_most(T)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"));
    found.text().await.unwrap_or_default()
}

/// Polls until the text of `css` satisfies `cond`; returns it.
async fn until_text(client: &Client, css: &str, cond: impl Fn(&str) -> bool) -> String {
    eventually(T, format!("{css} never matched"), async || {
        let now = match client.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if cond(&now) {
            Ok(now)
        } else {
            Err(format!("text {now:?}"))
        }
    })
    .await
}

/// Clicks the element matching `css`, finding it again if the page replaced it meanwhile.
async fn click(client: &Client, css: &str) {
    eventually(T, format!("cannot click {css}"), async || {
        client
            .find(Locator::Css(css))
            .await?
            .click()
            .await
            .map(drop)
    })
    .await
}

fn percent(text: &str) -> u32 {
    text.trim_end_matches('%').trim().parse().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full tier: needs chromium and chromedriver"]
async fn the_console_shows_queues_follows_a_job_cancels_it_and_retries_a_dead_one() {
    let redis = RedisServer::start(RedisOptions::default());
    let dir = TempDir::new().unwrap();
    let tokens = dir.path().join("tokens.toml").display().to_string();
    std::fs::write(
        &tokens,
        format!("[[tokens]]\ntoken = \"{ADMIN_TOKEN}\"\nowner = \"ops\"\nrole = \"admin\"\n"),
    )
    .unwrap();
    let _worker = WorkerProcess::start(&redis, &["--concurrency", "4"]);
    let api_process = ApiProcess::start(&redis, &["--tokens", &tokens]);
    let port = api_process.port;

    // A job that fails for good (dead), and a long one with progress to follow.
    let (status, dead) = api(
        port,
        "POST",
        "/v2/tasks",
        json!({"type": "fail", "input": {"message": "disk on fire", "fatal": true}}),
    );
    assert_eq!(status, 201, "{dead}");
    let dead_id = dead["id"].as_str().unwrap().to_owned();
    let (status, long) = api(
        port,
        "POST",
        "/v2/tasks",
        json!({"type": "progress", "input": {"steps": 100, "step_ms": 150}, "name": "long import"}),
    );
    assert_eq!(status, 201, "{long}");
    let long_id = long["id"].as_str().unwrap().to_owned();

    let Browser {
        client,
        _driver: driver,
    } = browser().await;
    let base = format!("http://127.0.0.1:{port}");

    // A browser at / lands on the console, which asks for a token first.
    client.goto(&format!("{base}/")).await.unwrap();
    let url = client.current_url().await.unwrap();
    assert!(
        url.as_str().ends_with("/ui/"),
        "redirected to the console: {url}"
    );
    text(&client, "#need-token").await;
    let field = client.find(Locator::Css("#token")).await.unwrap();
    field.send_keys(ADMIN_TOKEN).await.unwrap();
    click(&client, "#token-form button").await;

    // Queues: the default queue's counts, as the API reports them.
    let failed = until_text(&client, "tr[data-queue=default] td:nth-child(6)", |t| {
        t == "1"
    })
    .await;
    assert_eq!(failed, "1", "one failure");
    let (_, queues) = api(port, "GET", "/v2/queues", Value::Null);
    assert_eq!(queues["queues"][0]["failure"], 1, "{queues}");
    until_text(&client, "tr[data-queue=default] td[data-rate]", |t| {
        t != "…"
    })
    .await;
    screenshot(&client, "console-queues").await;

    // The job list links to the job.
    client.goto(&format!("{base}/ui/#/jobs")).await.unwrap();
    text(&client, &format!("tr[data-id='{long_id}']")).await;
    screenshot(&client, "console-jobs").await;

    // The job page follows progress live (event stream), then cancels it.
    client
        .goto(&format!("{base}/ui/#/job/{long_id}"))
        .await
        .unwrap();
    until_text(&client, "#job-status", |t| t == "processing").await;
    let first = percent(&until_text(&client, "#job-progress", |t| percent(t) >= 2).await);
    let later = percent(&until_text(&client, "#job-progress", |t| percent(t) >= first + 3).await);
    assert!(later > first, "progress advanced: {first}% → {later}%");
    screenshot(&client, "console-job-page").await;
    click(&client, "#cancel-button").await;
    until_text(&client, "#job-status", |t| t == "cancelled").await;
    let (_, job) = api(port, "GET", &format!("/v2/tasks/{long_id}"), Value::Null);
    assert_eq!(job["status"], "cancelled", "{job}");

    // The dead list retries the failed job: it runs again (a new start time).
    let (_, before) = api(port, "GET", &format!("/v2/tasks/{dead_id}"), Value::Null);
    client.goto(&format!("{base}/ui/#/dead")).await.unwrap();
    let retry = format!("tr[data-id='{dead_id}'] button.retry");
    text(&client, &retry).await;
    screenshot(&client, "console-dead").await;
    click(&client, &retry).await;
    eventually(T, "the retried job did not run again", async || {
        let (_, after) = api(port, "GET", &format!("/v2/tasks/{dead_id}"), Value::Null);
        if after["started_at"] != before["started_at"] && after["status"] == "failure" {
            Ok(())
        } else {
            Err(after)
        }
    })
    .await;

    // Schedules: the list shows the next fire and the last job's status; pause and
    // fire-now act on it.
    let (status, created) = api(
        port,
        "POST",
        "/v2/schedules",
        json!({"name": "tick", "type": "noop", "every": "1s", "overlap": "allow"}),
    );
    assert_eq!(status, 201, "{created}");
    client
        .goto(&format!("{base}/ui/#/schedules"))
        .await
        .unwrap();
    until_text(&client, "#schedule-last-status-tick", |t| t == "success").await;
    screenshot(&client, "console-schedules").await;
    click(&client, "#schedule-pause-tick").await;
    until_text(&client, "#schedule-next-tick", |t| t == "—").await;
    let (_, shown) = api(port, "GET", "/v2/schedules/tick", Value::Null);
    assert_eq!(shown["paused"], true, "{shown}");
    let last_before = shown["last_job_id"].clone();
    click(&client, "#schedule-trigger-tick").await;
    eventually(T, "fire now did not fire", async || {
        let (_, now) = api(port, "GET", "/v2/schedules/tick", Value::Null);
        if now["last_job_id"] != last_before {
            Ok(())
        } else {
            Err(now)
        }
    })
    .await;
    client.close().await.unwrap();
    drop(driver);
}

/// Saves what the browser shows as target/tmp/<name>.png.
async fn screenshot(client: &Client, name: &str) {
    let shot = client.screenshot().await.expect("screenshot");
    let path = format!("{}/{name}.png", env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(&path, shot).unwrap();
    eprintln!("screenshot: {path}");
}
