//! `tether worker`'s settings.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use tether_worker::WorkerConfig;

use super::file::WorkerFile;
use super::parse_duration;

#[derive(Args, Debug)]
pub(crate) struct WorkerArgs {
    /// Queue to serve (repeatable; default: `default`).
    #[arg(long = "queue", env = "TETHER_QUEUES", value_delimiter = ',')]
    queues: Vec<String>,
    /// Jobs run at once across all queues, 1 to 10000 (default 16).
    #[arg(long, env = "TETHER_CONCURRENCY")]
    concurrency: Option<usize>,
    /// How long a claimed job stays leased without a renewal, a duration such as 30s (default 30s).
    #[arg(long, env = "TETHER_LEASE_TTL", value_parser = parse_duration)]
    lease_ttl: Option<Duration>,
    /// Lease renewal period, at most a third of --lease-ttl, a duration such as 10s (default: lease ttl / 3).
    #[arg(long, env = "TETHER_HEARTBEAT", value_parser = parse_duration)]
    heartbeat: Option<Duration>,
    /// How often to take back lapsed leases, expire old records and sample queue depths, a duration (default 5s).
    #[arg(long, env = "TETHER_REAP_INTERVAL", value_parser = parse_duration)]
    reap_interval: Option<Duration>,
    /// On SIGTERM, how long running jobs may finish before their leases are handed back, a duration (default 30s).
    #[arg(long, env = "TETHER_SHUTDOWN_GRACE", value_parser = parse_duration)]
    shutdown_grace: Option<Duration>,
    /// Most jobs leased by one claim call, 1 to 1000 (default 64).
    #[arg(long, env = "TETHER_CLAIM_BATCH")]
    claim_batch: Option<usize>,
    /// Serve /metrics and /healthz on this address, e.g. 127.0.0.1:9464 (default: not served).
    #[arg(long, env = "TETHER_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Unfinished jobs one owner may have in one queue, held for what this worker enqueues
    /// for an owner's job (children, a batch's `then`, schedule firings) as the API holds
    /// tasks to it (default: the config file's `[api] max_pending_per_owner`, else 10000;
    /// 0: no limit).
    #[arg(long, env = "TETHER_WORKER_MAX_PENDING_PER_OWNER")]
    pub(crate) max_pending_per_owner: Option<u64>,
    /// Worker id (default: host-pid-random).
    #[arg(long, env = "TETHER_WORKER_ID")]
    id: Option<String>,
    /// Where the demo jobs `touch` and `import` write their visible side effects
    /// (default: the Tether Redis). A separate Redis keeps them when Tether's is lost.
    #[arg(long, env = "TETHER_LEDGER_URL", hide_env_values = true)]
    ledger: Option<String>,
}

/// A worker process's merged settings.
#[derive(Debug)]
pub(crate) struct WorkerSettings {
    pub config: WorkerConfig,
    /// The Redis of the demo jobs' side effects.
    pub ledger: String,
}

impl WorkerArgs {
    /// Each flag over `file`'s key over [`WorkerConfig::default`]; the largest
    /// payload is the store's, the ledger by default the Tether Redis at `url`.
    pub(crate) fn settings(
        self,
        file: &WorkerFile,
        max_payload_bytes: usize,
        url: &str,
    ) -> WorkerSettings {
        let defaults = WorkerConfig::default();
        let queues = if !self.queues.is_empty() {
            self.queues
        } else {
            file.queues.clone().unwrap_or(defaults.queues)
        };
        let config = WorkerConfig {
            queues,
            concurrency: self
                .concurrency
                .or(file.concurrency)
                .unwrap_or(defaults.concurrency),
            lease_ttl: self
                .lease_ttl
                .or(file.lease_ttl)
                .unwrap_or(defaults.lease_ttl),
            heartbeat: self.heartbeat.or(file.heartbeat),
            reap_interval: self
                .reap_interval
                .or(file.reap_interval)
                .unwrap_or(defaults.reap_interval),
            shutdown_grace: self
                .shutdown_grace
                .or(file.shutdown_grace)
                .unwrap_or(defaults.shutdown_grace),
            claim_batch: self
                .claim_batch
                .or(file.claim_batch)
                .unwrap_or(defaults.claim_batch),
            max_payload_bytes,
            metrics_addr: self.metrics_addr.or(file.metrics_addr),
            id: self.id,
        };
        WorkerSettings {
            config,
            ledger: self.ledger.unwrap_or_else(|| url.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: WorkerArgs,
    }

    #[test]
    fn a_flag_beats_the_file_which_beats_the_default() {
        let file: WorkerFile =
            toml::from_str("concurrency = 7\nclaim_batch = 9\nqueues = [\"a\"]").unwrap();
        let args = Command::parse_from(["worker", "--concurrency", "3"]).args;
        let settings = args.settings(&file, 100, "redis://tether");
        assert_eq!(settings.config.concurrency, 3);
        assert_eq!(settings.config.claim_batch, 9);
        assert_eq!(settings.config.queues, ["a"]);
        assert_eq!(settings.config.lease_ttl, WorkerConfig::default().lease_ttl);
        assert_eq!(settings.config.max_payload_bytes, 100);
        assert_eq!(settings.ledger, "redis://tether");
    }
}
