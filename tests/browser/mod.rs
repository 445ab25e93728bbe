//! Headless Chromium driven through chromedriver (WebDriver), for the suites of the web
//! console: a session, and waits on what the page shows. Needs the Debian packages
//! chromium and chromium-driver (scripts/test.sh installs them).

// Each suite that includes this module uses a part of it.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tether_suite::eventually;
use tether_testkit::{ChildGuard, spawn_serving};

/// How long a wait on the page lasts before the test fails.
pub(crate) const T: Duration = Duration::from_secs(30);

pub(crate) struct Browser {
    pub(crate) client: Client,
    pub(crate) _driver: ChildGuard,
}

pub(crate) async fn browser() -> Browser {
    let (driver, port) = spawn_serving("chromedriver", |port| {
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    });
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

/// The text of the first element matching `css`, once it exists.
pub(crate) async fn text(client: &Client, css: &str) -> String {
    let found = client
        .wait()
        .at_most(T)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"));
    found.text().await.unwrap_or_default()
}

/// Polls until the text of `css` satisfies `cond`; returns it.
pub(crate) async fn until_text(client: &Client, css: &str, cond: impl Fn(&str) -> bool) -> String {
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
pub(crate) async fn click(client: &Client, css: &str) {
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

/// Opens the console at `base` and signs in with `token`.
pub(crate) async fn sign_in(client: &Client, base: &str, token: &str) {
    client.goto(&format!("{base}/ui/")).await.unwrap();
    text(client, "#need-token").await;
    let field = client.find(Locator::Css("#token")).await.unwrap();
    field.send_keys(token).await.unwrap();
    click(client, "#token-form button").await;
}

pub(crate) fn percent(text: &str) -> u32 {
    text.trim_end_matches('%').trim().parse().unwrap_or(0)
}

/// Saves what the browser shows in target/tmp, named as the documentation's image at
/// `path` (e.g. `docs/images/….png`), and over that image itself when
/// `TETHER_DOC_IMAGES=1`: a test run leaves the working tree as it was.
pub(crate) async fn doc_image(client: &Client, path: &str) {
    let shot = client.screenshot().await.expect("screenshot");
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut targets = vec![format!("{}/{name}", env!("CARGO_TARGET_TMPDIR"))];
    if std::env::var("TETHER_DOC_IMAGES").as_deref() == Ok("1") {
        targets.push(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")));
    }
    for target in targets {
        std::fs::write(&target, &shot).unwrap();
        eprintln!("screenshot: {target}");
    }
}

/// A console to drive: `tether api` with one admin token (`token`, owner `ops`) and a
/// `tether worker` started with `worker_args`. Keep what it returns while the test runs.
pub(crate) fn console(
    redis: &impl tether_testkit::RedisEndpoint,
    token: &str,
    worker_args: &[&str],
) -> (
    tempfile::TempDir,
    tether_suite::WorkerProcess,
    tether_suite::ApiProcess,
) {
    let dir = tempfile::TempDir::new().unwrap();
    let tokens = dir.path().join("tokens.toml").display().to_string();
    std::fs::write(
        &tokens,
        format!("[[tokens]]\ntoken = \"{token}\"\nowner = \"ops\"\nrole = \"admin\"\n"),
    )
    .unwrap();
    let worker = tether_suite::WorkerProcess::start(redis, worker_args);
    let api = tether_suite::ApiProcess::start(redis, &["--tokens", &tokens]);
    (dir, worker, api)
}
