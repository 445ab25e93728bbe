//! External tasks (vSphere TaskManager and HttpNfcLease), driven through a real `tether api`
//! process over HTTP, with a real `tether worker` process ending lapsed leases. Every test
//! runs on one Redis and on a three-master cluster.

use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;
use tether_suite::*;
use tether_testkit::TestRedis;

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

struct Env {
    redis: TestRedis,
    api: ApiProcess,
    _worker: WorkerProcess,
    _dir: TempDir,
}

/// Redis, a worker serving `default` (its maintenance ends lapsed leases) and the API with
/// the tokens of two tenants and an admin.
fn env(topology: Topology) -> Env {
    let redis = TestRedis::start(topology);
    let dir = TempDir::new().unwrap();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[tokens]]\ntoken = \"{ALICE}\"\nowner = \"alice\"\n\
             [[tokens]]\ntoken = \"{BOB}\"\nowner = \"bob\"\n\
             [[tokens]]\ntoken = \"{ADMIN}\"\nowner = \"ops\"\nrole = \"admin\"\n"
        ),
    )
    .unwrap();
    let worker = WorkerProcess::start(&redis, &["--reap-interval", "200ms"]);
    let api = ApiProcess::start(&redis, &["--tokens", &tokens.display().to_string()]);
    Env {
        redis,
        api,
        _worker: worker,
        _dir: dir,
    }
}

impl Env {
    /// One request as `token`; the answer's status and JSON body.
    fn call(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("Authorization", auth.as_str())];
        let text = match &body {
            Some(body) => {
                headers.push(("Content-Type", "application/json"));
                body.to_string()
            }
            None => String::new(),
        };
        let (status, answer) = http(self.api.port, method, path, &headers, &text);
        (status, serde_json::from_str(&answer).unwrap_or(Value::Null))
    }

    fn create(&self, body: Value) -> String {
        let (status, task) = self.call(ALICE, "POST", "/v2/tasks", Some(body));
        assert_eq!(status, 201, "{task}");
        task["id"].as_str().unwrap().to_owned()
    }

    fn drive(&self, token: &str, id: &str, what: &str, body: Value) -> (u16, Value) {
        self.call(token, "POST", &format!("/v2/tasks/{id}/{what}"), Some(body))
    }

    fn show(&self, id: &str) -> Value {
        let (status, task) = self.call(ALICE, "GET", &format!("/v2/tasks/{id}"), None);
        assert_eq!(status, 200, "{task}");
        task
    }

    /// Polls the task until it has `status`.
    async fn until_status(&self, id: &str, status: &str) -> Value {
        eventually(
            Duration::from_secs(15),
            format!("task {id} never reached {status}"),
            async || {
                let task = self.show(id);
                if task["status"] == status {
                    Ok(task)
                } else {
                    Err(task.to_string())
                }
            },
        )
        .await
    }
}

fn external(lease: &str) -> Value {
    json!({"type": "export", "external": true, "lease_timeout": lease, "name": "export vm-42"})
}

