//! The deployment files stay valid: the compose file per docker-compose itself,
//! every mounted path exists, the Prometheus config names Tether's ports, and the
//! stack commits no credential and publishes only what it must, on loopback.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn compose_file_is_valid_and_its_mounts_exist() {
    assert!(
        Command::new("docker-compose")
            .arg("version")
            .output()
            .is_ok(),
        "docker-compose not found: apt-get install -y docker-compose (scripts/test.sh does)"
    );
    let out = compose_config(&OPERATOR_ENV);
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resolved = String::from_utf8(out.stdout).unwrap();
    for service in ["redis:", "api:", "worker:", "prometheus:", "grafana:"] {
        assert!(
            resolved.contains(&format!("  {service}")),
            "service {service} missing"
        );
    }
    for needle in [
        "appendonly",
        "noeviction",
        "replicas: 3",
        "9292",
        "9464",
        "3000",
    ] {
        assert!(
            resolved.contains(needle),
            "{needle} missing from the compose stack"
        );
    }
    // Every bind mount's source exists in the repository.
    let text = std::fs::read_to_string(Path::new(ROOT).join("docker-compose.yml")).unwrap();
    let mut mounts = 0;
    for line in text.lines().map(str::trim) {
        if let Some(source) = line.strip_prefix("- ./").and_then(|m| m.split(':').next()) {
            assert!(
                Path::new(ROOT).join(source).exists(),
                "mounted path ./{source} does not exist"
            );
            mounts += 1;
        }
    }
    assert!(
        mounts >= 4,
        "expected the config, dashboards and provisioning mounts, found {mounts}"
    );
    assert!(Path::new(ROOT).join("Dockerfile").exists());
}

