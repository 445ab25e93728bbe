//! Metrics as an interface: a real Prometheus scrapes an API and workers under a
//! mixed load, then every dashboard query and alert rule must evaluate and return data.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;
use tether_suite::{ApiProcess, WorkerProcess, form_encode, http};
use tether_testkit::{RedisOptions, RedisServer, eventually_blocking, spawn_serving};

fn create(api: u16, body: Value) -> String {
    let (status, answer) = http(
        api,
        "POST",
        "/v2/tasks",
        &[("Content-Type", "application/json")],
        &body.to_string(),
    );
    assert_eq!(status, 201, "{answer}");
    serde_json::from_str::<Value>(&answer).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Every `expr` of every panel target in the dashboards.
fn dashboard_queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(
            dash["schemaVersion"].as_u64().unwrap() >= 36,
            "a current Grafana schema"
        );
        let vars: Vec<&str> = dash["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert!(
            vars.contains(&"datasource") && vars.contains(&"queue") && vars.contains(&"type"),
            "{vars:?}"
        );
        for panel in dash["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let title = format!(
                    "{}: {}",
                    path.file_name().unwrap().to_string_lossy(),
                    panel["title"].as_str().unwrap()
                );
                out.push((title, target["expr"].as_str().unwrap().to_owned()));
            }
        }
    }
    out
}

/// Every alert rule's `expr` from config/alerts.yml (one line each).
fn alert_rules() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/alerts.yml")).unwrap();
    let mut name = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("- alert: ") {
            name = n.to_owned();
        } else if let Some(e) = line.strip_prefix("expr: ") {
            out.push((name.clone(), e.to_owned()));
        }
    }
    out
}

/// The signals an alert compares: each `and` operand without its threshold.
fn alert_signals(expr: &str) -> Vec<String> {
    expr.split(" and ")
        .map(|part| {
            let cut = [" > ", " < ", " >= ", " <= ", " == ", " != "]
                .iter()
                .filter_map(|op| part.rfind(op))
                .max();
            cut.map_or(part, |i| &part[..i]).trim().to_owned()
        })
        .collect()
}

fn query(prometheus: u16, expr: &str) -> Value {
    let expr = expr
        .replace("$__rate_interval", "30s")
        .replace("$queue", ".*")
        .replace("$type", ".*");
    let body = format!("query={}", form_encode(&expr));
    let (status, answer) = http(
        prometheus,
        "POST",
        "/api/v1/query",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &body,
    );
    let answer: Value = serde_json::from_str(&answer).unwrap_or(json!({"raw": answer}));
    assert_eq!(status, 200, "{expr}: {answer}");
    answer
}

