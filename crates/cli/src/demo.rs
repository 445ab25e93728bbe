//! `tether demo`: the whole system in one command — a private Redis (unless one
//! is configured), the API, two workers and a steady mix of sample jobs, shown live.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_producer::{JobSpec, ListQuery, Producer, RetryPolicy, Status};
use tether_store::{Store, StoreConfig};
use tether_testkit::{RedisOptions, RedisServer, free_port};
use tether_worker::{CancellationToken, Worker};

/// How long to run; `None` runs until Ctrl-C.
#[derive(Debug, Clone)]
pub(crate) struct DemoOptions {
    pub duration: Option<Duration>,
    pub json: bool,
}

const QUEUES: [&str; 2] = ["default", "images"];

/// One round of sample jobs: what a newcomer should see happen.
async fn enqueue_round(
    producer: &Producer,
    round: u64,
) -> Result<Vec<tether_producer::JobId>, String> {
    let fast_retry = RetryPolicy {
        initial_ms: 300,
        factor: 2.0,
        cap_ms: 2_000,
        jitter: 0.2,
    };
    let mut specs = vec![
        JobSpec::new("import")
            .queue("images")
            .input_json(json!({"size_mb": 20, "chunk_ms": 150}))
            .name(format!("image-{round}")),
        JobSpec::new("flaky")
            .input_json(json!({"fail_times": 2}))
            .backoff(fast_retry),
        JobSpec::new("sleep")
            .input_json(json!({"ms": 300}))
            .delay(Duration::from_secs(2)),
    ];
    specs.extend((0..20).map(|_| JobSpec::new("noop")));
    if round.is_multiple_of(3) {
        specs.push(JobSpec::new("fail").input_json(
            json!({"message": "corrupt image", "code": "CorruptImage", "fatal": true}),
        ));
    }
    let ids = producer
        .enqueue_many(specs)
        .await
        .map_err(|e| e.to_string())?;
    if round % 3 == 1 {
        // A long job, cancelled while it runs.
        let id = producer
            .enqueue(JobSpec::new("progress").input_json(json!({"steps": 100, "step_ms": 100})))
            .await
            .map_err(|e| e.to_string())?;
        let producer = producer.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let _ = producer.cancel(id).await;
        });
    }
    Ok(ids)
}

/// Final statuses by job type, over every queue.
async fn summary(producer: &Producer) -> Result<BTreeMap<String, BTreeMap<String, u64>>, String> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut marker = None;
    loop {
        let page = producer
            .list(ListQuery {
                limit: 1000,
                marker,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        for job in &page.jobs {
            *out.entry(job.job_type.clone())
                .or_default()
                .entry(job.status.as_str().to_owned())
                .or_default() += 1;
        }
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => return Ok(out),
        }
    }
}

