//! The deployment files stay valid and agree with each other: the compose file per
//! docker-compose itself, every mounted path exists, the Prometheus config scrapes
//! the ports Tether's processes listen on, and the stack commits no credential and
//! publishes only what it must, on loopback. Both files are read as typed YAML.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde::Deserialize;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The parts of a compose file the checks read: the file itself, or docker-compose's
/// resolved form of it (variables substituted).
#[derive(Debug, Deserialize)]
struct Compose {
    services: BTreeMap<String, Service>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Service {
    command: Vec<String>,
    environment: BTreeMap<String, String>,
    volumes: Vec<String>,
    ports: Vec<PortSpec>,
    deploy: Option<Deploy>,
}

#[derive(Debug, Deserialize)]
struct Deploy {
    replicas: u32,
}

/// A published port in short (`[ip:]host:container[/proto]`) or long syntax.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PortSpec {
    Short(String),
    Long {
        #[serde(default)]
        host_ip: String,
        published: serde_yaml_ng::Value,
        target: u16,
    },
}

/// A published port: the host address and port, and the container's port.
#[derive(Debug, PartialEq)]
struct Published {
    host_ip: String,
    host_port: u16,
    container_port: u16,
}

impl PortSpec {
    fn published(&self) -> Published {
        match self {
            PortSpec::Short(text) => {
                let text = text.split('/').next().unwrap_or(text);
                let port = |p: &str| p.parse().unwrap_or_else(|_| panic!("port {p} in {text}"));
                match text.split(':').collect::<Vec<_>>()[..] {
                    [ip, host, container] => Published {
                        host_ip: ip.to_owned(),
                        host_port: port(host),
                        container_port: port(container),
                    },
                    [host, container] => Published {
                        host_ip: String::new(),
                        host_port: port(host),
                        container_port: port(container),
                    },
                    _ => panic!("unexpected port syntax {text}"),
                }
            }
            PortSpec::Long {
                host_ip,
                published,
                target,
            } => Published {
                host_ip: host_ip.clone(),
                host_port: match published {
                    serde_yaml_ng::Value::Number(n) => n.as_u64().unwrap() as u16,
                    other => other.as_str().unwrap().parse().unwrap(),
                },
                container_port: *target,
            },
        }
    }
}

/// A short-syntax volume: `source:target[:mode]`.
#[derive(Debug, PartialEq)]
struct Volume<'a> {
    source: &'a str,
    target: &'a str,
    read_only: bool,
}

fn volume(spec: &str) -> Volume<'_> {
    // A source may be a `${VAR:?message}` with colons of its own: split from the right.
    let (rest, read_only) = match spec.rsplit_once(':') {
        Some((rest, "ro")) => (rest, true),
        Some((rest, "rw")) => (rest, false),
        _ => (spec, false),
    };
    let (source, target) = rest
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("volume {spec} has no target"));
    Volume {
        source,
        target,
        read_only,
    }
}

impl Service {
    /// The value after `flag` in the command (`--flag value`).
    fn arg(&self, flag: &str) -> Option<&str> {
        let at = self.command.iter().position(|a| a == flag)?;
        self.command.get(at + 1).map(String::as_str)
    }

    /// Every word of the command, a `sh -c` script's split too.
    fn command_words(&self) -> Vec<&str> {
        self.command
            .iter()
            .flat_map(|part| part.split_whitespace())
            .collect()
    }

    fn volumes(&self) -> impl Iterator<Item = Volume<'_>> {
        self.volumes.iter().map(|v| volume(v))
    }
}

/// The port of a `host:port` address.
fn port_of(addr: &str) -> u16 {
    let (_, port) = addr
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{addr} has no port"));
    port.parse().unwrap_or_else(|_| panic!("{addr}: bad port"))
}

/// The repository's docker-compose.yml as written.
fn compose_file() -> Compose {
    let text = std::fs::read_to_string(Path::new(ROOT).join("docker-compose.yml")).unwrap();
    serde_yaml_ng::from_str(&text).expect("docker-compose.yml")
}

/// The parts of config/prometheus.yml the checks read.
#[derive(Debug, Deserialize)]
struct PrometheusConfig {
    rule_files: Vec<String>,
    scrape_configs: Vec<ScrapeConfig>,
}

