//! The `tether` binary from the outside: settings precedence and clear errors.

use std::process::{Command, Output};

use tether_testkit::{RedisOptions, RedisServer, free_port, tether_bin};

fn tether(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> Output {
    let mut cmd = Command::new(tether_bin());
    cmd.args(args)
        .current_dir(dir)
        .env_remove("TETHER_REDIS_URL")
        .env_remove("TETHER_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run tether")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn flag_beats_env_beats_config_file() {
    let redis = RedisServer::start(RedisOptions::default());
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let dir = tempfile_dir();
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(
        dir.join("config/tether.toml"),
        format!("redis_url = \"{}\"\n", redis.url()),
    )
    .unwrap();

    // The file alone is enough.
    assert!(tether(&["stats"], &[], &dir).status.success());
    // The environment overrides the file (here with a dead address, so the call fails).
    let out = tether(&["stats"], &[("TETHER_REDIS_URL", &dead)], &dir);
    assert!(
        !out.status.success() && stderr(&out).contains("cannot connect to Redis"),
        "{}",
        stderr(&out)
    );
    // The flag overrides the environment.
    let out = tether(
        &["stats", "--redis", &redis.url()],
        &[("TETHER_REDIS_URL", &dead)],
        &dir,
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn bad_input_gets_a_clear_error() {
    let redis = RedisServer::start(RedisOptions::default());
    let dir = tempfile_dir();
    let url = redis.url();
    let cases: &[(&[&str], &str)] = &[
        (
            &["enqueue", "--type", "noop", "--input", "{not json"],
            "--input is not valid JSON",
        ),
        (
            &["enqueue", "--type", "noop", "--queue", "has space"],
            "invalid queue name",
        ),
        (&["get", "not-a-uuid"], "not a job id"),
        (&["get", "01a20aa8-09b3-77e0-afe4-856b6835d6ee"], "no job"),
        (
            &["cancel", "01a20aa8-09b3-77e0-afe4-856b6835d6ee"],
            "NotFound",
        ),
        (&["worker", "--lease-ttl", "soon"], "examples: 500ms"),
    ];
    for (args, expected) in cases {
        let mut full = args.to_vec();
        full.extend(["--redis", &url]);
        let out = tether(&full, &[], &dir);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = tether(&["stats"], &[], &dir);
    assert!(
        stderr(&out).contains("no Redis configured"),
        "{}",
        stderr(&out)
    );
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("tether-cli-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `tether bench <args> --json` and returns its figures, which must be verified
/// (every run counted all its outcomes) and hold a finite number ≥ `at_least` under
/// each of `keys`. No timing is asserted.
fn bench_figures(args: &[&str], keys: &[&str], at_least: f64) -> serde_json::Value {
    let dir = tempfile_dir();
    let mut argv = vec!["bench"];
    argv.extend_from_slice(args);
    argv.push("--json");
    let out = tether(&argv, &[], &dir);
    assert!(out.status.success(), "bench failed: {}", stderr(&out));
    let figures: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(figures["verified"], true);
    for key in keys {
        assert!(
            figures[key]
                .as_f64()
                .is_some_and(|v| v.is_finite() && v >= at_least),
            "{key}: {}",
            figures[key]
        );
    }
    figures
}

/// CI runs the quick benchmark: it must complete and count every outcome.
#[test]
fn bench_quick_completes_and_verifies_its_counts() {
    let keys = [
        "process_jobs_per_s",
        "bulk_enqueue_jobs_per_s",
        "enqueue_concurrent_jobs_per_s",
        "redis_cpu_us_per_job",
        "redis_cmds_per_job",
        "wait_p50_ms",
        "wait_p99_ms",
        "redis_bytes_per_pending_job",
        "worker_rss_mib",
        "backlog_100k_vs_1k_ratio",
    ];
    bench_figures(&["--quick"], &keys, 0.0);
}

/// `bench --cluster` forms a local 3-master cluster, drains three queues on it and on
/// one Redis, and counts every outcome of both.
#[test]
fn bench_cluster_quick_compares_a_cluster_with_one_redis() {
    let keys = [
        "single_jobs_per_s",
        "cluster_jobs_per_s",
        "cluster_vs_single_ratio",
    ];
    let figures = bench_figures(&["--cluster", "--quick"], &keys, f64::MIN_POSITIVE);
    assert_eq!(figures["jobs"], 6000);
}

/// `tether demo` non-interactive: every kind of sample job reaches its expected final
/// state, and the private Redis is gone afterwards.
#[test]
fn demo_runs_every_kind_of_job_and_cleans_up() {
    let dir = tempfile_dir();
    let out = tether(&["demo", "--duration", "8s", "--json"], &[], &dir);
    assert!(out.status.success(), "demo failed: {}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON summary");
    let count = |t: &str, s: &str| summary["by_type"][t][s].as_u64().unwrap_or(0);
    for (job_type, status) in [
        ("noop", "success"),
        ("import", "success"),
        ("flaky", "success"),
        ("sleep", "success"),
        ("fail", "failure"),
        ("progress", "cancelled"),
    ] {
        assert!(
            count(job_type, status) >= 1,
            "no {job_type} ended {status}: {summary}"
        );
    }
    for (job_type, counts) in summary["by_type"].as_object().unwrap() {
        for status in counts.as_object().unwrap().keys() {
            assert!(
                ["success", "failure", "cancelled"].contains(&status.as_str()),
                "{job_type} left {status}: {summary}"
            );
        }
    }
    assert_eq!(count("flaky", "failure"), 0, "flaky jobs retry to success");
    // The private Redis announced on stderr is stopped and its directory removed.
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("Redis:"))
        .expect("announces its Redis");
    let port: u16 = line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let data = line
        .split("data in ")
        .nth(1)
        .map(|s| s.trim_end_matches(')'))
        .unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the private Redis still listens"
    );
    assert!(!std::path::Path::new(data).exists(), "{data} still exists");
}
