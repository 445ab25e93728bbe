//! Helpers shared by the end-to-end suites.

pub mod chaos;

use std::process::{Command, Stdio};
use std::time::Duration;

use tether_producer::{Job, JobId, Producer, Status};
use tether_store::{Store, StoreConfig};
use tether_testkit::{ChildGuard, spawn_serving, tether_bin};
use tether_worker::{CancellationToken, Worker, WorkerBuilder};

pub use tether_testkit::{
    RedisEndpoint, RedisOptions, Topology, eventually, eventually_blocking, poll, poll_blocking,
};

pub async fn store(redis: &impl RedisEndpoint) -> Store {
    Store::connect(StoreConfig::new(redis.url()))
        .await
        .expect("connect")
}

pub async fn producer(redis: &impl RedisEndpoint) -> Producer {
    Producer::from_store(store(redis).await)
}

/// A worker running in this process with the demo handlers plus whatever `extra` adds.
#[derive(Debug)]
pub struct InProcessWorker {
    pub stop: CancellationToken,
    pub handle: tokio::task::JoinHandle<()>,
    pub metrics: tether_worker::metrics::Metrics,
}

impl InProcessWorker {
    pub async fn start(
        redis: &impl RedisEndpoint,
        configure: impl FnOnce(WorkerBuilder) -> WorkerBuilder,
    ) -> Self {
        let builder = Worker::builder(store(redis).await)
            .lease_ttl(Duration::from_secs(5))
            .reap_interval(Duration::from_millis(300))
            .shutdown_grace(Duration::from_secs(5));
        let builder = tether_demo_handlers::register(builder, &redis.url());
        let worker = configure(builder).build().expect("worker config");
        let metrics = worker.metrics().clone();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let handle = tokio::spawn(async move { worker.run(token).await.expect("worker run") });
        InProcessWorker {
            stop,
            handle,
            metrics,
        }
    }

    /// Graceful shutdown; waits for it.
    pub async fn shutdown(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("worker stops")
            .expect("worker task");
    }
}

/// A `tether worker` process.
#[derive(Debug)]
pub struct WorkerProcess {
    pub child: ChildGuard,
    pub metrics_port: u16,
}

impl WorkerProcess {
    /// Starts a worker and returns once it serves its metrics port. A port that another
    /// test took between choosing and binding it makes the worker exit: it is retried
    /// on another port.
    pub fn start(redis: &impl RedisEndpoint, args: &[&str]) -> WorkerProcess {
        WorkerProcess::start_with_env(redis, args, &[])
    }

    /// [`start`](Self::start) with these environment variables set.
    pub fn start_with_env(
        redis: &impl RedisEndpoint,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> WorkerProcess {
        let (child, metrics_port) = start_serving("worker", |port| {
            let mut cmd = Command::new(tether_bin());
            cmd.arg("worker")
                .args(["--redis", &redis.url()])
                .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
                .args(args)
                .env("TETHER_LOG", "warn")
                .envs(env.iter().copied());
            cmd
        });
        WorkerProcess {
            child,
            metrics_port,
        }
    }

    /// The value of a metric summed over its series, from the worker's /metrics.
    pub fn metric(&self, name: &str) -> f64 {
        metric_value(self.metrics_port, name)
    }
}

pub fn metric_value(port: u16, name: &str) -> f64 {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return f64::NAN;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until `id` is finished; panics after `timeout` with the job's last state.
pub async fn finished(producer: &Producer, id: JobId, timeout: Duration) -> Job {
    match producer.wait(id, timeout).await {
        Ok(job) => job,
        Err(e) => panic!(
            "job {id} did not finish within {timeout:?}: {e}; now {:#?}",
            producer.get(id).await
        ),
    }
}

/// Polls until `cond` holds for the job; returns it.
pub async fn until_job(
    producer: &Producer,
    id: JobId,
    timeout: Duration,
    cond: impl Fn(&Job) -> bool,
) -> Job {
    eventually(
        timeout,
        format!("job {id} never reached the condition"),
        async || {
            let job = producer.get(id).await.expect("get").expect("job exists");
            if cond(&job) {
                Ok(job)
            } else {
                Err(format!("{job:#?}"))
            }
        },
    )
    .await
}

/// Polls until every id has a final status; returns the jobs.
pub async fn all_finished(producer: &Producer, ids: &[JobId], timeout: Duration) -> Vec<Job> {
    let what = format!("not all {} jobs finished", ids.len());
    eventually(timeout, what, async || {
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            let job = producer
                .get(*id)
                .await
                .expect("get")
                .expect("acknowledged job exists");
            jobs.push(job);
        }
        match jobs.iter().filter(|j| !j.status.is_final()).count() {
            0 => Ok(jobs),
            open => Err(format!("{open} unfinished")),
        }
    })
    .await
}

pub fn count(jobs: &[Job], status: Status) -> usize {
    jobs.iter().filter(|j| j.status == status).count()
}

/// A minimal HTTP/1.1 request on loopback; returns (status, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Percent-encodes a form value.
pub fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A `tether api` process.
#[derive(Debug)]
pub struct ApiProcess {
    pub child: ChildGuard,
    pub port: u16,
}

impl ApiProcess {
    /// Starts `tether api` on a free port with `args` (auth flags, job types…) and returns
    /// once it accepts connections, retrying on another port if one was taken meanwhile.
    pub fn start(redis: &impl RedisEndpoint, args: &[&str]) -> ApiProcess {
        ApiProcess::start_with_env(redis, args, &[])
    }