#[derive(Debug, Deserialize)]
struct ScrapeConfig {
    job_name: String,
    #[serde(default)]
    static_configs: Vec<StaticConfig>,
    #[serde(default)]
    dns_sd_configs: Vec<DnsSdConfig>,
}

#[derive(Debug, Deserialize)]
struct StaticConfig {
    targets: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct DnsSdConfig {
    names: Vec<String>,
    port: u16,
}

fn prometheus_config() -> PrometheusConfig {
    let text = std::fs::read_to_string(Path::new(ROOT).join("config/prometheus.yml")).unwrap();
    serde_yaml_ng::from_str(&text).expect("config/prometheus.yml")
}

/// The file's own settings, and every bind mount's source exists in the repository.
#[test]
fn compose_file_describes_the_stack_and_its_mounts_exist() {
    let compose = compose_file();
    assert_eq!(
        compose.services.keys().collect::<Vec<_>>(),
        ["api", "grafana", "prometheus", "redis", "worker"]
    );
    let server = compose.services["redis"].command_words();
    for setting in [
        ["--appendonly", "yes"],
        ["--maxmemory-policy", "noeviction"],
    ] {
        assert!(
            server.windows(2).any(|w| w == setting),
            "redis-server runs without {setting:?}: {server:?}"
        );
    }
    let worker = &compose.services["worker"];
    assert_eq!(worker.deploy.as_ref().map(|d| d.replicas), Some(3));

    let mut mounts = 0;
    for service in compose.services.values() {
        for mount in service.volumes() {
            if let Some(source) = mount.source.strip_prefix("./") {
                assert!(
                    Path::new(ROOT).join(source).exists(),
                    "mounted path ./{source} does not exist"
                );
                mounts += 1;
            }
        }
    }
    assert!(
        mounts >= 4,
        "expected the config, dashboards and provisioning mounts, found {mounts}"
    );
    assert!(Path::new(ROOT).join("Dockerfile").exists());
}

/// The Prometheus config scrapes the ports the API and the workers listen on, and
/// reads its files where the compose file mounts them.
#[test]
fn prometheus_config_scrapes_the_api_and_every_worker() {
    let compose = compose_file();
    let config = prometheus_config();
    let job = |name: &str| {
        config
            .scrape_configs
            .iter()
            .find(|j| j.job_name == name)
            .unwrap_or_else(|| panic!("no scrape job {name}"))
    };

    let api_port = port_of(
        compose.services["api"]
            .arg("--listen")
            .expect("api --listen"),
    );
    assert_eq!(api_port, 9292, "the API's documented port");
    let api_targets: Vec<&str> = job("tether-api")
        .static_configs
        .iter()
        .flat_map(|c| &c.targets)
        .map(String::as_str)
        .collect();
    assert_eq!(api_targets, [format!("api:{api_port}")]);

    let worker = &compose.services["worker"];
    let metrics_port = port_of(worker.arg("--metrics-addr").expect("worker --metrics-addr"));
    assert_eq!(metrics_port, 9464, "the workers' documented metrics port");
    let discovery = &job("tether-worker").dns_sd_configs;
    assert_eq!(discovery.len(), 1, "{discovery:?}");
    assert_eq!(
        discovery[0].names,
        ["worker"],
        "every worker replica by name"
    );
    assert_eq!(discovery[0].port, metrics_port);

    let prometheus = &compose.services["prometheus"];
    let mounted: Vec<&str> = prometheus.volumes().map(|v| v.target).collect();
    let config_file = prometheus
        .command
        .iter()
        .find_map(|a| a.strip_prefix("--config.file="))
        .expect("prometheus --config.file");
    assert!(
        mounted.contains(&config_file),
        "{config_file} not mounted: {mounted:?}"
    );
    assert_eq!(config.rule_files.len(), 1, "{:?}", config.rule_files);
    let rules = &config.rule_files[0];
    assert!(rules.ends_with("/alerts.yml"), "{rules}");
    assert!(
        mounted.contains(&rules.as_str()),
        "{rules} not mounted: {mounted:?}"
    );
}

#[test]
#[ignore = "full tier: needs promtool (Debian's prometheus)"]
fn prometheus_config_passes_promtool() {
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
    cmd.output().expect(
        "docker-compose not found: apt-get install -y docker-compose (scripts/test.sh does)",
    )
}

/// docker-compose's resolved form of the stack with the operator's values.
fn resolved_compose() -> Compose {
    let out = compose_config(&OPERATOR_ENV);
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml_ng::from_slice(&out.stdout).expect("docker-compose config prints YAML")
}

/// docker-compose accepts the file, and publishes the API's and Grafana's ports as
/// the processes listen on them.
#[test]
#[ignore = "full tier: needs docker-compose"]
fn compose_file_is_valid_per_docker_compose() {
    let resolved = resolved_compose();
    let ports = |name: &str| -> Vec<Published> {
        resolved.services[name]
            .ports
            .iter()
            .map(PortSpec::published)
            .collect()
    };
    let api_port = port_of(
        resolved.services["api"]
            .arg("--listen")
            .expect("api --listen"),
    );
    assert_eq!(
        ports("api"),
        [Published {
            host_ip: "127.0.0.1".into(),
            host_port: api_port,
            container_port: api_port,
        }]
    );
    assert_eq!(
        ports("grafana"),
        [Published {
            host_ip: "127.0.0.1".into(),
            host_port: 3000,
            container_port: 3000,
        }]
    );
}

/// The stack refuses to start until the operator gives the Redis password, Grafana's
/// admin password and the API tokens file; Redis requires its password; only the API
/// and Grafana are published, on loopback.
#[test]
#[ignore = "full tier: needs docker-compose"]
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