async fn driven_from_creation_to_success_and_late_calls_change_nothing(topology: Topology) {
    let env = env(topology);
    let id = env.create(external("30s"));
    let task = env.show(&id);
    assert_eq!(task["status"], "pending");
    assert_eq!(task["external"], true);
    assert_eq!(task["lease_timeout"], 30.0);
    assert!(task["lease_expires_at"].is_string(), "{task}");

    // The first report moves it to processing; percentages are clamped, never refused.
    let (status, answer) = env.drive(ALICE, &id, "progress", json!({"percent": -5}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "processing");
    assert_eq!(answer["progress"], 0);
    assert_eq!(answer["cancel_requested"], false);
    assert!(answer["lease_expires_at"].is_string(), "{answer}");
    let (_, answer) = env.drive(
        ALICE,
        &id,
        "progress",
        json!({"percent": 40, "message": "copying disks"}),
    );
    assert_eq!(answer["progress"], 40);
    assert_eq!(answer["progress_message"], "copying disks");
    let (_, answer) = env.drive(ALICE, &id, "progress", json!({"percent": 250}));
    assert_eq!(answer["progress"], 100);
    assert_eq!(answer["status"], "processing", "100 % is not the end");
    let (status, answer) = env.drive(
        ALICE,
        &id,
        "description",
        json!({"description": "uploading"}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(env.show(&id)["progress_message"], "uploading");

    // An admin may drive anyone's task.
    let (status, answer) = env.drive(ADMIN, &id, "progress", json!({"percent": 90}));
    assert_eq!((status, answer["progress"].clone()), (200, json!(90)));

    let (status, answer) = env.drive(
        ALICE,
        &id,
        "complete",
        json!({"result": {"url": "https://example.com/vm-42.ova"}}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "success");
    assert_eq!(answer["lease_expires_at"], Value::Null);
    let done = env.show(&id);
    assert_eq!(done["status"], "success");
    assert_eq!(done["progress"], 100);
    assert_eq!(done["result"]["url"], "https://example.com/vm-42.ova");

    // Fencing: every late call is refused and changes nothing.
    for (what, body) in [
        ("progress", json!({"percent": 10})),
        ("description", json!({"description": "again"})),
        ("complete", json!({"result": "other"})),
        ("abort", json!({"error_code": "Late"})),
    ] {
        let (status, answer) = env.drive(ALICE, &id, what, body);
        assert_eq!(status, 409, "{what}: {answer}");
        assert_eq!(answer["code"], "InvalidState", "{what}: {answer}");
    }
    let after = env.show(&id);
    for field in [
        "status",
        "progress",
        "result",
        "progress_message",
        "updated_at",
    ] {
        assert_eq!(after[field], done[field], "{field} changed after the end");
    }
    assert_consistent(&env.redis).await;
}

async fn abort_records_the_fault_and_cancel_is_seen_by_the_driver(topology: Topology) {
    let env = env(topology);
    let id = env.create(external("30s"));
    env.drive(ALICE, &id, "progress", json!({"percent": 5}));
    let (status, _) = env.call(ALICE, "POST", &format!("/v2/tasks/{id}/cancel"), None);
    assert_eq!(status, 202);
    // A cancel only asks: the driver sees it in its next report and ends the task.
    assert_eq!(env.show(&id)["status"], "processing");
    let (_, answer) = env.drive(ALICE, &id, "progress", json!({"percent": 6}));
    assert_eq!(answer["cancel_requested"], true, "{answer}");
    let (status, answer) = env.drive(
        ALICE,
        &id,
        "abort",
        json!({"error_code": "DiskFull", "message": "datastore1 is full"}),
    );
    assert_eq!(status, 200, "{answer}");
    let task = env.show(&id);
    assert_eq!(task["status"], "failure");
    assert_eq!(task["error_code"], "DiskFull");
    assert_eq!(task["message"], "datastore1 is full");
    // No worker would run it: a retry is refused.
    let (status, answer) = env.call(ALICE, "POST", &format!("/v2/tasks/{id}/retry"), None);
    assert_eq!(
        (status, answer["code"].clone()),
        (409, json!("NotSupported"))
    );

    // An abort with no body: the default fault. A pending task can be aborted too.
    let id = env.create(external("30s"));
    let (status, answer) = env.call(ALICE, "POST", &format!("/v2/tasks/{id}/abort"), None);
    assert_eq!(status, 200, "{answer}");
    let task = env.show(&id);
    assert_eq!(
        (task["status"].clone(), task["error_code"].clone()),
        (json!("failure"), json!("Aborted"))
    );
    assert!(!task["message"].as_str().unwrap().is_empty());
    assert_consistent(&env.redis).await;
}

async fn a_lapsed_lease_fails_the_task_with_timedout(topology: Topology) {
    let env = env(topology);
    // Reported once, then silent: the worker's maintenance ends it, no driver call needed.
    let silent = env.create(external("1s"));
    env.drive(ALICE, &silent, "progress", json!({"percent": 30}));
    // Never reported, and a cancel was asked: it ends cancelled.
    let cancelled = env.create(external("1s"));
    env.call(
        ALICE,
        "POST",
        &format!("/v2/tasks/{cancelled}/cancel"),
        None,
    );
    // Kept alive by reports past several leases.
    let alive = env.create(external("1s"));
    for pct in 1..=6 {
        let (status, answer) = env.drive(ALICE, &alive, "progress", json!({"percent": pct}));
        assert_eq!(status, 200, "{answer}");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let task = env.until_status(&silent, "failure").await;
    assert_eq!(task["error_code"], "Timedout", "{task}");
    assert_eq!(task["progress"], 100);
    let task = env.until_status(&cancelled, "cancelled").await;
    assert_eq!(task["error_code"], "RequestCanceled", "{task}");
    assert_eq!(env.show(&alive)["status"], "processing");
    // The driver comes back too late: refused, nothing changes.
    let (status, answer) = env.drive(ALICE, &silent, "complete", json!({}));
    assert_eq!(
        (status, answer["code"].clone()),
        (409, json!("InvalidState"))
    );
    assert_eq!(env.show(&silent)["status"], "failure");
    env.drive(ALICE, &alive, "complete", json!({}));
    assert_consistent(&env.redis).await;
}

async fn tenants_cannot_drive_each_others_tasks(topology: Topology) {
    let env = env(topology);
    let id = env.create(external("30s"));
    for (what, body) in [
        ("progress", json!({"percent": 50})),
        ("description", json!({"description": "mine now"})),
        ("complete", json!({"result": 1})),
        ("abort", json!({})),
    ] {
        let (status, answer) = env.drive(BOB, &id, what, body);
        assert_eq!(status, 404, "bob's {what}: {answer}");
        assert_eq!(answer["code"], "NotFound");
    }
    let task = env.show(&id);
    assert_eq!(task["status"], "pending");
    assert_eq!(task["progress"], 0);
    assert_eq!(task["progress_message"], Value::Null);
    // Unauthenticated: 401 before anything is read.
    let (status, _) = http(
        env.api.port,
        "POST",
        &format!("/v2/tasks/{id}/progress"),
        &[("Content-Type", "application/json")],
        r#"{"percent": 1}"#,
    );
    assert_eq!(status, 401);
    assert_consistent(&env.redis).await;
}

async fn hostile_inputs_are_refused(topology: Topology) {
    let env = env(topology);
    for body in [
        json!({"type": "export", "lease_timeout": "30s"}),
        json!({"type": "export", "external": true, "lease_timeout": "0s"}),
        json!({"type": "export", "external": true, "lease_timeout": "30d"}),
        json!({"type": "export", "external": true, "lease_timeout": "soon"}),
        json!({"type": "export", "external": true, "delay": 5}),
        json!({"type": "export", "external": true, "timeout": 5}),
    ] {
        let (status, answer) = env.call(ALICE, "POST", "/v2/tasks", Some(body.clone()));
        assert_eq!(status, 400, "{body}: {answer}");
    }
    let id = env.create(external("30s"));
    for (what, body) in [
        ("progress", json!({"percent": "half"})),
        ("progress", json!({})),
        (
            "progress",
            json!({"percent": 5, "message": "x".repeat(5000)}),
        ),
        ("description", json!({"description": "x".repeat(5000)})),
        ("abort", json!({"error_code": "no spaces allowed"})),
        ("abort", json!({"error_code": "x".repeat(200)})),
        ("complete", json!({"outcome": 1})),
    ] {
        let (status, answer) = env.drive(ALICE, &id, what, body.clone());
        assert_eq!(status, 400, "{what} {body}: {answer}");
    }
    assert_eq!(env.show(&id)["status"], "pending");
    // A task a worker runs is not the caller's to drive.
    let (status, job) = env.call(
        ALICE,
        "POST",
        "/v2/tasks",
        Some(json!({"type": "sleep", "input": {"ms": 1}, "delay": 3600})),
    );
    assert_eq!(status, 201, "{job}");
    let job = job["id"].as_str().unwrap();
    let (status, answer) = env.drive(ALICE, job, "progress", json!({"percent": 50}));
    assert_eq!(
        (status, answer["code"].clone()),
        (409, json!("NotSupported"))
    );
    let (status, _) = env.drive(ALICE, "not-a-uuid", "progress", json!({"percent": 1}));
    assert_eq!(status, 404);
    assert_consistent(&env.redis).await;
}

/// The library's handle: the same calls, a watcher that follows the task to its end, owner
/// scoping, and the lease ended by a store call as the workers' maintenance makes it.
async fn the_library_handle_drives_a_task_and_watchers_follow_it(topology: Topology) {
    let redis = TestRedis::start(topology);
    let admin = producer(&redis).await;
    let alice = admin.for_owner("alice");
    let bob = admin.for_owner("bob");
    let spec = tether_producer::JobSpec::new("export").queue("exports");
    let task = alice
        .create_external(spec.clone(), Duration::from_secs(30))
        .await
        .unwrap();
    let job = alice.get(task.id()).await.unwrap().unwrap();
    assert!(job.external);
    assert_eq!(job.lease_timeout_ms, Some(30_000));
    assert_eq!(job.status, tether_producer::Status::Pending);

    let waiter = {
        let alice = alice.clone();
        let id = task.id();
        tokio::spawn(async move { alice.wait(id, Duration::from_secs(20)).await })
    };
    let first = task.progress(20, Some("copying")).await.unwrap();
    assert_eq!(first.status, tether_producer::Status::Processing);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = task.progress(40, None).await.unwrap();
    assert!(second.lease_expires_at >= first.lease_expires_at);
    let job = alice.get(task.id()).await.unwrap().unwrap();
    assert_eq!(job.progress_message.as_deref(), Some("copying"), "kept");
    assert!(job.eta.is_some(), "an ETA from the rate so far");
    assert!(job.started_at.is_some());
    task.describe("uploading").await.unwrap();

    // Bob's producer cannot find it, let alone drive it.
    let theirs = bob.external_task(task.id());
    let refused = theirs.complete(Some(&"mine")).await.unwrap_err();
    assert!(refused.is_not_found(), "{refused}");

    let done = task.complete(Some(&json!({"ok": true}))).await.unwrap();
    assert_eq!(done.status, tether_producer::Status::Success);
    let finished = waiter.await.unwrap().unwrap();
    assert_eq!(finished.status, tether_producer::Status::Success);
    assert_eq!(finished.result, Some(json!({"ok": true})));
    let late = task.abort(None, None).await.unwrap_err();
    assert_eq!(
        late.kind(),
        tether_producer::ErrorKind::InvalidState {
            status: tether_producer::Status::Success
        }
    );

    // A lapsed lease, ended by the call the workers' maintenance makes.
    let lapsing = alice
        .create_external(spec, Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let lapsed = store(&redis)
        .await
        .lapse_external("exports", 100)
        .await
        .unwrap();
    assert_eq!(lapsed.failed, vec![lapsing.id()]);
    let job = alice.get(lapsing.id()).await.unwrap().unwrap();
    assert_eq!(job.error_code, Some(tether_producer::ErrorCode::Timedout));
    assert_eq!(job.lease_expires_at, None);
    assert_consistent(&redis).await;
}

/// An external task's driver spawns children over REST (worker jobs, in another queue):
/// once per key, listed under the task; another tenant gets 404, a task a worker runs
/// 409 NotSupported, an ended task 409 InvalidState, hostile bodies 400.
async fn a_driver_spawns_children_over_rest(topology: Topology) {
    let env = env(topology);
    let id = env.create(external("30s"));
    // A whole number written with a fraction (as JSON Schema's integer allows) is one.
    let child = json!({"key": "disk-0", "type": "noop", "queue": "disks", "weight": 2.0});
    let (status, first) = env.drive(ALICE, &id, "children", child.clone());
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["parent_id"], id.as_str());
    assert_eq!(first["root_id"], id.as_str());
    assert_eq!(first["queue"], "disks");
    assert_eq!(first["owner"], "alice");
    let (status, again) = env.drive(ALICE, &id, "children", child.clone());
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["id"], first["id"], "a key spawns once");
    let (status, listed) = env.call(ALICE, "GET", &format!("/v2/tasks?parent={id}"), None);
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(env.show(&id)["subtask_count"], 1);

    let (status, answer) = env.drive(BOB, &id, "children", child.clone());
    assert_eq!(status, 404, "{answer}");
    for body in [
        json!({"key": "", "type": "noop"}),
        json!({"key": "k", "type": "no such type"}),
        json!({"key": "k", "type": "noop", "queue": "bad queue"}),
        json!({"key": "k", "type": "noop", "external": true}),
        json!({"type": "noop"}),
        json!({"key": "k", "type": "noop", "weight": 1.5}),
    ] {
        let (status, answer) = env.drive(ALICE, &id, "children", body.clone());
        assert_eq!(status, 400, "{body}: {answer}");
    }
    let run = env.create(json!({"type": "noop"}));
    let (status, answer) = env.drive(ALICE, &run, "children", child.clone());
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["code"], "NotSupported");
    let (status, _) = env.drive(ALICE, &id, "complete", json!({}));
    assert_eq!(status, 200);
    let late = json!({"key": "late", "type": "noop"});
    let (status, answer) = env.drive(ALICE, &id, "children", late);
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["code"], "InvalidState");
    assert_consistent(&env.redis).await;
}

on_every_topology!(
    a_driver_spawns_children_over_rest,
    the_library_handle_drives_a_task_and_watchers_follow_it,
    driven_from_creation_to_success_and_late_calls_change_nothing,
    abort_records_the_fault_and_cancel_is_seen_by_the_driver,
    a_lapsed_lease_fails_the_task_with_timedout,
    tenants_cannot_drive_each_others_tasks,
    hostile_inputs_are_refused,
);

fn cli(redis: &TestRedis, args: &[&str]) -> (bool, String, String) {
    let out = tether_output(redis, args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_and_drives_an_external_task() {
    let redis = TestRedis::start(Topology::Single);
    let (ok, out, err) = cli(
        &redis,
        &[
            "task",
            "create-external",
            "--type",
            "backup",
            "--lease-timeout",
            "1m",
        ],
    );
    assert!(ok, "{err}");
    let id = out.trim().to_owned();
    let (ok, out, err) = cli(
        &redis,
        &[
            "task",
            "progress",
            &id,
            "-20",
            "--message",
            "starting",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["status"], "processing");
    assert_eq!(answer["progress"], 0);
    assert_eq!(answer["cancel_requested"], false);
    assert!(answer["lease_expires_at"].is_string(), "{answer}");
    let (ok, _, err) = cli(&redis, &["task", "describe", &id, "snapshotting"]);
    assert!(ok, "{err}");
    // Its driver spawns a child (no worker here: it waits, pending), once per key.
    let spawn = [
        "task", "spawn", &id, "disk-0", "--type", "noop", "--queue", "disks",
    ];
    let (ok, out, err) = cli(&redis, &spawn);
    assert!(ok, "{err}");
    let child = out.trim().to_owned();
    let (ok, again, err) = cli(&redis, &spawn);
    assert!(ok, "{err}");
    assert_eq!(again.trim(), child, "a key spawns once");
    let (ok, out, err) = cli(&redis, &["get", &child, "--json"]);
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["parent_id"], id.as_str());
    assert_eq!(shown["queue"], "disks");
    assert_eq!(shown["status"], "pending");
    let (ok, out, err) = cli(&redis, &["task", "progress", &id, "70"]);
    assert!(ok, "{err}");
    assert!(out.contains("processing 70%"), "{out}");
    let (ok, _, err) = cli(
        &redis,
        &["task", "complete", &id, "--result", r#"{"bytes": 42}"#],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&redis, &["task", "abort", &id, "--error-code", "Late"]);
    assert!(!ok, "a call after the end must fail");
    assert!(
        err.contains("InvalidState") || err.contains("success"),
        "{err}"
    );
    let (ok, out, err) = cli(&redis, &["get", &id, "--json"]);
    assert!(ok, "{err}");
    let job: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(job["status"], "success");
    assert_eq!(job["result"]["bytes"], 42);
    assert_eq!(job["progress_message"], "snapshotting");
    assert_eq!(job["external"], true);

    let (ok, out, _) = cli(&redis, &["task", "create-external"]);
    assert!(ok);
    let (ok, _, err) = cli(
        &redis,
        &[
            "task",
            "abort",
            out.trim(),
            "--error-code",
            "DiskFull",
            "--message",
            "full",
        ],
    );
    assert!(ok, "{err}");
    assert_consistent(&redis).await;
}