#[test]
fn prometheus_config_scrapes_the_api_and_every_worker() {
    let config = std::fs::read_to_string(Path::new(ROOT).join("config/prometheus.yml")).unwrap();
    assert!(
        config.contains("api:9292")
            && config.contains("port: 9464")
            && config.contains("alerts.yml")
    );
    // The rule file path is the container's; check the syntax only.
    let out = Command::new("promtool")
        .args(["check", "config", "--syntax-only", "config/prometheus.yml"])
        .current_dir(ROOT)
        .output()
        .expect("promtool not found: apt-get install -y prometheus (scripts/test.sh does)");
    assert!(
        out.status.success(),
        "promtool check config: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Values the operator would put in `.env`; the stack refuses to start without them.
const OPERATOR_ENV: [(&str, &str); 3] = [
    ("TETHER_REDIS_PASSWORD", "test-redis-password-4f1c"),
    ("GRAFANA_ADMIN_PASSWORD", "test-grafana-password-9b2e"),
    ("TETHER_API_TOKENS_FILE", "/srv/tether/tokens.toml"),
];

/// `docker-compose config` with `env` only (none of the operator's own variables).
fn compose_config(env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new("docker-compose");
    cmd.args(["-f", "docker-compose.yml", "config"])
        .current_dir(ROOT)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("docker-compose")
}

fn yaml(text: &str) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(text).expect("valid YAML")
}

/// The host address of a published port, in short (`[ip:]host:container`) or long syntax.
fn published(port: &serde_yaml_ng::Value) -> (String, String) {
    match port {
        serde_yaml_ng::Value::String(text) => {
            let parts: Vec<&str> = text.split(':').collect();
            match parts.len() {
                3 => (parts[0].to_owned(), parts[1].to_owned()),
                _ => (String::new(), parts[0].to_owned()),
            }
        }
        serde_yaml_ng::Value::Number(n) => (String::new(), n.to_string()),
        other => (
            other["host_ip"].as_str().unwrap_or("").to_owned(),
            match &other["published"] {
                serde_yaml_ng::Value::Number(n) => n.to_string(),
                v => v.as_str().unwrap_or("").to_owned(),
            },
        ),
    }
}

/// No credential is committed: the stack refuses to start until the operator gives
/// the Redis password, Grafana's admin password and the API tokens file; Redis
/// requires its password; only the API and Grafana are published, on loopback.
#[test]
fn compose_stack_commits_no_credential_and_publishes_only_on_loopback() {
    // Without the operator's values, docker-compose refuses, naming what is missing.
    let refused = compose_config(&[]);
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "the stack starts without credentials"
    );
    assert!(
        why.contains("TETHER_REDIS_PASSWORD")
            || why.contains("GRAFANA_ADMIN_PASSWORD")
            || why.contains("TETHER_API_TOKENS_FILE"),
        "{why}"
    );
    for (missing, _) in OPERATOR_ENV {
        let env: Vec<_> = OPERATOR_ENV
            .iter()
            .copied()
            .filter(|(k, _)| *k != missing)
            .collect();
        let out = compose_config(&env);
        assert!(!out.status.success(), "starts without {missing}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(missing),
            "the refusal names {missing}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let out = compose_config(&OPERATOR_ENV);
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resolved = yaml(&String::from_utf8(out.stdout).unwrap());
    let services = resolved["services"].as_mapping().expect("services");
    let mut exposed = Vec::new();
    for (name, service) in services {
        let name = name.as_str().unwrap().to_owned();
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let (host_ip, host_port) = published(port);
            assert_eq!(
                host_ip, "127.0.0.1",
                "{name} publishes port {host_port} beyond loopback: {port:?}"
            );
            exposed.push(name.clone());
        }
    }
    exposed.sort();
    exposed.dedup();
    assert_eq!(
        exposed,
        ["api", "grafana"],
        "only the API and Grafana are published"
    );

    // Redis requires the operator's password, and Tether's processes use it.
    let redis = &resolved["services"]["redis"];
    let command: Vec<String> = redis["command"]
        .as_sequence()
        .expect("redis command as a list")
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_owned())
        .collect();
    let command = command.join(" ");
    assert!(command.contains("--requirepass"), "{command}");
    assert!(
        !command.contains(OPERATOR_ENV[0].1),
        "the password is read from the environment at start, not written in the command"
    );
    assert_eq!(
        redis["environment"]["REDISCLI_AUTH"].as_str(),
        Some(OPERATOR_ENV[0].1),
        "the server and its health check take the password from the environment"
    );
    for service in ["api", "worker"] {
        let url = resolved["services"][service]["environment"]["TETHER_REDIS_URL"]
            .as_str()
            .unwrap_or("");
        assert!(
            url.contains(&format!(":{}@redis:", OPERATOR_ENV[0].1)),
            "{service} connects with the password: {url}"
        );
    }
    // Grafana's admin password is the operator's, never the default.
    assert_eq!(
        resolved["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"].as_str(),
        Some(OPERATOR_ENV[1].1)
    );
    // The tokens file is the operator's, mounted read-only.
    let api_volumes = format!("{:?}", resolved["services"]["api"]["volumes"]);
    assert!(api_volumes.contains(OPERATOR_ENV[2].1), "{api_volumes}");

    // The repository holds no token or password file, and the compose file no literal
    // credential.
    let tracked = Command::new("git")
        .args(["ls-files"])
        .current_dir(ROOT)
        .output()
        .expect("git");
    for file in String::from_utf8_lossy(&tracked.stdout).lines() {
        let base = file.rsplit('/').next().unwrap_or(file).to_lowercase();
        assert!(
            !(base.contains("token") && (base.ends_with(".toml") || base.ends_with(".txt")))
                && !base.contains("password")
                && !base.contains("secret")
                && base != ".env",
            "credential file committed: {file}"
        );
    }
    let raw = yaml(&std::fs::read_to_string(Path::new(ROOT).join("docker-compose.yml")).unwrap());
    for (name, service) in raw["services"].as_mapping().unwrap() {
        if let Some(env) = service["environment"].as_mapping() {
            for (key, value) in env {
                let key = key.as_str().unwrap_or("");
                let value = value.as_str().unwrap_or("");
                if key.contains("PASSWORD") || key.contains("AUTH") || key.contains("TOKEN") {
                    assert!(
                        value.starts_with("${") && value.contains(":?"),
                        "{name:?}: {key} must come from the operator (${{VAR:?…}}), not {value:?}"
                    );
                }
            }
        }
    }
}
