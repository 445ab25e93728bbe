//! An unmodified OpenStack Glance client (python-glanceclient from PyPI, in a
//! virtualenv this test creates) against `tether api` with a token.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tether_suite::{ApiProcess, WorkerProcess};
use tether_testkit::{RedisOptions, RedisServer, eventually_blocking};

const TOKEN: &str = "glance-compat-token-0123456789";

/// `target/tmp/glance-venv/bin/glance`, installing python-glanceclient on first use.
fn glance_bin() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("glance-venv");
    tether_suite::python_tool(&venv, "python-glanceclient", None, "glance")
}

fn glance(url: &str, token: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(glance_bin())
        .args([
            "--os-image-url",
            url,
            "--os-auth-token",
            token,
            "--os-image-api-version",
            "2",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run glance");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The value of a `| name | value |` row of glance's table output.
fn property(table: &str, name: &str) -> Option<String> {
    table.lines().find_map(|l| {
        let cells: Vec<&str> = l.split('|').map(str::trim).collect();
        (cells.len() >= 3 && cells[1] == name).then(|| cells[2].to_owned())
    })
}

#[test]
#[ignore = "full tier: needs python3-venv and python-glanceclient from PyPI"]
fn python_glanceclient_creates_lists_and_shows_tasks() {
    let redis = RedisServer::start(RedisOptions::default());
    let dir = TempDir::new().unwrap();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!("[[tokens]]\ntoken = \"{TOKEN}\"\nowner = \"demo\"\n"),
    )
    .unwrap();
    let tokens_arg = tokens.display().to_string();
    let api = ApiProcess::start(
        &redis,
        &[
            "--tokens",
            &tokens_arg,
            "--job-types",
            "noop,sleep,import,fail",
        ],
    );
    let port = api.port;
    let _worker = WorkerProcess::start(&redis, &["--lease-ttl", "5s"]);
    let url = format!("http://127.0.0.1:{port}");

    let (ok, out) = glance(
        &url,
        TOKEN,
        &[
            "task-create",
            "--type",
            "import",
            "--input",
            r#"{"size_mb": 3, "chunk_ms": 50}"#,
        ],
    );
    assert!(ok, "task-create: {out}");
    let id = property(&out, "id").expect("task-create prints the id");
    assert_eq!(property(&out, "status").as_deref(), Some("pending"));
    assert_eq!(property(&out, "owner").as_deref(), Some("demo"));
    let (ok, out) = glance(
        &url,
        TOKEN,
        &["task-create", "--type", "sleep", "--input", r#"{"ms": 1}"#],
    );
    assert!(ok, "{out}");
    let sleeper = property(&out, "id").unwrap();

    let shown = eventually_blocking(Duration::from_secs(30), "task never succeeded", || {
        let (ok, out) = glance(&url, TOKEN, &["task-show", &id]);
        assert!(ok, "task-show: {out}");
        if property(&out, "status").as_deref() == Some("success") {
            Ok(out)
        } else {
            Err(out)
        }
    });
    assert!(
        property(&shown, "result")
            .unwrap()
            .contains("\"imported_mb\": 3"),
        "{shown}"
    );
    assert!(
        property(&shown, "expires_at").is_some_and(|e| e.ends_with('Z')),
        "{shown}"
    );

    let (ok, all) = glance(&url, TOKEN, &["task-list"]);
    assert!(
        ok && all.contains(&id) && all.contains(&sleeper),
        "task-list: {all}"
    );
    let (ok, imports) = glance(
        &url,
        TOKEN,
        &[
            "task-list",
            "--type",
            "import",
            "--sort-key",
            "status",
            "--sort-dir",
            "asc",
        ],
    );
    assert!(
        ok && imports.contains(&id) && !imports.contains(&sleeper),
        "task-list --type import: {imports}"
    );
    let (ok, paged) = glance(&url, TOKEN, &["task-list", "--page-size", "1"]);
    assert!(
        ok && paged.contains(&id) && paged.contains(&sleeper),
        "pagination through next links: {paged}"
    );
    let (ok, done) = glance(&url, TOKEN, &["task-list", "--status", "pending"]);
    assert!(ok && !done.contains(&id), "status filter: {done}");

    // Errors reach the user as messages.
    let (ok, out) = glance(
        &url,
        TOKEN,
        &["task-show", "01a20ac4-d6eb-7304-8936-604300000000"],
    );
    assert!(!ok && out.contains("no task"), "{out}");
    let (ok, out) = glance(&url, "not-a-valid-token-at-all", &["task-list"]);
    assert!(
        !ok && (out.contains("401") || out.to_lowercase().contains("credentials")),
        "{out}"
    );
}
