//! The config file layer: `config/tether.toml`, every key optional.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// `config/tether.toml`, every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub redis_url: Option<String>,
    pub cluster: Option<bool>,
    #[serde(default)]
    pub store: StoreFile,
    #[serde(default)]
    pub worker: WorkerFile,
    #[serde(default)]
    pub api: ApiFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiFile {
    pub listen: Option<SocketAddr>,
    pub tokens: Option<PathBuf>,
    pub job_types: Option<Vec<String>>,
    pub body_limit: Option<usize>,
    #[serde(default, with = "humantime_serde_opt")]
    pub horizon: Option<Duration>,
    pub max_pending_per_owner: Option<u64>,
    pub allowed_queues: Option<Vec<String>>,
    #[serde(default, with = "humantime_serde_opt")]
    pub forget_idle_queues: Option<Duration>,
    pub public_url: Option<String>,
    pub metrics_addr: Option<SocketAddr>,
    #[serde(default, with = "humantime_serde_opt")]
    pub header_read_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    pub idle_timeout: Option<Duration>,
    pub max_event_streams: Option<usize>,
    pub max_event_streams_per_caller: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreFile {
    #[serde(default, with = "humantime_serde_opt")]
    pub retention: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    pub response_timeout: Option<Duration>,
    pub max_payload_bytes: Option<usize>,
    pub min_replicas: Option<usize>,
    #[serde(default, with = "humantime_serde_opt")]
    pub replication_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    pub horizon: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkerFile {
    pub queues: Option<Vec<String>>,
    pub concurrency: Option<usize>,
    #[serde(default, with = "humantime_serde_opt")]
    pub lease_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    pub heartbeat: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    pub reap_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    pub shutdown_grace: Option<Duration>,
    pub claim_batch: Option<usize>,
    pub metrics_addr: Option<SocketAddr>,
}

mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Where the config file is: the given path (which must exist), else `config/tether.toml` if present.
pub(crate) fn load(path: Option<&Path>) -> Result<FileConfig, String> {
    let path: PathBuf = match path {
        Some(p) => p.to_owned(),
        None => {
            let default = PathBuf::from("config/tether.toml");
            if !default.exists() {
                return Ok(FileConfig::default());
            }
            default
        }
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("invalid {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped config file documents every key with its default; uncommented, it must parse.
    #[test]
    fn the_documented_config_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/tether.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let active: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.contains(" = ") && !rest.contains("Precedence") => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let config: FileConfig = toml::from_str(&active).unwrap();
        assert_eq!(config.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
        assert_eq!(config.store.retention, Some(Duration::from_secs(48 * 3600)));
        assert_eq!(config.worker.concurrency, Some(16));
        assert_eq!(config.worker.lease_ttl, Some(Duration::from_secs(30)));
        assert_eq!(config.worker.claim_batch, Some(64));
        assert_eq!(config.api.listen, Some("127.0.0.1:9292".parse().unwrap()));
        assert_eq!(config.api.body_limit, Some(1048576));
        assert_eq!(
            config.api.horizon,
            Some(Duration::from_secs(30 * 24 * 3600))
        );
        assert_eq!(config.store.horizon, config.api.horizon);
        assert_eq!(config.api.max_pending_per_owner, Some(10_000));
        assert_eq!(
            config.api.forget_idle_queues,
            Some(Duration::from_secs(24 * 3600))
        );
        assert_eq!(
            config.api.header_read_timeout,
            Some(Duration::from_secs(30))
        );
        assert_eq!(config.api.idle_timeout, Some(Duration::from_secs(60)));
        assert_eq!(config.api.max_event_streams, Some(1000));
        assert_eq!(config.api.max_event_streams_per_caller, Some(20));
        // As shipped, everything is commented out: it changes nothing.
        let shipped: FileConfig = toml::from_str(&text).unwrap();
        assert!(shipped.redis_url.is_none() && shipped.worker.concurrency.is_none());
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<FileConfig>("[worker]\nconcurency = 3").is_err());
    }
}