    let resolved = resolved_compose();
    let mut exposed = Vec::new();
    for (name, service) in &resolved.services {
        for port in &service.ports {
            let published = port.published();
            assert_eq!(
                published.host_ip, "127.0.0.1",
                "{name} publishes port {} beyond loopback: {port:?}",
                published.host_port
            );
            exposed.push(name.as_str());
        }
    }
    exposed.dedup();
    assert_eq!(
        exposed,
        ["api", "grafana"],
        "only the API and Grafana are published"
    );

    // Redis requires the operator's password, and Tether's processes use it.
    let password = OPERATOR_ENV[0].1;
    let redis = &resolved.services["redis"];
    let server = redis.command_words();
    assert!(server.contains(&"--requirepass"), "{server:?}");
    assert!(
        !server.iter().any(|a| a.contains(password)),
        "the password is read from the environment at start, not written in the command"
    );
    assert_eq!(
        redis.environment.get("REDISCLI_AUTH").map(String::as_str),
        Some(password),
        "the server and its health check take the password from the environment"
    );
    for service in ["api", "worker"] {
        let url = resolved.services[service].environment["TETHER_REDIS_URL"].as_str();
        let userinfo = url
            .strip_prefix("redis://")
            .and_then(|rest| rest.split_once('@'))
            .map(|(userinfo, host)| (userinfo, host.split(':').next().unwrap_or(host)));
        assert_eq!(
            userinfo,
            Some((format!(":{password}").as_str(), "redis")),
            "{service} connects to redis with the password: {url}"
        );
    }
    // Grafana's admin password is the operator's, never the default.
    assert_eq!(
        resolved.services["grafana"].environment["GF_SECURITY_ADMIN_PASSWORD"],
        OPERATOR_ENV[1].1
    );
    // The tokens file is the operator's, mounted read-only where the API reads it.
    let api = &resolved.services["api"];
    let tokens = api.arg("--tokens").expect("api --tokens");
    let mounts: Vec<Volume> = api.volumes().collect();
    assert!(
        mounts.contains(&Volume {
            source: OPERATOR_ENV[2].1,
            target: tokens,
            read_only: true,
        }),
        "{mounts:?}"
    );
}

/// The repository holds no token or password file, and the compose file no literal
/// credential: every password, token or auth setting comes from the operator.
#[test]
fn the_repository_commits_no_credential() {
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
    for (name, service) in compose_file().services {
        for (key, value) in &service.environment {
            if key.contains("PASSWORD") || key.contains("AUTH") || key.contains("TOKEN") {
                assert!(
                    value.starts_with("${") && value.contains(":?"),
                    "{name:?}: {key} must come from the operator (${{VAR:?…}}), not {value:?}"
                );
            }
        }
    }
}
