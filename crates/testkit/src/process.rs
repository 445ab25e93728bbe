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

    /// Whether this process (not another one that took the port) listens on
    /// `127.0.0.1:port`: a connection that succeeds proves only that someone does.
    pub fn listens_on(&self, port: u16) -> bool {
        self.pid()
            .is_some_and(|pid| pid_listens_on(pid as u32, port))
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

/// Spawns `command(port)` on a free port and returns once that process listens
/// there. A port that another test took between choosing and binding it makes the
/// process exit: it is tried again on another port. (A connection that succeeds
/// would not do as the test: it may reach the other test's process.)
pub fn spawn_serving(what: &str, command: impl Fn(u16) -> Command) -> (ChildGuard, u16) {
    spawn_serving_on(what, crate::free_port, command)
}

/// [`spawn_serving`] on the ports `next_port` hands out, in turn.
pub fn spawn_serving_on(
    what: &str,
    mut next_port: impl FnMut() -> u16,
    command: impl Fn(u16) -> Command,
) -> (ChildGuard, u16) {
    const ATTEMPTS: usize = 5;
    for _ in 0..ATTEMPTS {
        let port = next_port();
        let mut child = ChildGuard::spawn(command(port));
        let serving = poll_blocking(std::time::Duration::from_secs(20), || {
            if !child.is_running() {
                Ok(false)
            } else if child.listens_on(port) {
                Ok(true)
            } else {
                Err(())
            }
        });
        if serving == Ok(true) {
            return (child, port);
        }
    }
    panic!("{what} did not start in {ATTEMPTS} attempts (see its stderr above)");
}

/// Whether process `pid` holds a socket listening on TCP port `port` of 127.0.0.1
/// (or of every address): the kernel's socket table (`/proc/net/tcp`) names the
/// socket's inode, and the process's descriptors (`/proc/<pid>/fd`) show whether
/// it is one of them.
pub fn pid_listens_on(pid: u32, port: u16) -> bool {
    const LISTEN: &str = "0A";
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let addresses = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let listening = fields.get(3) == Some(&LISTEN);
            let on_port = fields
                .get(1)
                .is_some_and(|a| addresses.iter().any(|x| x == a));
            let inode = fields.get(9)?;
            (listening && on_port).then(|| format!("socket:[{inode}]"))
        })
        .collect();
    let Ok(descriptors) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    descriptors.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_is_found_in_its_own_process_only() {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let me = std::process::id();
        assert!(pid_listens_on(me, port));
        let other = Command::new("sleep").arg("5").spawn().unwrap();
        let mut other = ChildGuard { child: Some(other) };
        assert!(
            !other.listens_on(port),
            "another process holds no such socket"
        );
        other.kill();
        drop(listener);
        assert!(!pid_listens_on(me, port), "closed");
    }
}