#[test]
#[ignore = "full tier: needs prometheus and promtool"]
fn every_dashboard_query_and_alert_rule_returns_data_from_a_real_prometheus() {
    let prometheus_bin = which("prometheus");
    let promtool = which("promtool");
    let check = Command::new(&promtool)
        .args([
            "check",
            "rules",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/alerts.yml"),
        ])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&check.stdout)
    );

    let redis = RedisServer::start(RedisOptions::default());
    let api = ApiProcess::start(&redis, &["--insecure-no-auth"]);
    let api_port = api.port;
    // `library` is fed by the Rust library only: the enqueue panel must show it.
    let args = [
        "--queue",
        "default,library",
        "--lease-ttl",
        "1s",
        "--reap-interval",
        "200ms",
        "--concurrency",
        "4",
    ];
    let workers: Vec<WorkerProcess> = (0..3)
        .map(|_| WorkerProcess::start(&redis, &args))
        .collect();

    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let targets = |ports: &[u16]| {
        ports
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {alerts}\nscrape_configs:\n  \
         - job_name: tether-api\n    static_configs:\n      - targets: [{api}]\n  \
         - job_name: tether-worker\n    static_configs:\n      - targets: [{workers}]\n",
        alerts = concat!(env!("CARGO_MANIFEST_DIR"), "/config/alerts.yml"),
        api = targets(&[api_port]),
        workers = targets(&workers.iter().map(|w| w.metrics_port).collect::<Vec<_>>()),
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let (_prom, prom_port) = spawn_serving("Prometheus", |prom_port| {
        let mut prom = Command::new(&prometheus_bin);
        prom.arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        prom
    });

    // A mixed load: successes, a fatal failure, retries, a cancel, and a killed worker;
    // and jobs a service enqueues with the library.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let producer = runtime.block_on(tether_suite::producer(&redis));
    for _ in 0..5 {
        let spec = tether_model::JobSpec::new("noop").queue("library");
        runtime.block_on(producer.enqueue(spec)).unwrap();
    }
    for _ in 0..40 {
        create(api_port, json!({"type": "noop"}));
    }
    create(api_port, json!({"type": "fail", "input": {"fatal": true}}));
    for _ in 0..3 {
        create(
            api_port,
            json!({"type": "flaky", "input": {"fail_times": 1}}),
        );
    }
    let long = create(
        api_port,
        json!({"type": "progress", "input": {"steps": 100, "step_ms": 100}}),
    );
    for _ in 0..12 {
        create(api_port, json!({"type": "sleep", "input": {"ms": 2500}}));
    }
    std::thread::sleep(Duration::from_millis(700));
    let (status, _) = http(
        api_port,
        "POST",
        &format!("/v2/tasks/{long}/cancel"),
        &[],
        "",
    );
    assert_eq!(status, 202);
    let mut workers = workers;
    workers[2].child.kill(); // holds sleep jobs: the others' reapers take them back
    let victim_port = workers[2].metrics_port;

    // Wait until the survivors have reaped and Prometheus has seen it, and rate windows fill.
    let scraped = format!("no lease expiry was ever scraped (victim on {victim_port})");
    eventually_blocking(Duration::from_secs(60), scraped, || {
        let expired = query(prom_port, "sum(tether_lease_expired_total)");
        let n = expired["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if n > 0.0 { Ok(()) } else { Err(expired) }
    });
    std::thread::sleep(Duration::from_secs(8));

    let mut empty = Vec::new();
    let dashboards = dashboard_queries();
    assert!(dashboards.len() >= 20, "{} queries", dashboards.len());
    for (title, expr) in &dashboards {
        let answer = query(prom_port, expr);
        assert_eq!(answer["status"], "success", "{title}: {expr}: {answer}");
        if answer["data"]["result"]
            .as_array()
            .is_none_or(|r| r.is_empty())
        {
            empty.push(format!("{title}: {expr}"));
        }
    }
    for (name, expr) in alert_rules() {
        let answer = query(prom_port, &expr);
        assert_eq!(answer["status"], "success", "alert {name}: {answer}");
        for signal in alert_signals(&expr) {
            let answer = query(prom_port, &signal);
            if answer["data"]["result"]
                .as_array()
                .is_none_or(|r| r.is_empty())
            {
                empty.push(format!("alert {name}: {signal}"));
            }
        }
    }
    assert!(
        empty.is_empty(),
        "queries that returned nothing:\n{}",
        empty.join("\n")
    );

    // The library's jobs are in the enqueue panel: its rate for `library` rises above 0
    // (enqueued again now, so that the panel's window holds them).
    let (_, panel) = dashboards
        .iter()
        .find(|(title, _)| title.ends_with(": Enqueued / s"))
        .expect("an enqueue panel");
    for _ in 0..5 {
        let spec = tether_model::JobSpec::new("noop").queue("library");
        runtime.block_on(producer.enqueue(spec)).unwrap();
    }
    let shown = format!("{panel}: no rate for the library's queue");
    eventually_blocking(Duration::from_secs(30), shown, || {
        let answer = query(prom_port, panel);
        let rate = answer["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|series| series["metric"]["queue"] == "library")
            .and_then(|series| series["value"][1].as_str()?.parse::<f64>().ok());
        if rate.is_some_and(|r| r > 0.0) {
            Ok(())
        } else {
            Err(answer)
        }
    });
}

fn which(name: &str) -> String {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let path = std::path::Path::new(dir).join(name);
        if path.exists() {
            return path.display().to_string();
        }
    }
    panic!(
        "{name} not found: install it with apt-get install -y prometheus (scripts/test.sh does)"
    );
}
