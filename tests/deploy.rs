//! The deployment files stay valid: the compose file per docker-compose itself,
//! every mounted path exists, and the Prometheus config names Tether's ports.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn compose_file_is_valid_and_its_mounts_exist() {
    let out = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config"])
        .current_dir(ROOT)
        .output()
        .expect(
            "docker-compose not found: apt-get install -y docker-compose (scripts/test.sh does)",
        );
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
        "9090",
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
        mounts >= 5,
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
