use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy on a free loopback port in front of a Redis, for network faults:
/// drop every connection, stall them (bytes held, connections kept open), or add
/// latency. It runs on a thread of its own, so sync and async tests can use it.
///
/// ```no_run
/// use tether_testkit::{FaultProxy, RedisServer, RedisOptions};
/// let redis = RedisServer::start(RedisOptions::default());
/// let proxy = FaultProxy::start(redis.port());
/// // point clients at proxy.url() …
/// proxy.drop_all();
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    control: Arc<Control>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Control {
    stalled: watch::Sender<bool>,
    latency: Mutex<Duration>,
    connections: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `127.0.0.1:target_port`.
    pub fn start(target_port: u16) -> FaultProxy {
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind proxy port");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let port = std_listener.local_addr().expect("addr").port();
        let control = Arc::new(Control {
            stalled: watch::channel(false).0,
            latency: Mutex::new(Duration::ZERO),
            connections: Mutex::new(Vec::new()),
        });
        let (shutdown, mut stop) = tokio::sync::oneshot::channel::<()>();
        let shared = control.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                loop {
                    tokio::select! {
                        _ = &mut stop => break,
                        accepted = listener.accept() => {
                            let Ok((client, _)) = accepted else { continue };
                            let control = shared.clone();
                            let task = tokio::spawn(async move {
                                if let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)).await {
                                    forward_both(client, server, control).await;
                                }
                            });
                            shared.connections.lock().unwrap().push(task.abort_handle());
                        }
                    }
                }
                for task in shared.connections.lock().unwrap().drain(..) {
                    task.abort();
                }
            });
        });
        FaultProxy {
            port,
            control,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<proxy port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Closes every open connection at once (clients see a reset); new ones are accepted.
    pub fn drop_all(&self) {
        for task in self.control.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// While stalled, nothing is forwarded either way; connections stay open.
    pub fn stall(&self, stalled: bool) {
        self.control.stalled.send_replace(stalled);
    }

    /// Delay added to every chunk forwarded, each way.
    pub fn set_latency(&self, latency: Duration) {
        *self.control.latency.lock().unwrap() = latency;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stall(false);
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn forward_both(client: TcpStream, server: TcpStream, control: Arc<Control>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        _ = forward(client_read, server_write, control.clone()) => {}
        _ = forward(server_read, client_write, control) => {}
    }
}

async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    control: Arc<Control>,
) {
    let mut stalled = control.stalled.subscribe();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        let latency = *control.latency.lock().unwrap();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