    /// [`start`](Self::start) with these environment variables set.
    pub fn start_with_env(
        redis: &impl RedisEndpoint,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> ApiProcess {
        let (child, port) = start_serving("api", |port| {
            let mut cmd = Command::new(tether_bin());
            cmd.args([
                "api",
                "--redis",
                &redis.url(),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(args)
            .env("TETHER_LOG", "error")
            .envs(env.iter().copied());
            cmd
        });
        ApiProcess { child, port }
    }
}

/// `bin` of a Python package from PyPI, in the virtualenv `venv` (under `target/`,
/// the caller's `CARGO_TARGET_TMPDIR`), installed (as `requirement`, e.g.
/// `pkg==1.2`) unless `pip show` reports `version` already (any version when `None`).
pub fn python_tool(
    venv: &std::path::Path,
    requirement: &str,
    version: Option<&str>,
    bin: &str,
) -> std::path::PathBuf {
    let package = requirement.split("==").next().unwrap_or(requirement);
    let shown = Command::new(venv.join("bin/pip"))
        .args(["show", package])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let installed = shown.is_some_and(|text| {
        version.is_none_or(|v| text.lines().any(|l| l == format!("Version: {v}")))
    });
    if !installed {
        let ok = |out: std::process::Output, what: &str| {
            assert!(
                out.status.success(),
                "{what} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ok(
            Command::new("python3")
                .args(["-m", "venv"])
                .arg(venv)
                .output()
                .expect("python3"),
            "python3 -m venv",
        );
        ok(
            Command::new(venv.join("bin/pip"))
                .args(["install", "-q", requirement])
                .output()
                .expect("pip"),
            &format!("pip install {requirement}"),
        );
    }
    venv.join("bin").join(bin)
}

/// Spawns the `tether` process `command(port)` on a free port and returns once it
/// listens there (see [`spawn_serving`]).
fn start_serving(what: &str, command: impl Fn(u16) -> Command) -> (ChildGuard, u16) {
    spawn_serving(what, |port| {
        let mut cmd = command(port);
        cmd.env_remove("TETHER_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cmd
    })
}

/// Runs `tether ARGS --redis <redis>` to completion; asserts it succeeded and returns
/// what it printed.
pub fn tether(redis: &impl RedisEndpoint, args: &[&str]) -> String {
    let out = tether_output(redis, args);
    assert!(
        out.status.success(),
        "tether {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `tether ARGS --redis <redis>` to completion; whatever it did.
pub fn tether_output(redis: &impl RedisEndpoint, args: &[&str]) -> std::process::Output {
    Command::new(tether_bin())
        .args(args)
        .args(["--redis", &redis.url()])
        .env_remove("TETHER_CONFIG")
        .output()
        .expect("run tether")
}

/// Asserts that every queue's records, stream, indexes and counters agree.
pub async fn assert_consistent(redis: &impl RedisEndpoint) {
    let store = store(redis).await;
    for queue in store.queues().await.expect("queues") {
        let problems = store
            .check_consistency(&queue)
            .await
            .expect("consistency check");
        assert!(
            problems.is_empty(),
            "queue {queue} is inconsistent:\n{}",
            problems.join("\n")
        );
    }
}

/// Runs each test on both topologies, as `single::<name>` and `cluster::<name>`.
#[macro_export]
macro_rules! on_every_topology {
    ($($name:ident),* $(,)?) => {
        mod single {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Topology::Single).await
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Topology::Cluster).await
                }
            )*
        }
    };
}
