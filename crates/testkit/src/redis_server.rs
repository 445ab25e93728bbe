use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::{eventually_blocking, poll_blocking};

/// How to start a private Redis.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// Append-only file on, `appendfsync everysec`: survives `kill -9` of the server.
    pub aof: bool,
    /// Extra `--name value` arguments.
    pub extra_args: Vec<String>,
}

/// A redis-server process owned by one test; killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    options: RedisOptions,
    child: Mutex<Option<Child>>,
}

/// A port that was free on 127.0.0.1 a moment ago (and is never 6379).
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if port != 6379 {
            return port;
        }
    }
}

impl RedisServer {
    /// Starts a server and waits until it answers.
    ///
    /// Panics with the install command when `redis-server` is not on PATH.
    pub fn start(options: RedisOptions) -> RedisServer {
        Self::start_on(free_port(), options)
    }

    /// Starts on `port`, or on another free port when some other process holds it
    /// (another test's server may take a port between [`free_port`] and the spawn).
    fn start_on(port: u16, options: RedisOptions) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("tether-redis-")
            .tempdir()
            .expect("tempdir");
        let mut server = RedisServer {
            port,
            dir,
            options,
            child: Mutex::new(None),
        };
        const ATTEMPTS: usize = 10;
        for attempt in 1..=ATTEMPTS {
            match server.try_spawn() {
                Ok(()) => return server,
                Err(why) if attempt < ATTEMPTS => {
                    eprintln!(
                        "redis-server on port {}: {why}; trying another port",
                        server.port
                    );
                    server.port = free_port();
                }
                Err(why) => panic!("redis-server never started: {why}"),
            }
        }
        unreachable!("the last attempt panics")
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's data directory.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    fn spawn(&self) {
        if let Err(why) = self.try_spawn() {
            panic!("redis-server on port {} did not restart: {why}", self.port);
        }
    }

    /// Starts the process and waits until it answers on the port: it, not another
    /// process that holds the port (then this one exits, unable to bind, and the
    /// other one would answer).
    fn try_spawn(&self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--save", "", "--daemonize", "no", "--protected-mode", "yes"])
            .args([
                "--maxmemory-policy",
                "noeviction",
                "--enable-debug-command",
                "local",
            ])
            .args(["--logfile", "redis.log"]);
        if self.options.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "everysec"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        cmd.args(&self.options.extra_args);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}); install it with: apt-get install -y redis-server")
            });
        let pid = child.id();
        *self.child.lock().unwrap() = Some(child);
        let client = redis::Client::open(self.url()).expect("url");
        let answered = poll_blocking(Duration::from_secs(10), || {
            if let Some(status) = self
                .child
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Ok(Err(format!(
                    "it exited ({status}); see {}/redis.log",
                    self.dir.path().display()
                )));
            }
            TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).map_err(|e| e.to_string())?;
            // While loading the AOF Redis answers LOADING; wait for a real answer.
            let mut conn = client.get_connection().map_err(|e| e.to_string())?;
            let info: String = redis::cmd("INFO")
                .arg("server")
                .query(&mut conn)
                .map_err(|e| e.to_string())?;
            match info_field(&info, "process_id") {
                Some(id) if id == pid.to_string() => Ok(Ok(())),
                other => Err(format!("process {other:?} answers, not {pid}")),
            }
        });
        match answered {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) | Err(why) => {
                self.kill();
                Err(why)
            }
        }
    }

    fn signal(&self, signal: Signal) {
        if let Some(child) = self.child.lock().unwrap().as_ref() {
            let _ = kill(Pid::from_raw(child.id() as i32), signal);
        }
    }

    /// Whether the process is up (not killed; a paused server counts as running).
    pub fn is_running(&self) -> bool {
        self.child.lock().unwrap().is_some()
    }

    /// `kill -9` the server and reap it.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data directory (with AOF, it reloads its data).
    pub fn restart(&self) {
        self.kill();
        self.spawn();
    }

    /// SIGSTOP: the server stops answering but keeps its connections. Returns once
    /// the kernel reports the process stopped (a signal is delivered asynchronously,
    /// and a busy server could otherwise still serve a request sent just after).
    pub fn pause(&self) {
        self.signal(Signal::SIGSTOP);
        let Some(pid) = self.child.lock().unwrap().as_ref().map(Child::id) else {
            return;
        };
        eventually_blocking(
            Duration::from_secs(2),
            format_args!("redis-server {pid} on port {} did not stop", self.port),
            || {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // The state is the first field after the parenthesised command name.
                let state = stat
                    .rsplit(')')
                    .next()
                    .and_then(|rest| rest.split_whitespace().next())
                    .unwrap_or("gone");
                if state == "T" || stat.is_empty() {
                    Ok(())
                } else {
                    Err(format!("state {state}"))
                }
            },
        );
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.signal(Signal::SIGCONT);
    }

    /// A blocking connection for test assertions.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .expect("connect to test redis")
    }
}

/// A `name:value` line of an `INFO` reply.
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process_id(server: &RedisServer) -> u32 {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut server.connection())
            .unwrap();
        info_field(&info, "process_id")
            .and_then(|pid| pid.parse().ok())
            .expect("process_id in INFO")
    }

    /// Another test's server may take a port between `free_port` and the spawn: the
    /// new server must be one of its own, never the other test's.
    #[test]
    fn a_taken_port_never_yields_another_tests_server() {
        let first = RedisServer::start(RedisOptions::default());
        let second = RedisServer::start_on(first.port(), RedisOptions::default());
        let own = second.child.lock().unwrap().as_ref().map(Child::id);
        assert_eq!(Some(process_id(&second)), own);
        assert_ne!(process_id(&first), process_id(&second));
    }
}
