//! The web console in a real browser: headless Chromium driven through
//! chromedriver (WebDriver), against `tether api` and a `tether worker`.
//! Needs the Debian packages chromium and chromium-driver (scripts/test.sh
//! installs them). A screenshot of the job page is left in target/tmp.

mod browser;

use browser::*;
use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use tempfile::TempDir;
use tether_suite::*;
use tether_testkit::{RedisServer, poll};

const ADMIN_TOKEN: &str = "console-admin-token-0123456789";

/// A Redis, a worker (queue `default`, four jobs at once) and `tether api` with an
/// admin token.
struct Served {
    api: ApiProcess,
    _worker: WorkerProcess,
    _redis: RedisServer,
    _dir: TempDir,
}

impl Served {
    fn start() -> Served {
        let redis = RedisServer::start(RedisOptions::default());
        let dir = TempDir::new().unwrap();
        let tokens = dir.path().join("tokens.toml").display().to_string();
        let admin =
            format!("[[tokens]]\ntoken = \"{ADMIN_TOKEN}\"\nowner = \"ops\"\nrole = \"admin\"\n");
        std::fs::write(&tokens, admin).unwrap();
        let worker = WorkerProcess::start(&redis, &["--concurrency", "4"]);
        let api = ApiProcess::start(&redis, &["--tokens", &tokens]);
        Served {
            api,
            _worker: worker,
            _redis: redis,
            _dir: dir,
        }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full tier: needs chromium and chromedriver"]
async fn the_console_shows_queues_follows_a_job_cancels_it_and_retries_a_dead_one() {
    let served = Served::start();
    let port = served.api.port;

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

/// Waits for the confirmation to ask `question`; on a time-out, a screenshot of what the
/// page showed instead is left in target/tmp.
async fn asks(client: &Client, question: &str) {
    let asked = poll(T, async || {
        let now = match client.find(Locator::Css("#confirm-text")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if now == question { Ok(()) } else { Err(now) }
    })
    .await;
    if let Err(last) = asked {
        screenshot(client, "console-no-confirmation").await;
        panic!("the console did not ask {question:?}; last: {last:?}");
    }
}

/// Types `text` into the field `css` (cleared first) and presses Enter.
/// Found again when the page replaced the field meanwhile.
async fn type_and_enter(client: &Client, css: &str, text: &str) {
    eventually(T, format!("cannot type into {css}"), async || {
        let field = client.find(Locator::Css(css)).await?;
        field.clear().await?;
        field.send_keys(&format!("{text}\u{e007}")).await
    })
    .await
}

/// How many tasks `filter` matches that `action` applies to (a dry run, admin token).
fn matching(port: u16, action: &str, filter: Value) -> u64 {
    let body = json!({"action": action, "filter": filter, "dry_run": true});
    let (status, answer) = api(port, "POST", "/v2/tasks/bulk", body);
    assert_eq!(status, 200, "{answer}");
    assert!(answer["next"].is_null(), "{answer}");
    answer["matched"].as_u64().unwrap()
}

/// The console operates queues: many jobs selected (or all matching the filter) are
/// cancelled, retried or deleted after a confirmation stating their count; a queue's
/// dead jobs are retried and purged at once; a job is found by id prefix and by name;
/// each queue shows its last hour; its settings are changed, and it is paused and
/// resumed. Every action is checked through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full tier: needs chromium and chromedriver"]
async fn the_console_acts_on_many_jobs_finds_jobs_and_sets_up_queues() {
    // The worker serves `default` only: jobs of `imports` wait, pending.
    let served = Served::start();
    let port = served.api.port;
    let create = |body: Value| {
        let (status, task) = api(port, "POST", "/v2/tasks", body);
        assert_eq!(status, 201, "{task}");
        task["id"].as_str().unwrap().to_owned()
    };
    let waiting: Vec<String> = (0..1234)
        .map(|i| {
            create(
                json!({"type": "noop", "queue": "imports", "name": format!("import of batch {i}")}),
            )
        })
        .collect();
    let named = create(json!({"type": "noop", "queue": "imports", "name": "nightly invoice run"}));
    let dead: Vec<String> = (0..3)
        .map(|_| {
            create(json!({"type": "fail", "input": {"message": "disk on fire", "fatal": true}}))
        })
        .collect();
    eventually(T, "three dead jobs", async || {
        let n = matching(port, "retry", json!({}));
        if n == 3 { Ok(()) } else { Err(n) }
    })
    .await;

    let Browser {
        client,
        _driver: driver,
    } = browser().await;
    let base = format!("http://127.0.0.1:{port}");
    client.goto(&format!("{base}/ui/")).await.unwrap();
    text(&client, "#need-token").await;
    let field = client.find(Locator::Css("#token")).await.unwrap();
    field.send_keys(ADMIN_TOKEN).await.unwrap();
    click(&client, "#token-form button").await;

    // Each queue's last hour: the jobs created in it, from the API's throughput.
    let chart = "td[data-chart=imports] svg";
    text(&client, chart).await;
    let created = client
        .find(Locator::Css(chart))
        .await
        .unwrap()
        .attr("data-created")
        .await
        .unwrap();
    assert_eq!(created.as_deref(), Some("1235"));
    screenshot(&client, "console-queues-throughput").await;

    // Search: by id prefix, then by a word of the name.
    type_and_enter(&client, "#search", &named[..23]).await;
    text(&client, &format!("#search-results tr[data-id='{named}']")).await;
    type_and_enter(&client, "#search", "INVOICE").await;
    until_text(&client, "#search-title", |t| t.contains("INVOICE")).await;
    until_text(&client, "#search-results tbody", |t| t.contains(&named)).await;
    let rows = client
        .find_all(Locator::Css("#search-results tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "only the job named so");
    // A whole id opens the job's page.
    type_and_enter(&client, "#search", &named).await;
    until_text(&client, "#job-status", |t| t == "pending").await;

    // Two jobs selected on the list: deleted? They are not finished: a delete applies
    // to none, and the console says so. Cancelled, then deleted.
    client
        .goto(&format!("{base}/ui/#/jobs?queue=imports&status=pending"))
        .await
        .unwrap();
    let (first, second) = (&waiting[1233], &waiting[1232]);
    for id in [first, second] {
        click(&client, &format!("tr[data-id='{id}'] input.select")).await;
    }
    until_text(&client, "#selected-count", |t| t == "2 selected").await;
    click(&client, "#bulk-cancel").await;
    asks(&client, "Cancel 2 jobs?").await;
    click(&client, "#confirm-yes").await;
    eventually(T, "the two were not cancelled", async || {
        let (_, a) = api(port, "GET", &format!("/v2/tasks/{first}"), Value::Null);
        let (_, b) = api(port, "GET", &format!("/v2/tasks/{second}"), Value::Null);
        if a["status"] == "cancelled" && b["status"] == "cancelled" {
            Ok(())
        } else {
            Err(json!([a, b]))
        }
    })
    .await;
    client
        .goto(&format!("{base}/ui/#/jobs?queue=imports&status=cancelled"))
        .await
        .unwrap();
    // (The row as the cancelled list shows it: the pending list's page may still be there.)
    click(
        &client,
        &format!("tr[data-id='{first}'][data-status=cancelled] input.select"),
    )
    .await;
    click(&client, "#bulk-delete").await;
    asks(&client, "Delete 1 job?").await;
    click(&client, "#confirm-yes").await;
    eventually(T, "the job was not deleted", async || {
        let (status, task) = api(port, "GET", &format!("/v2/tasks/{first}"), Value::Null);
        if status == 404 { Ok(()) } else { Err(task) }
    })
    .await;

    // All jobs matching the filter: the confirmation states how many (more than one
    // page, more than one request's worth), then every one is cancelled.
    client
        .goto(&format!("{base}/ui/#/jobs?queue=imports&status=pending"))
        .await
        .unwrap();
    text(&client, "tr[data-status=pending]").await;
    click(&client, "#select-page").await;
    click(&client, "#select-all-matching").await;
    until_text(&client, "#selected-count", |t| {
        t == "All jobs matching this filter"
    })
    .await;
    click(&client, "#bulk-cancel").await;
    asks(&client, "Cancel 1,233 jobs?").await;
    doc_image(&client, "docs/images/console-bulk-confirm.png").await;
    // Back changes nothing.
    click(&client, "#confirm-no").await;
    let pending = json!({"queue": "imports", "status": "pending"});
    assert_eq!(matching(port, "cancel", pending.clone()), 1233);
    click(&client, "#bulk-cancel").await;
    asks(&client, "Cancel 1,233 jobs?").await;
    click(&client, "#confirm-yes").await;
    eventually(T, "not every pending job was cancelled", async || {
        let left = matching(port, "cancel", pending.clone());
        if left == 0 { Ok(()) } else { Err(left) }
    })
    .await;
    let cancelled = json!({"queue": "imports", "status": "cancelled"});
    assert_eq!(matching(port, "delete", cancelled), 1234);

    // A queue's dead jobs: retried at once (they run again and fail again), then purged.
    client.goto(&format!("{base}/ui/#/dead")).await.unwrap();
    text(&client, &format!("tr[data-id='{}']", dead[0])).await;
    screenshot(&client, "console-dead-queues").await;
    let started: Vec<Value> = dead
        .iter()
        .map(|id| api(port, "GET", &format!("/v2/tasks/{id}"), Value::Null).1["started_at"].clone())
        .collect();
    click(&client, "#dead-retry-default").await;
    asks(&client, "Retry 3 dead jobs in default?").await;
    click(&client, "#confirm-yes").await;
    eventually(T, "the dead jobs did not run again", async || {
        let again: Vec<(Value, Value)> = dead
            .iter()
            .map(|id| {
                let (_, t) = api(port, "GET", &format!("/v2/tasks/{id}"), Value::Null);
                (t["started_at"].clone(), t["status"].clone())
            })
            .collect();
        let done = again
            .iter()
            .zip(&started)
            .all(|((now, status), before)| now != before && status == "failure");
        if done { Ok(()) } else { Err(json!(again)) }
    })
    .await;
    client.goto(&format!("{base}/ui/#/dead")).await.unwrap();
    click(&client, "#dead-purge-default").await;
    asks(&client, "Delete 3 dead jobs in default?").await;
    click(&client, "#confirm-yes").await;
    eventually(T, "the dead jobs were not purged", async || {
        let n = matching(port, "retry", json!({}));
        if n == 0 { Ok(()) } else { Err(n) }
    })
    .await;
    for id in &dead {
        assert_eq!(
            api(port, "GET", &format!("/v2/tasks/{id}"), Value::Null).0,
            404
        );
    }

    // A queue's settings and pause/resume.
    client
        .goto(&format!("{base}/ui/#/queue/imports"))
        .await
        .unwrap();
    type_and_enter(&client, "#limit-concurrency", "3").await;
    eventually(T, "the limit was not saved", async || {
        let (_, q) = api(port, "GET", "/v2/queues/imports", Value::Null);
        if q["concurrency"] == 3 {
            Ok(())
        } else {
            Err(q)
        }
    })
    .await;
    click(&client, "#pause-queue").await;
    text(&client, "#queue-paused").await;
    let (_, q) = api(port, "GET", "/v2/queues/imports", Value::Null);
    assert_eq!(q["paused"], true, "{q}");
    screenshot(&client, "console-queue-settings").await;
    click(&client, "#resume-queue").await;
    eventually(T, "the queue was not resumed", async || {
        let (_, q) = api(port, "GET", "/v2/queues/imports", Value::Null);
        if q["paused"] == false { Ok(()) } else { Err(q) }
    })
    .await;
    type_and_enter(&client, "#pause-type-name", "noop").await;
    click(&client, "#pause-type").await;
    until_text(&client, "#paused-types", |t| t == "paused types: noop").await;

    // The README's picture of the console: the job list, a few selected.
    client
        .goto(&format!("{base}/ui/#/jobs?queue=imports"))
        .await
        .unwrap();
    for id in &waiting[1225..1229] {
        click(&client, &format!("tr[data-id='{id}'] input.select")).await;
    }
    until_text(&client, "#selected-count", |t| t == "4 selected").await;
    doc_image(&client, "docs/images/console-jobs.png").await;
    client.close().await.unwrap();
    drop(driver);
}
