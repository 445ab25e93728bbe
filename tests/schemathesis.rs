//! Schemathesis (from PyPI, pinned, in a virtualenv this test creates) against a
//! live `tether api` with a worker and an admin token: every check, the stateful
//! phase included, a fixed number of examples per operation and a time bound. Any
//! failure is a mismatch between the OpenAPI document and the handlers.
//!
//! `TETHER_SCHEMATHESIS_SEED` and `TETHER_SCHEMATHESIS_EXAMPLES` change the seed
//! and the examples per operation (defaults below).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tether_suite::{ApiProcess, WorkerProcess};
use tether_testkit::{RedisOptions, RedisServer};

/// The version CI runs: a new one may bring new checks, so it is chosen, not taken.
const VERSION: &str = "4.32.5";
const TOKEN: &str = "schemathesis-token-0123456789abcdef";
const SEED: &str = "20261130";
const EXAMPLES: &str = "15";
/// Schemathesis's own budget; fuzzing and stateful testing repeat until it is spent.
const MAX_TIME_SECS: u64 = 150;
/// Past this the run is stopped and the test fails.
const HARD_LIMIT: Duration = Duration::from_secs(420);

/// `target/tmp/schemathesis-venv/bin/schemathesis`, installing it on first use.
fn schemathesis_bin() -> PathBuf {
    let requirement = format!("schemathesis=={VERSION}");
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-venv");
    tether_suite::python_tool(&venv, &requirement, Some(VERSION), "schemathesis")
}

#[test]
#[ignore = "full tier: needs python3-venv and Schemathesis from PyPI; about three minutes"]
fn schemathesis_finds_no_mismatch_between_the_document_and_the_api() {
    let bin = schemathesis_bin();
    let redis = RedisServer::start(RedisOptions::default());
    let dir = TempDir::new().unwrap();
    let tokens = dir.path().join("tokens.toml");
    // An admin reaches every operation (the queue routes are admins' only).
    std::fs::write(
        &tokens,
        format!("[[tokens]]\ntoken = \"{TOKEN}\"\nowner = \"fuzz\"\nrole = \"admin\"\n"),
    )
    .unwrap();
    let tokens_arg = tokens.display().to_string();
    let types = tether_demo_handlers::DEMO_TYPES.join(",");
    let api = ApiProcess::start(&redis, &["--tokens", &tokens_arg, "--job-types", &types]);
    let _worker = WorkerProcess::start(&redis, &["--lease-ttl", "5s"]);
    let seed = std::env::var("TETHER_SCHEMATHESIS_SEED").unwrap_or_else(|_| SEED.into());
    let examples =
        std::env::var("TETHER_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| EXAMPLES.into());

    let mut child = Command::new(bin)
        .current_dir(dir.path())
        .args([
            "run",
            &format!("http://127.0.0.1:{}/openapi.json", api.port),
        ])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", &examples, "--seed", &seed])
        .args(["--max-time", &MAX_TIME_SECS.to_string()])
        // An event stream of a task that runs for long is read this long, then cut.
        .args(["--request-timeout", "5"])
        .args(["--generation-database", "none", "--no-color"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run schemathesis");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).ok();
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > HARD_LIMIT {
            child.kill().ok();
            child.wait().ok();
            panic!("schemathesis ran past {HARD_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = reader.join().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .ok();
    let summary = output
        .find("SUMMARY")
        .map(|i| &output[output[..i].rfind('\n').unwrap_or(0)..])
        .unwrap_or(&output);
    // The summary goes where `scripts/test.sh` prints it from.
    let record = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-summary.txt");
    std::fs::write(&record, summary).ok();
    println!("{summary}");
    // "Missing test data" (operations that answered 404 to the ids generated for them,
    // such as the driver calls of external tasks, which need a task created with
    // `external: true`) is a warning about coverage, not a mismatch.
    let last_line = summary
        .lines()
        .rev()
        .find(|l| l.starts_with("==="))
        .unwrap_or("");
    let only_coverage_warnings = last_line.contains("warning")
        && !last_line.contains("failure")
        && !last_line.contains("error")
        && summary.matches("⚠️").count() == summary.matches("Missing test data").count();
    assert!(
        status.success() && (output.contains("No issues found") || only_coverage_warnings),
        "schemathesis found mismatches ({status}):\n{output}\n{stderr}"
    );
}
