//! Settings: a flag wins over its `TETHER_…` environment variable (clap reads both),
//! which wins over the key in the config file, which wins over the default.
//!
//! The flags that are settings are declared here, and every merge of the four
//! layers happens here: [`Global`] for the Redis connection and the store, one
//! module each for the commands with settings of their own ([`WorkerArgs`],
//! [`ApiArgs`]). The commands receive merged settings.

mod api;
mod file;
mod worker;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tether_store::StoreConfig;

pub(crate) use api::{ApiArgs, DEFAULT_MAX_PENDING_PER_OWNER};
pub(crate) use file::FileConfig;
pub(crate) use worker::WorkerArgs;

/// The flags every command takes, before or after its name.
#[derive(Args, Debug)]
pub(crate) struct Global {
    /// Redis URL (redis:// or rediss://); comma-separated URLs are Redis Cluster seeds (default: the config file's redis_url).
    #[arg(
        long = "redis",
        env = "TETHER_REDIS_URL",
        global = true,
        hide_env_values = true
    )]
    pub redis_url: Option<String>,
    /// Use the Redis Cluster client even with a single seed URL.
    #[arg(long, env = "TETHER_CLUSTER", global = true)]
    pub cluster: bool,
    /// Config file (default: config/tether.toml when present).
    #[arg(long, env = "TETHER_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `tether_worker=debug` (default: info for worker and api, warn otherwise).
    #[arg(long, env = "TETHER_LOG", global = true)]
    pub log: Option<String>,
}

impl Global {
    /// The config file: `--config` (which must exist), else `config/tether.toml` if present.
    pub(crate) fn file(&self) -> Result<FileConfig, String> {
        file::load(self.config.as_deref())
    }

    /// The Redis URL, when one is configured: `--redis` (or `TETHER_REDIS_URL`), else
    /// the file's `redis_url`.
    pub(crate) fn redis_url(&self, file: &FileConfig) -> Option<String> {
        self.redis_url.clone().or(file.redis_url.clone())
    }

    /// The store's settings: the Redis URL (required), `--cluster` or the file's
    /// `cluster`, and the file's `[store]` keys over the defaults.
    pub(crate) fn store(&self, file: &FileConfig) -> Result<StoreConfig, String> {
        let url = self.redis_url(file).ok_or(
            "no Redis configured: pass --redis URL, set TETHER_REDIS_URL, or set redis_url in config/tether.toml",
        )?;
        let mut config = StoreConfig::new(url);
        config.cluster = self.cluster || file.cluster.unwrap_or(false);
        let store = &file.store;
        if let Some(r) = store.retention {
            config.retention = r;
        }
        if let Some(t) = store.response_timeout {
            config.response_timeout = t;
        }
        if let Some(m) = store.max_payload_bytes {
            config.max_payload_bytes = m;
        }
        if let Some(n) = store.min_replicas {
            config.min_replicas = n;
        }
        if let Some(t) = store.replication_timeout {
            config.replication_timeout = t;
        }
        if let Some(h) = store.horizon {
            config.horizon = h;
        }
        Ok(config)
    }
}

/// Parses `10s`, `250ms`, `1m`, `2h` (for clap).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 500ms, 10s, 5m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(url: Option<&str>) -> Global {
        Global {
            redis_url: url.map(Into::into),
            cluster: false,
            config: None,
            log: None,
        }
    }

    #[test]
    fn the_flag_url_beats_the_file_and_the_file_sets_the_store() {
        let file: FileConfig = toml::from_str(
            "redis_url = \"redis://file\"\ncluster = true\n[store]\nretention = \"1h\"",
        )
        .unwrap();
        let config = global(Some("redis://flag")).store(&file).unwrap();
        assert_eq!(config.url, "redis://flag");
        assert!(config.cluster);
        assert_eq!(config.retention, Duration::from_secs(3600));
        assert_eq!(global(None).store(&file).unwrap().url, "redis://file");
        let none = global(None).store(&FileConfig::default()).unwrap_err();
        assert!(none.starts_with("no Redis configured"), "{none}");
    }
}
