//! `tether worker` processes of the running executable.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::target::Target;

/// `tether worker` processes of this same binary, stopped (SIGTERM, then waited for)
/// when dropped.
pub(crate) struct Workers(Vec<Child>);

impl Workers {
    /// `count` workers of `queue` at `concurrency`, claiming up to that many jobs
    /// per call (at most 256).
    pub(crate) fn start(
        url: &str,
        queue: &str,
        count: usize,
        concurrency: usize,
    ) -> Result<Workers, String> {
        let concurrency_arg = concurrency.to_string();
        let claim_batch = concurrency.clamp(1, 256).to_string();
        Workers::start_with(
            url,
            count,
            &[
                "--queue",
                queue,
                "--concurrency",
                &concurrency_arg,
                "--claim-batch",
                &claim_batch,
            ],
        )
    }

    /// `count` workers on `url` with these `tether worker` arguments.
    pub(crate) fn start_with(url: &str, count: usize, args: &[&str]) -> Result<Workers, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut children = Vec::new();
        for _ in 0..count {
            let child = Command::new(&exe)
                .args(["worker", "--redis", url])
                .args(args)
                .args(["--log", "error"])
                .env_remove("TETHER_CONFIG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start a worker: {e}"))?;
            children.push(child);
        }
        Ok(Workers(children))
    }

    /// Resident memory of each worker now, MiB (from /proc).
    pub(crate) fn rss_mib(&self) -> Vec<f64> {
        self.0
            .iter()
            .map(|c| proc_status_kib(c.id(), "VmRSS:") / 1024.0)
            .collect()
    }

    /// Peak resident memory of the workers, MiB (from /proc).
    pub(crate) fn peak_rss_mib(&self) -> f64 {
        self.0
            .iter()
            .map(|c| proc_status_kib(c.id(), "VmHWM:"))
            .fold(0.0, f64::max)
            / 1024.0
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        for child in &mut self.0 {
            let _ = child.wait();
        }
    }
}

/// Proc status field `field` (kB) of process `pid`; 0 when unreadable.
fn proc_status_kib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(field)
                    .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            })
        })
        .unwrap_or(0.0)
}

/// Waits (up to 20 s) until `count` workers serving `queue` have registered.
pub(crate) async fn wait_for_workers(
    target: &Target,
    queue: &str,
    count: usize,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let workers = target.store.workers().await.map_err(|e| e.to_string())?;
        if workers
            .iter()
            .filter(|w| w.queues.iter().any(|q| q == queue))
            .count()
            >= count
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{count} workers did not register within 20 s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
