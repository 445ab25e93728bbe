//! `tether api`'s settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tether_api::ApiConfig;
use tether_store::StoreConfig;

use super::file::ApiFile;
use super::parse_duration;

#[derive(Args, Debug)]
pub(crate) struct ApiArgs {
    /// Address to listen on (default 127.0.0.1:9292).
    #[arg(long, env = "TETHER_API_LISTEN")]
    listen: Option<SocketAddr>,
    /// Tokens file: [[tokens]] entries with token, owner, role (default: none; required unless --insecure-no-auth).
    #[arg(long, env = "TETHER_API_TOKENS")]
    tokens: Option<PathBuf>,
    /// Accept every request as an admin. For local demos only.
    #[arg(long)]
    insecure_no_auth: bool,
    /// Registered task types (comma-separated); others are refused at create (default: any type).
    #[arg(long, env = "TETHER_JOB_TYPES", value_delimiter = ',')]
    job_types: Vec<String>,
    /// Largest request body in bytes (default 1 MiB).
    #[arg(long, env = "TETHER_API_BODY_LIMIT")]
    body_limit: Option<usize>,
    /// Latest start a task may ask for, from now (default 30d); later is a 403 (BeyondHorizon).
    #[arg(long, env = "TETHER_API_HORIZON", value_parser = parse_duration)]
    horizon: Option<Duration>,
    /// Unfinished tasks one owner may have in one queue (default 10000; 0: no limit); more is a 429.
    #[arg(long, env = "TETHER_API_MAX_PENDING_PER_OWNER")]
    max_pending_per_owner: Option<u64>,
    /// The only queues tasks may be created in (comma-separated; default: any valid name).
    #[arg(long, env = "TETHER_API_ALLOWED_QUEUES", value_delimiter = ',')]
    allowed_queues: Vec<String>,
    /// Forget registered queues that are empty and had no enqueue for this long (default 24h; 0s: never).
    #[arg(long, env = "TETHER_API_FORGET_IDLE_QUEUES", value_parser = parse_duration)]
    forget_idle_queues: Option<Duration>,
    /// The URL clients reach the API at; links in answers start with it
    /// (default: the request's Host header when it is a plain host[:port]).
    #[arg(long, env = "TETHER_API_PUBLIC_URL")]
    public_url: Option<String>,
    /// Serve /metrics (and /healthz) on this address instead of the API port (default: the API port).
    #[arg(long, env = "TETHER_API_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Close a connection that has not sent a request's headers within this, and answer 408 to a body not received whole within this of its headers (default 30s).
    #[arg(long, env = "TETHER_API_HEADER_READ_TIMEOUT", value_parser = parse_duration)]
    header_read_timeout: Option<Duration>,
    /// Close a connection on which nothing moved for this long (default 60s).
    #[arg(long, env = "TETHER_API_IDLE_TIMEOUT", value_parser = parse_duration)]
    idle_timeout: Option<Duration>,
    /// Most event streams open at once (default 1000); more get 429.
    #[arg(long, env = "TETHER_API_MAX_EVENT_STREAMS")]
    max_event_streams: Option<usize>,
    /// Most event streams one caller may hold open (default 20); more get 429.
    #[arg(long, env = "TETHER_API_MAX_EVENT_STREAMS_PER_CALLER")]
    max_event_streams_per_caller: Option<usize>,
}

/// The API server's merged settings.
#[derive(Debug)]
pub(crate) struct ApiSettings {
    pub config: ApiConfig,
    pub listen: SocketAddr,
    /// Forget registered queues idle this long (zero: never).
    pub forget_idle_queues: Duration,
}

fn positive(name: &str, d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        Err(format!("{name} must be above zero"))
    } else {
        Ok(d)
    }
}

fn at_least_one(name: &str, n: usize) -> Result<usize, String> {
    if n == 0 {
        Err(format!("{name} must be at least 1"))
    } else {
        Ok(n)
    }
}

/// Unfinished jobs one owner may have in one queue unless configured: the API's and the
/// workers' default.
pub(crate) const DEFAULT_MAX_PENDING_PER_OWNER: u64 = 10_000;

impl ApiArgs {
    /// The store settings the API sets on `store`: the horizon and the per-owner
    /// quota of unfinished jobs (10,000 by default), each flag over `file`'s key.
    pub(crate) fn store(&self, file: &ApiFile, store: &mut StoreConfig) {
        if let Some(h) = self.horizon.or(file.horizon) {
            store.horizon = h;
        }
        store.max_pending_per_owner = self
            .max_pending_per_owner
            .or(file.max_pending_per_owner)
            .unwrap_or(DEFAULT_MAX_PENDING_PER_OWNER);
    }

    /// Each flag over `file`'s key over [`ApiConfig::default`]; reads the tokens file.
    pub(crate) fn settings(self, file: &ApiFile) -> Result<ApiSettings, String> {
        let allowed_queues = if !self.allowed_queues.is_empty() {
            Some(self.allowed_queues)
        } else {
            file.allowed_queues.clone()
        };
        let forget_idle_queues = self
            .forget_idle_queues
            .or(file.forget_idle_queues)
            .unwrap_or(Duration::from_secs(24 * 3600));
        let auth = if self.insecure_no_auth {
            tether_api::Auth::Disabled
        } else {
            let path = self.tokens.or(file.tokens.clone()).ok_or(
                "no tokens file: pass --tokens FILE (or TETHER_API_TOKENS, or [api] tokens), or --insecure-no-auth for a local demo",
            )?;
            tether_api::Auth::from_file(&path)?
        };
        let job_types = if !self.job_types.is_empty() {
            Some(self.job_types)
        } else {
            file.job_types.clone()
        };
        let defaults = ApiConfig::default();
        let public_url = self.public_url.or(file.public_url.clone());
        if let Some(url) = &public_url
            && !tether_api::glance::is_valid_public_url(url)
        {
            return Err(format!(
                "invalid public URL {url:?}: expected http(s)://host[:port][/path]"
            ));
        }
        let config = ApiConfig {
            auth,
            job_types,
            body_limit: self
                .body_limit
                .or(file.body_limit)
                .unwrap_or(defaults.body_limit),
            allowed_queues,
            public_url,
            metrics_addr: self.metrics_addr.or(file.metrics_addr),
            header_read_timeout: positive(
                "header_read_timeout",
                self.header_read_timeout
                    .or(file.header_read_timeout)
                    .unwrap_or(defaults.header_read_timeout),
            )?,
            idle_timeout: positive(
                "idle_timeout",
                self.idle_timeout
                    .or(file.idle_timeout)
                    .unwrap_or(defaults.idle_timeout),
            )?,
            max_event_streams: at_least_one(
                "max_event_streams",
                self.max_event_streams
                    .or(file.max_event_streams)
                    .unwrap_or(defaults.max_event_streams),
            )?,
            max_event_streams_per_caller: at_least_one(
                "max_event_streams_per_caller",
                self.max_event_streams_per_caller
                    .or(file.max_event_streams_per_caller)
                    .unwrap_or(defaults.max_event_streams_per_caller),
            )?,
            ..defaults
        };
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:9292".parse().expect("address"));
        Ok(ApiSettings {
            config,
            listen,
            forget_idle_queues,
        })
    }
}
