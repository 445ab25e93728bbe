//! The Redis a run measures against, and its statistics.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use tether_producer::Producer;
use tether_store::{Store, StoreConfig};
use tether_testkit::{RedisOptions, RedisServer};

use crate::figures::RedisCeiling;

/// A Redis to measure against, with a producer on it.
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) store: Store,
    pub(crate) producer: Producer,
    /// Set when a run recorded fewer successes than it enqueued.
    miscounted: AtomicBool,
    _server: Option<RedisServer>,
}

impl Target {
    /// The Redis at `url`, or a private `redis-server` (with AOF when `aof`).
    pub(crate) async fn start(url: Option<String>, aof: bool) -> Result<Target, String> {
        let (url, server) = match url {
            Some(url) => (url, None),
            None => {
                let server = RedisServer::start(RedisOptions {
                    aof,
                    ..Default::default()
                });
                (server.url(), Some(server))
            }
        };
        let store = Store::connect(StoreConfig::new(url.clone()))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Target {
            url,
            producer: Producer::from_store(store.clone()),
            store,
            miscounted: Default::default(),
            _server: server,
        })
    }

    /// Records that a run counted fewer successes than it enqueued.
    pub(crate) fn miscounted(&self) {
        self.miscounted.store(true, Ordering::Relaxed);
    }

    /// True when every run against this Redis counted all its outcomes as successes.
    pub(crate) fn verified(&self) -> bool {
        !self.miscounted.load(Ordering::Relaxed)
    }

    pub(crate) async fn info(&self) -> Result<ServerStats, String> {
        let mut all = self
            .store
            .server_info("all")
            .await
            .map_err(|e| e.to_string())?;
        let num = |all: &HashMap<String, String>, k: &str| {
            all.get(k)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let calls = all
            .iter()
            .filter(|(k, _)| k.starts_with("cmdstat_"))
            .filter_map(|(_, v)| {
                v.split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))
                    .and_then(|c| c.parse::<f64>().ok())
            })
            .sum();
        let stats = ServerStats {
            calls,
            cpu_s: num(&all, "used_cpu_user") + num(&all, "used_cpu_sys"),
            net_bytes: num(&all, "total_net_input_bytes") + num(&all, "total_net_output_bytes"),
            memory: num(&all, "used_memory"),
        };
        all.clear();
        Ok(stats)
    }

    /// `redis-benchmark` on the same server, as the machine's ceiling (when installed).
    pub(crate) fn ceiling(&self) -> RedisCeiling {
        let port = self
            .url
            .rsplit(':')
            .next()
            .unwrap_or("6379")
            .trim_end_matches('/');
        let run = |args: &[&str]| -> Option<f64> {
            let out = Command::new("redis-benchmark")
                .args(["-p", port, "-q", "-n", "100000"])
                .args(args)
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.split_whitespace()
                .zip(text.split_whitespace().skip(1))
                .find_map(|(n, w)| (w == "requests").then(|| n.parse().ok()).flatten())
        };
        RedisCeiling {
            set_per_s: run(&["-t", "set"]),
            set_pipelined_16_per_s: run(&["-t", "set", "-P", "16"]),
            xadd_per_s: run(&["XADD", "bench-ceiling", "*", "f", "v"]),
            xadd_pipelined_16_per_s: run(&["-P", "16", "XADD", "bench-ceiling", "*", "f", "v"]),
        }
    }
}

/// Redis's own counters, from `INFO all`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ServerStats {
    /// Commands, those inside scripts included.
    pub(crate) calls: f64,
    pub(crate) cpu_s: f64,
    pub(crate) net_bytes: f64,
    pub(crate) memory: f64,
}

impl std::ops::Sub for ServerStats {
    type Output = ServerStats;
    fn sub(self, o: ServerStats) -> ServerStats {
        ServerStats {
            calls: self.calls - o.calls,
            cpu_s: self.cpu_s - o.cpu_s,
            net_bytes: self.net_bytes - o.net_bytes,
            memory: self.memory - o.memory,
        }
    }
}