fn line(stats: &[tether_producer::QueueStats]) -> String {
    stats
        .iter()
        .map(|s| {
            format!(
                "{}: {} pending, {} scheduled, {} running, {} ok, {} failed, {} cancelled",
                s.queue, s.pending, s.scheduled, s.processing, s.success, s.failure, s.cancelled
            )
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Runs the demo; returns the final summary.
pub(crate) async fn run(options: DemoOptions, url: Option<String>) -> Result<Value, String> {
    let interactive = std::io::stdout().is_terminal() && !options.json;
    let (url, redis) = match url {
        Some(url) => (url, None),
        None => {
            if std::process::Command::new("redis-server")
                .arg("--version")
                .output()
                .is_err()
            {
                return Err("redis-server not found: install it with `apt-get install -y redis-server`, or pass --redis URL".into());
            }
            let server = RedisServer::start(RedisOptions {
                aof: true,
                ..Default::default()
            });
            (server.url(), Some(server))
        }
    };
    let store = Store::connect(StoreConfig::new(url.clone()))
        .await
        .map_err(|e| e.to_string())?;
    let producer = Producer::from_store(store.clone());
    let stop = CancellationToken::new();

    let api_listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| e.to_string())?;
    let api_addr = api_listener.local_addr().map_err(|e| e.to_string())?;
    let api_config = tether_api::ApiConfig {
        auth: tether_api::Auth::Disabled,
        ..Default::default()
    };
    let api = tokio::spawn(tether_api::serve(
        api_listener,
        producer.clone(),
        api_config,
        stop.clone(),
    ));

    let mut workers = Vec::new();
    let mut metrics = Vec::new();
    for _ in 0..2 {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        metrics.push(addr);
        let builder = Worker::builder(store.clone())
            .queues(QUEUES)
            .concurrency(8)
            .lease_ttl(Duration::from_secs(5))
            .shutdown_grace(Duration::from_secs(5))
            .metrics_addr(addr);
        let worker = tether_demo_handlers::register(builder, &url)
            .build()
            .map_err(|e| e.to_string())?;
        workers.push(tokio::spawn(worker.run(stop.clone())));
    }

    // The URL may carry a password: it is never printed.
    let shown = tether_store::redact(&url);
    let where_redis = match &redis {
        Some(r) => format!("{shown} (private, data in {})", r.dir().display()),
        None => shown.clone(),
    };
    eprintln!("Redis:   {where_redis}");
    eprintln!("Console: http://{api_addr}/ui/   (queues, jobs, live progress, cancel, retry)");
    eprintln!(
        "API:     http://{api_addr}/v2/tasks   (no auth: local demo)   OpenAPI: http://{api_addr}/openapi.json"
    );
    eprintln!(
        "Metrics: {}",
        metrics
            .iter()
            .map(|a| format!("http://{a}/metrics"))
            .collect::<Vec<_>>()
            .join("  ")
    );
    // With a password the shown URL is not usable as is: point at the one given.
    let again = if shown == url {
        format!("--redis {url}")
    } else {
        "--redis <the URL given>".to_owned()
    };
    eprintln!("Try:     tether {again} list   |   tether {again} watch <id>");

    let bar = if interactive {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.enable_steady_tick(Duration::from_millis(120));
    let started = Instant::now();
    let deadline = options.duration.map(|d| started + d);
    let mut round = 0u64;
    let mut last_line = Instant::now() - Duration::from_secs(10);
    let interrupted = loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break false;
        }
        enqueue_round(&producer, round).await?;
        round += 1;
        let queues: Vec<String> = QUEUES.iter().map(|q| q.to_string()).collect();
        let stats = producer.stats(&queues).await.map_err(|e| e.to_string())?;
        let running = producer
            .list(ListQuery {
                status: Some(Status::Processing),
                limit: 5,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let progress: Vec<String> = running
            .jobs
            .iter()
            .filter(|j| j.job_type != "noop")
            .map(|j| format!("{} {}%", j.job_type, j.progress))
            .collect();
        if interactive {
            bar.set_message(format!(
                "{}   running: {}",
                line(&stats),
                progress.join(", ")
            ));
        } else if last_line.elapsed() >= Duration::from_secs(2) {
            eprintln!("{}", line(&stats));
            last_line = Instant::now();
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tokio::signal::ctrl_c() => break true,
        }
    };
    bar.finish_and_clear();

    // Let what was started finish (delayed jobs and retries included), then stop everything.
    if !interrupted {
        eprintln!("finishing the jobs in flight…");
        let drain_until = Instant::now() + Duration::from_secs(20);
        loop {
            let queues: Vec<String> = QUEUES.iter().map(|q| q.to_string()).collect();
            let stats = producer.stats(&queues).await.map_err(|e| e.to_string())?;
            if stats
                .iter()
                .all(|s| s.pending + s.scheduled + s.processing == 0)
                || Instant::now() > drain_until
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let by_type = summary(&producer).await?;
    stop.cancel();
    for worker in workers {
        let _ = worker.await;
    }
    let _ = api.await;
    drop(redis); // stops the private Redis and removes its directory
    let result = json!({ "rounds": round, "by_type": by_type });
    if options.json {
        println!("{result}");
    } else {
        println!(
            "{:<10} {:>8} {:>8} {:>10} {:>8}",
            "TYPE", "SUCCESS", "FAILURE", "CANCELLED", "OTHER"
        );
        for (t, counts) in &by_type {
            let get = |s: &str| counts.get(s).copied().unwrap_or(0);
            let other: u64 = counts
                .iter()
                .filter(|(s, _)| !["success", "failure", "cancelled"].contains(&s.as_str()))
                .map(|(_, n)| n)
                .sum();
            println!(
                "{t:<10} {:>8} {:>8} {:>10} {:>8}",
                get("success"),
                get("failure"),
                get("cancelled"),
                other
            );
        }
        eprintln!("demo stopped; the private Redis and its data are gone");
    }
    Ok(result)
}
