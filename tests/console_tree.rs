//! The console's page of a parent job: its children, each with its live progress, and
//! the parent's progress rolled up from theirs (headless Chromium against `tether api`
//! and a `tether worker`). Leaves the page's screenshot in target/tmp (and in
//! docs/images/console-tree.png with TETHER_DOC_IMAGES=1).

mod browser;

use browser::*;
use fantoccini::{Client, Locator};
use serde_json::json;
use tether_model::JobSpec;
use tether_suite::*;
use tether_testkit::RedisServer;

const ADMIN_TOKEN: &str = "console-tree-admin-token-0123456789";

/// A child's progress as the bar of its row on the parent's page states it.
async fn child_progress(client: &Client, id: &str) -> Option<u32> {
    let css = format!("#job-children tr[data-id='{id}'] [role=progressbar]");
    let bar = client.find(Locator::Css(&css)).await.ok()?;
    bar.attr("aria-valuenow").await.ok()??.parse().ok()
}

/// Polls until the progress shown for child `id` satisfies `cond`; returns it.
async fn until_child(client: &Client, id: &str, cond: impl Fn(u32) -> bool) -> u32 {
    eventually(
        T,
        format!("child {id}'s progress"),
        async || match child_progress(client, id).await {
            Some(p) if cond(p) => Ok(p),
            other => Err(format!("shown: {other:?}")),
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full tier: needs chromium and chromedriver"]
async fn a_parents_page_shows_its_children_with_live_progress() {
    let redis = RedisServer::start(RedisOptions::default());
    let (_dir, _worker, api_process) = console(&redis, ADMIN_TOKEN, &["--concurrency", "8"]);

    // A batch of three children, each reporting its progress in 40 steps of 300 ms.
    let producer = producer(&redis).await;
    let jobs: Vec<JobSpec> = (1..=3)
        .map(|weight| {
            JobSpec::new("progress")
                .input_json(json!({"steps": 40, "step_ms": 300}))
                .weight(weight)
        })
        .collect();
    let batch = producer
        .enqueue_batch(jobs, JobSpec::new("noop"))
        .await
        .unwrap();
    let parent = until_job(&producer, batch, T, |j| j.subtask_count == 3).await;
    let kids: Vec<String> = parent.subtasks.iter().map(ToString::to_string).collect();

    let Browser {
        client,
        _driver: driver,
    } = browser().await;
    let base = format!("http://127.0.0.1:{}", api_process.port);
    sign_in(&client, &base, ADMIN_TOKEN).await;
    client
        .goto(&format!("{base}/ui/#/job/{batch}"))
        .await
        .unwrap();
    until_text(&client, "#job-subtask-count", |t| t == "3").await;
    for kid in &kids {
        text(&client, &format!("#job-children tr[data-id='{kid}']")).await;
    }
    // The page stays open while the children run: their bars move.
    let first = until_child(&client, &kids[0], |p| p > 0 && p < 60).await;
    let later = until_child(&client, &kids[0], |p| p >= first + 10).await;
    assert!(later > first, "{first}% → {later}%");
    for kid in &kids[1..] {
        until_child(&client, kid, |p| p > 0).await;
    }
    // The parent's own progress is the roll-up of theirs.
    let rolled = percent(&until_text(&client, "#job-progress", |t| percent(t) > 0).await);
    assert!(rolled < 100, "{rolled}%");
    doc_image(&client, "docs/images/console-tree.png").await;

    // Each row ends at success and 100 %, and so does the parent.
    for kid in &kids {
        text(
            &client,
            &format!("#job-children tr[data-id='{kid}'][data-status=success]"),
        )
        .await;
        assert_eq!(child_progress(&client, kid).await, Some(100));
    }
    until_text(&client, "#job-status", |t| t == "success").await;
    client.close().await.unwrap();
    drop(driver);
}
