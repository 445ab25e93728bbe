//! `tether`: run workers and manage jobs from the command line.
//!
//! Every setting is a flag, a `TETHER_…` environment variable and a key in
//! `config/tether.toml`, in that order of precedence. Read commands take
//! `--json` for machine-readable output.

mod bench;
mod demo;
mod output;
mod schedule;
mod settings;
mod signal;
mod soak;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use tether_producer::{JobId, JobSpec, ListQuery, Producer, RetryPolicy, SortDir, SortKey, Status};
use tether_store::{Store, StoreConfig};
use tether_worker::{Worker, WorkerConfig};

use settings::parse_duration;

#[derive(Parser, Debug)]
#[command(name = "tether", version, about = "Durable job queue workers on Redis")]
struct Cli {
    /// Redis URL (redis:// or rediss://); comma-separated URLs are Redis Cluster seeds.
    #[arg(
        long = "redis",
        env = "TETHER_REDIS_URL",
        global = true,
        hide_env_values = true
    )]
    redis_url: Option<String>,
    /// Use the Redis Cluster client even with a single seed URL.
    #[arg(long, env = "TETHER_CLUSTER", global = true)]
    cluster: bool,
    /// Config file (default: config/tether.toml when present).
    #[arg(long, env = "TETHER_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `tether_worker=debug`.
    #[arg(long, env = "TETHER_LOG", global = true)]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a worker with the demo handler set until SIGTERM/SIGINT.
    Worker(WorkerArgs),
    /// Serve the REST API (Glance v2 Tasks compatible).
    Api(ApiArgs),
    /// Measure throughput, latency and cost per job (starts a private Redis unless --redis is given).
    Bench {
        /// A run of under a minute with smaller sizes (for CI).
        #[arg(long)]
        quick: bool,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Instead: noop throughput on a local 3-master Redis Cluster vs one Redis
        /// (3 queues, one worker process each).
        #[arg(long)]
        cluster: bool,
        /// Instead: a soak — the mixed demo workload at a steady rate for this long
        /// (e.g. 10m) with 2 worker processes; per-minute figures, then the memory
        /// slope, lost jobs and the consistency check.
        #[arg(long, value_parser = parse_duration, conflicts_with_all = ["quick", "cluster"])]
        soak: Option<Duration>,
        /// Soak enqueue rate in jobs/s (default: half the measured processing rate).
        #[arg(long, requires = "soak")]
        rate: Option<f64>,
    },
    /// Run a local cluster with sample jobs, live: a private Redis unless --redis is given,
    /// the API, two workers.
    Demo {
        /// Stop after this long (default: at Ctrl-C).
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Print the final summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Enqueue jobs; prints one job id per line.
    Enqueue(EnqueueArgs),
    /// Show one job.
    Get {
        id: JobId,
        #[arg(long)]
        json: bool,
    },
    /// List jobs, newest first.
    List(ListArgs),
    /// Cancel a job (pending: at once; running: at its worker's next heartbeat).
    Cancel {
        id: JobId,
        /// Also a job created with `cancelable: false`.
        #[arg(long)]
        force: bool,
    },
    /// Re-queue a dead job.
    Retry { id: JobId },
    /// Set a job's name and/or description.
    Label {
        id: JobId,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Follow a job with a progress bar until it finishes.
    Watch {
        id: JobId,
        /// Print each event as a JSON line instead.
        #[arg(long)]
        json: bool,
    },
    /// Job counts per queue.
    Stats {
        #[arg(long = "queue")]
        queues: Vec<String>,
        #[arg(long)]
        json: bool,
        /// Refresh every second, with throughput.
        #[arg(long)]
        watch: bool,
    },
    /// Check that each queue's records, stream, indexes and counters agree (read-only;
    /// walks every retained job in bounded steps, each well under 10 ms of Redis time,
    /// so it does not block a busy queue). Exits 1 when anything disagrees.
    Check {
        #[arg(long = "queue")]
        queues: Vec<String>,
    },
    /// Schedules: jobs fired on a cron pattern or at an interval.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
    /// Live workers and their jobs.
    Workers {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
struct WorkerArgs {
    /// Queue to serve (repeatable; default: `default`).
    #[arg(long = "queue", env = "TETHER_QUEUES", value_delimiter = ',')]
    queues: Vec<String>,
    #[arg(long, env = "TETHER_CONCURRENCY")]
    concurrency: Option<usize>,
    #[arg(long, env = "TETHER_LEASE_TTL", value_parser = parse_duration)]
    lease_ttl: Option<Duration>,
    #[arg(long, env = "TETHER_HEARTBEAT", value_parser = parse_duration)]
    heartbeat: Option<Duration>,
    #[arg(long, env = "TETHER_REAP_INTERVAL", value_parser = parse_duration)]
    reap_interval: Option<Duration>,
    #[arg(long, env = "TETHER_SHUTDOWN_GRACE", value_parser = parse_duration)]
    shutdown_grace: Option<Duration>,
    #[arg(long, env = "TETHER_CLAIM_BATCH")]
    claim_batch: Option<usize>,
    /// Serve /metrics and /healthz here, e.g. 127.0.0.1:9464.
    #[arg(long, env = "TETHER_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Worker id (default: host-pid-random).
    #[arg(long, env = "TETHER_WORKER_ID")]
    id: Option<String>,
    /// Where the demo jobs `touch` and `import` write their visible side effects
    /// (default: the Tether Redis). A separate Redis keeps them when Tether's is lost.
    #[arg(long, env = "TETHER_LEDGER_URL", hide_env_values = true)]
    ledger: Option<String>,
}

#[derive(Args, Debug)]
struct ApiArgs {
    /// Address to listen on (default 127.0.0.1:9292).
    #[arg(long, env = "TETHER_API_LISTEN")]
    listen: Option<SocketAddr>,
    /// Tokens file: [[tokens]] entries with token, owner, role.
    #[arg(long, env = "TETHER_API_TOKENS")]
    tokens: Option<PathBuf>,
    /// Accept every request as an admin. For local demos only.
    #[arg(long)]
    insecure_no_auth: bool,
    /// Registered task types (comma-separated); others are refused at create.
    #[arg(long, env = "TETHER_JOB_TYPES", value_delimiter = ',')]
    job_types: Vec<String>,
    /// Largest request body in bytes (default 1 MiB).
    #[arg(long, env = "TETHER_API_BODY_LIMIT")]
    body_limit: Option<usize>,
    /// Latest start a task may ask for, from now (default 30d); later is a 400.
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
    /// Serve /metrics (and /healthz) on this address instead of the API port.
    #[arg(long, env = "TETHER_API_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Close a connection that has not sent a request's headers within this (default 30s).
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

#[derive(Args, Debug)]
struct EnqueueArgs {
    #[arg(long, default_value = "default")]
    queue: String,
    #[arg(long = "type")]
    job_type: String,
    /// Input as JSON.
    #[arg(long, default_value = "null")]
    input: String,
    /// Enqueue this many copies (pipelined; at least 1).
    #[arg(long, default_value_t = 1)]
    count: usize,
    #[arg(long, value_parser = parse_duration)]
    delay: Option<Duration>,
    /// RFC 3339 time to run at.
    #[arg(long)]
    run_at: Option<chrono::DateTime<chrono::Utc>>,
    #[arg(long)]
    max_attempts: Option<u32>,
    /// First retry delay (doubling, capped at 5 min).
    #[arg(long, value_parser = parse_duration)]
    backoff: Option<Duration>,
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    #[arg(long)]
    idempotency_key: Option<String>,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    owner: Option<String>,
    #[arg(long)]
    not_cancelable: bool,
}

#[derive(Args, Debug)]
struct ListArgs {
    #[arg(long = "queue")]
    queues: Vec<String>,
    #[arg(long)]
    status: Option<Status>,
    #[arg(long = "type")]
    job_type: Option<String>,
    #[arg(long)]
    owner: Option<String>,
    /// Only dead jobs (failed, attempts exhausted).
    #[arg(long)]
    dead: bool,
    #[arg(long, default_value_t = 25)]
    limit: usize,
    #[arg(long)]
    marker: Option<JobId>,
    #[arg(long, value_enum, default_value = "created-at")]
    sort_key: SortKeyArg,
    #[arg(long, value_enum, default_value = "desc")]
    sort_dir: SortDirArg,
    #[arg(long)]
    json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum SortKeyArg {
    CreatedAt,
    UpdatedAt,
    Status,
    Type,
    Id,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum SortDirArg {
    Asc,
    Desc,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Worker(_) | Command::Api(_) => "info",
        Command::Demo { .. } => "error",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            cli.log.as_deref().unwrap_or(default_log),
        ))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

type CliResult = Result<(), String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

async fn run(cli: Cli) -> CliResult {
    if let Command::Bench {
        quick,
        json,
        cluster,
        soak,
        rate,
    } = cli.command
    {
        if let Some(duration) = soak {
            let options = soak::SoakOptions {
                duration,
                rate,
                json,
            };
            return soak::command(options, cli.redis_url.clone()).await;
        }
        let figures = match (cluster, quick) {
            (true, _) => bench::run_cluster(if quick { 2_000 } else { 20_000 }).await?,
            (false, true) => bench::run(bench::Plan::quick(), cli.redis_url.clone()).await?,
            (false, false) => bench::run(bench::Plan::full(), cli.redis_url.clone()).await?,
        };
        if json {
            println!("{figures}");
        } else if cluster {
            print!("{}", bench::cluster_table(&figures));
        } else {
            print!("{}", bench::table(&figures));
        }
        return if figures["verified"] == true {
            Ok(())
        } else {
            Err("a run's outcome count did not match".into())
        };
    }
    if let Command::Demo { duration, json } = cli.command {
        let file = settings::load(cli.config.as_deref())?;
        let url = cli.redis_url.clone().or(file.redis_url);
        demo::run(demo::DemoOptions { duration, json }, url).await?;
        return Ok(());
    }
    let file = settings::load(cli.config.as_deref())?;
    let url = cli
        .redis_url
        .clone()
        .or(file.redis_url.clone())
        .ok_or("no Redis configured: pass --redis URL, set TETHER_REDIS_URL, or set redis_url in config/tether.toml")?;
    let mut store_config = StoreConfig::new(url.clone());
    store_config.cluster = cli.cluster || file.cluster.unwrap_or(false);
    if let Some(r) = file.store.retention {
        store_config.retention = r;
    }
    if let Some(t) = file.store.response_timeout {
        store_config.response_timeout = t;
    }
    if let Some(m) = file.store.max_payload_bytes {
        store_config.max_payload_bytes = m;
    }
    if let Some(n) = file.store.min_replicas {
        store_config.min_replicas = n;
    }
    if let Some(t) = file.store.replication_timeout {
        store_config.replication_timeout = t;
    }
    if let Some(h) = file.store.horizon {
        store_config.horizon = h;
    }
    let connect = || async {
        Store::connect(store_config.clone()).await.map_err(|e| {
            format!(
                "cannot connect to Redis at {}: {e}",
                tether_store::redact(&url)
            )
        })
    };
    match cli.command {
        Command::Worker(args) => run_worker(args, &file.worker, store_config.clone(), &url).await,
        Command::Api(args) => run_api(args, &file.api, store_config, &url).await,
        command => {
            let producer = Producer::from_store(connect().await?);
            run_client(command, producer).await
        }
    }
}

async fn run_worker(
    args: WorkerArgs,
    file: &settings::WorkerFile,
    store_config: StoreConfig,
    url: &str,
) -> CliResult {
    let defaults = WorkerConfig::default();
    let queues = if !args.queues.is_empty() {
        args.queues
    } else {
        file.queues.clone().unwrap_or(defaults.queues)
    };
    let config = WorkerConfig {
        queues,
        concurrency: args
            .concurrency
            .or(file.concurrency)
            .unwrap_or(defaults.concurrency),
        lease_ttl: args
            .lease_ttl
            .or(file.lease_ttl)
            .unwrap_or(defaults.lease_ttl),
        heartbeat: args.heartbeat.or(file.heartbeat),
        reap_interval: args
            .reap_interval
            .or(file.reap_interval)
            .unwrap_or(defaults.reap_interval),
        shutdown_grace: args
            .shutdown_grace
            .or(file.shutdown_grace)
            .unwrap_or(defaults.shutdown_grace),
        claim_batch: args
            .claim_batch
            .or(file.claim_batch)
            .unwrap_or(defaults.claim_batch),
        max_payload_bytes: store_config.max_payload_bytes,
        metrics_addr: args.metrics_addr.or(file.metrics_addr),
        id: args.id,
    };
    let ledger = args.ledger.unwrap_or_else(|| url.to_owned());
    // Workers start even while Redis is down, and connect when it comes up.
    let store = loop {
        match Store::connect(store_config.clone()).await {
            Ok(store) => break store,
            Err(e) => {
                tracing::warn!(redis = %tether_store::redact(url), error = %e, "Redis unreachable; retrying in 1s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                }
            }
        }
    };
    let builder = Worker::builder(store).config(config);
    let worker = tether_demo_handlers::register(builder, &ledger)
        .build()
        .map_err(err)?;
    let shutdown =
        signal::shutdown_on_signal("shutdown signal received: no new jobs; finishing running ones");
    worker.run(shutdown).await.map_err(err)
}

async fn run_api(
    args: ApiArgs,
    file: &settings::ApiFile,
    mut store_config: StoreConfig,
    url: &str,
) -> CliResult {
    if let Some(h) = args.horizon.or(file.horizon) {
        store_config.horizon = h;
    }
    store_config.max_pending_per_owner = args
        .max_pending_per_owner
        .or(file.max_pending_per_owner)
        .unwrap_or(10_000);
    let store = Store::connect(store_config).await.map_err(|e| {
        format!(
            "cannot connect to Redis at {}: {e}",
            tether_store::redact(url)
        )
    })?;
    let producer = Producer::from_store(store.clone());
    let allowed_queues = if !args.allowed_queues.is_empty() {
        Some(args.allowed_queues)
    } else {
        file.allowed_queues.clone()
    };
    let idle = args
        .forget_idle_queues
        .or(file.forget_idle_queues)
        .unwrap_or(Duration::from_secs(24 * 3600));
    let shutdown = signal::shutdown_on_signal("shutdown signal received");
    if !idle.is_zero() {
        tokio::spawn(forget_idle_queues(store, idle, shutdown.clone()));
    }
    let auth = if args.insecure_no_auth {
        tether_api::Auth::Disabled
    } else {
        let path = args.tokens.or(file.tokens.clone()).ok_or(
            "no tokens file: pass --tokens FILE (or TETHER_API_TOKENS, or [api] tokens), or --insecure-no-auth for a local demo",
        )?;
        tether_api::Auth::from_file(&path)?
    };
    let job_types = if !args.job_types.is_empty() {
        Some(args.job_types)
    } else {
        file.job_types.clone()
    };
    let defaults = tether_api::ApiConfig::default();
    let public_url = args.public_url.or(file.public_url.clone());
    if let Some(url) = &public_url
        && !tether_api::glance::is_valid_public_url(url)
    {
        return Err(format!(
            "invalid public URL {url:?}: expected http(s)://host[:port][/path]"
        ));
    }
    let positive = |name: &str, d: Duration| {
        if d.is_zero() {
            Err(format!("{name} must be above zero"))
        } else {
            Ok(d)
        }
    };
    let at_least_one = |name: &str, n: usize| {
        if n == 0 {
            Err(format!("{name} must be at least 1"))
        } else {
            Ok(n)
        }
    };
    let config = tether_api::ApiConfig {
        auth,
        job_types,
        body_limit: args
            .body_limit
            .or(file.body_limit)
            .unwrap_or(defaults.body_limit),
        allowed_queues,
        public_url,
        metrics_addr: args.metrics_addr.or(file.metrics_addr),
        header_read_timeout: positive(
            "header_read_timeout",
            args.header_read_timeout
                .or(file.header_read_timeout)
                .unwrap_or(defaults.header_read_timeout),
        )?,
        idle_timeout: positive(
            "idle_timeout",
            args.idle_timeout
                .or(file.idle_timeout)
                .unwrap_or(defaults.idle_timeout),
        )?,
        max_event_streams: at_least_one(
            "max_event_streams",
            args.max_event_streams
                .or(file.max_event_streams)
                .unwrap_or(defaults.max_event_streams),
        )?,
        max_event_streams_per_caller: at_least_one(
            "max_event_streams_per_caller",
            args.max_event_streams_per_caller
                .or(file.max_event_streams_per_caller)
                .unwrap_or(defaults.max_event_streams_per_caller),
        )?,
        ..defaults
    };
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:9292".parse().expect("address"));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    tether_api::serve(listener, producer, config, shutdown)
        .await
        .map_err(err)
}

/// Every few minutes, drops queues that are empty and unused from the registry, so junk
/// queue names do not slow every unfiltered list for ever.
async fn forget_idle_queues(
    store: Store,
    idle: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let every = (idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(300));
    loop {
        tokio::select! { _ = tokio::time::sleep(every) => {}, _ = stop.cancelled() => return }
        match store.forget_idle_queues(idle).await {
            Ok(gone) if !gone.is_empty() => tracing::info!(queues = ?gone, "forgot idle queues"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "forgetting idle queues failed"),
        }
    }
}

async fn run_client(command: Command, producer: Producer) -> CliResult {
    match command {
        Command::Worker(_) | Command::Api(_) | Command::Bench { .. } | Command::Demo { .. } => {
            unreachable!("handled by run")
        }
        Command::Enqueue(args) => enqueue(args, &producer).await,
        Command::Schedule(command) => schedule::command(command, &producer).await,
        Command::Get { id, json } => {
            let job = producer
                .get(id)
                .await
                .map_err(err)?
                .ok_or_else(|| format!("no job {id}"))?;
            output::job(&job, json);
            Ok(())
        }
        Command::List(args) => {
            let query = ListQuery {
                queues: args.queues,
                status: args.status,
                job_type: args.job_type,
                owner: args.owner,
                dead_only: args.dead,
                priority: None,
                group: None,
                sort_key: match args.sort_key {
                    SortKeyArg::CreatedAt => SortKey::CreatedAt,
                    SortKeyArg::UpdatedAt => SortKey::UpdatedAt,
                    SortKeyArg::Status => SortKey::Status,
                    SortKeyArg::Type => SortKey::Type,
                    SortKeyArg::Id => SortKey::Id,
                },
                sort_dir: match args.sort_dir {
                    SortDirArg::Asc => SortDir::Asc,
                    SortDirArg::Desc => SortDir::Desc,
                },
                limit: args.limit.clamp(1, 1000),
                marker: args.marker,
            };
            let page = producer.list(query).await.map_err(err)?;
            output::page(&page, args.json);
            Ok(())
        }
        Command::Cancel { id, force } => {
            let outcome = if force {
                producer.force_cancel(id).await
            } else {
                producer.cancel(id).await
            }
            .map_err(err)?;
            println!(
                "{id}: {}",
                match outcome {
                    tether_producer::CancelOutcome::Cancelled => "cancelled",
                    tether_producer::CancelOutcome::Requested =>
                        "cancel requested; the worker stops it at its next heartbeat",
                    _ => "cancel accepted",
                }
            );
            Ok(())
        }
        Command::Retry { id } => {
            producer.retry(id).await.map_err(err)?;
            println!("{id}: re-queued");
            Ok(())
        }
        Command::Label {
            id,
            name,
            description,
        } => {
            if let Some(name) = name {
                producer.set_name(id, &name).await.map_err(err)?;
            }
            if let Some(desc) = description {
                producer.set_description(id, &desc).await.map_err(err)?;
            }
            Ok(())
        }
        Command::Watch { id, json } => watch(id, json, &producer).await,
        Command::Stats {
            queues,
            json,
            watch,
        } => output::stats(&producer, &queues, json, watch).await,
        Command::Check { queues } => {
            let queues = if queues.is_empty() {
                producer.queues().await.map_err(err)?
            } else {
                queues
            };
            let mut problems = 0;
            for queue in &queues {
                let found = producer.check_consistency(queue).await.map_err(err)?;
                println!(
                    "{queue}: {}",
                    if found.is_empty() {
                        "consistent".to_owned()
                    } else {
                        format!("{} problems", found.len())
                    }
                );
                for p in &found {
                    println!("  {p}");
                }
                problems += found.len();
            }
            if problems > 0 {
                Err(format!("{problems} problems found"))
            } else {
                Ok(())
            }
        }
        Command::Workers { json } => {
            let workers = producer.workers().await.map_err(err)?;
            output::workers(&workers, json);
            Ok(())
        }
    }
}

async fn enqueue(args: EnqueueArgs, producer: &Producer) -> CliResult {
    if args.count == 0 {
        return Err("--count must be at least 1".into());
    }
    let input: serde_json::Value =
        serde_json::from_str(&args.input).map_err(|e| format!("--input is not valid JSON: {e}"))?;
    let mut spec = JobSpec::new(args.job_type)
        .queue(args.queue)
        .input_json(input)
        .cancelable(!args.not_cancelable);
    if let Some(d) = args.delay {
        spec = spec.delay(d);
    }
    if let Some(t) = args.run_at {
        spec = spec.run_at(t);
    }
    if let Some(n) = args.max_attempts {
        spec = spec.max_attempts(n);
    }
    if let Some(b) = args.backoff {
        spec = spec.backoff(RetryPolicy {
            initial_ms: b.as_millis() as u64,
            ..RetryPolicy::default()
        });
    }
    if let Some(t) = args.timeout {
        spec = spec.timeout(t);
    }
    if let Some(k) = args.idempotency_key {
        spec = spec.idempotency_key(k);
    }
    if let Some(n) = args.name {
        spec = spec.name(n);
    }
    if let Some(o) = args.owner {
        spec = spec.owner(o);
    }
    spec.validate().map_err(err)?;
    if args.count <= 1 {
        println!("{}", producer.enqueue(spec).await.map_err(err)?);
        return Ok(());
    }
    let bar = output::progress_bar(args.count as u64, "enqueue");
    let mut out = String::new();
    for chunk_start in (0..args.count).step_by(5_000) {
        let n = (args.count - chunk_start).min(5_000);
        let ids = producer
            .enqueue_many(vec![spec.clone(); n])
            .await
            .map_err(err)?;
        for id in ids {
            out.push_str(&id.to_string());
            out.push('\n');
        }
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    print!("{out}");
    Ok(())
}

async fn watch(id: JobId, json: bool, producer: &Producer) -> CliResult {
    let mut events = std::pin::pin!(producer.watch(id).await.map_err(err)?);
    let bar = (!json).then(|| output::job_bar(id));
    let mut last = None;
    while let Some(event) = events.next().await {
        let event = event.map_err(err)?;
        if json {
            println!(
                "{}",
                serde_json::json!({ "event": event.name(), "job": event.job() })
            );
        } else if let Some(bar) = &bar {
            output::update_job_bar(bar, event.job());
        }
        last = Some(event.job().clone());
    }
    if let (Some(bar), Some(job)) = (bar, last) {
        bar.finish_and_clear();
        output::job(&job, false);
        if job.status != Status::Success {
            return Err(format!("job {id} ended {}", job.status));
        }
    }
    Ok(())
}
