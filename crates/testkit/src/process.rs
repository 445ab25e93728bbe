use std::path::PathBuf;
use std::process::{Child, Command};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::poll_blocking;

/// The `tether` binary built next to the running test executable.
///
/// Tests that run worker processes need `cargo build --bins` first, which the
/// README's test command (`scripts/test.sh`) does.
pub fn tether_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> → target/<profile>/tether
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let bin = profile_dir.join("tether");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bins` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A child process killed (SIGKILL) on drop, with signal helpers.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// Spawns `cmd`.
    pub fn spawn(mut cmd: Command) -> ChildGuard {
        ChildGuard {
            child: Some(cmd.spawn().expect("spawn child process")),
        }
    }

    /// The process id, or `None` once the process was killed and reaped.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// Sends `signal` to the process; nothing once it is gone (never to pid -1,
    /// which would mean every process this user may signal).
    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = self.pid() {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// `kill -9` and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit; returns the exit code if it exited.
    pub fn terminate(&mut self, timeout: std::time::Duration) -> Option<i32> {
        self.signal(Signal::SIGTERM);
        let exited = poll_blocking(timeout, || match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Ok(status),
            _ => Err(()),
        });
        let status = exited.ok()?;
        self.child = None;
        status.code()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.signal(Signal::SIGCONT);
        self.kill();
    }
}
