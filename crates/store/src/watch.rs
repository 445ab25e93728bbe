//! Change announcements for watched jobs, over one shared pub/sub connection.
//!
//! A process may follow thousands of jobs at once (every open event stream of
//! the API is one). A pub/sub connection per watcher would cost Redis one client
//! each, so a store keeps one subscriber connection and multiplexes every
//! watched job's channel over it: a channel is subscribed when its first watcher
//! arrives and unsubscribed when its last one leaves. On a cluster the connection
//! goes to any reachable seed: Redis Cluster broadcasts `PUBLISH` to every node.
//!
//! A lost connection is re-established (with every channel still watched) by its
//! reader; watchers are woken then, since announcements may have been missed, and
//! re-read the job. Announcements are hints: watchers also re-read on a timer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{oneshot, watch};

use crate::StoreError;
use crate::conn::Topology;

/// The subscriber connection and the channels watched through it.
#[derive(Clone)]
pub(crate) struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    topology: Topology,
    /// How long a SUBSCRIBE or UNSUBSCRIBE may take before the link counts as broken.
    timeout: Duration,
    /// Watched channels: number of watchers and the counter that wakes them.
    channels: Mutex<HashMap<String, Channel>>,
    /// The live connection, if any. Its lock also orders subscribe and
    /// unsubscribe calls, so that a watcher gets its `Subscription` only once its
    /// channel is subscribed (a change announced after that cannot be missed).
    link: tokio::sync::Mutex<Link>,
}

struct Channel {
    watchers: usize,
    wake: watch::Sender<u64>,
}

#[derive(Default)]
struct Link {
    /// Bumped for every new connection, so a stale reader cannot clear a newer link.
    generation: u64,
    live: Option<Live>,
}

struct Live {
    sink: PubSubSink,
    /// Dropping it stops the connection's reader, which closes the connection.
    _stop: oneshot::Sender<()>,
}

/// One watcher's interest in one channel; dropping it gives the interest back.
pub(crate) struct Subscription {
    hub: Weak<HubInner>,
    channel: String,
    changes: watch::Receiver<u64>,
}

impl Hub {
    pub(crate) fn new(topology: Topology, timeout: Duration) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                topology,
                timeout,
                channels: Mutex::new(HashMap::new()),
                link: tokio::sync::Mutex::new(Link::default()),
            }),
        }
    }

    /// Watches `channel`; returns once Redis confirmed the subscription.
    pub(crate) async fn subscribe(&self, channel: &str) -> Result<Subscription, StoreError> {
        let inner = &self.inner;
        let mut link = inner.link.lock().await;
        let (first, changes) = {
            let mut channels = inner.lock_channels();
            let entry = channels
                .entry(channel.to_owned())
                .or_insert_with(|| Channel {
                    watchers: 0,
                    wake: watch::channel(0).0,
                });
            entry.watchers += 1;
            (entry.watchers == 1, entry.wake.subscribe())
        };
        // Made now, so that an early return gives the interest back.
        let subscription = Subscription {
            hub: Arc::downgrade(inner),
            channel: channel.to_owned(),
            changes,
        };
        match link.live.as_mut() {
            // A new connection subscribes every watched channel, this one included.
            None => {
                let (generation, stream, stopped) = inner.establish(&mut link).await?;
                tokio::spawn(read(Arc::downgrade(inner), generation, stream, stopped));
            }
            Some(live) if first => {
                let subscribed = tokio::time::timeout(inner.timeout, live.sink.subscribe(channel));
                match subscribed.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        link.live = None;
                        return Err(e.into());
                    }
                    Err(_) => {
                        link.live = None;
                        return Err(timed_out("SUBSCRIBE"));
                    }
                }
            }
            Some(_) => {}
        }
        Ok(subscription)
    }
}

fn timed_out(what: &str) -> StoreError {
    StoreError::Redis(redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what} timed out"),
    )))
}

impl HubInner {
    fn lock_channels(&self) -> std::sync::MutexGuard<'_, HashMap<String, Channel>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes every watcher (after a reconnect: announcements may have been missed).
    fn wake_all(&self) {
        for channel in self.lock_channels().values() {
            channel.wake.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Opens a subscriber connection and subscribes every watched channel; returns
    /// what its reader needs. Called with the link locked and not live.
    async fn establish(&self, link: &mut Link) -> Result<Reader, StoreError> {
        let (mut sink, stream) = tokio::time::timeout(self.timeout, self.topology.pubsub())
            .await
            .map_err(|_| timed_out("pub/sub connect"))??
            .split();
        let watched: Vec<String> = self
            .lock_channels()
            .iter()
            .filter(|(_, c)| c.watchers > 0)
            .map(|(name, _)| name.clone())
            .collect();
        if !watched.is_empty() {
            match tokio::time::timeout(self.timeout, sink.subscribe(&watched)).await {
                Ok(result) => result?,
                Err(_) => return Err(timed_out("SUBSCRIBE")),
            }
        }
        let (stop, stopped) = oneshot::channel();
        link.generation += 1;
        link.live = Some(Live { sink, _stop: stop });
        self.wake_all();
        Ok((link.generation, stream, stopped))
    }

    /// Gives a channel back once its last watcher left (and no new one came since).
    async fn release(self: Arc<Self>, channel: String) {
        let mut link = self.link.lock().await;
        let unused = {
            let mut channels = self.lock_channels();
            let unused = channels.get(&channel).is_some_and(|c| c.watchers == 0);
            if unused {
                channels.remove(&channel);
            }
            unused
        };
        let Some(live) = link.live.as_mut().filter(|_| unused) else {
            return;
        };
        match tokio::time::timeout(self.timeout, live.sink.unsubscribe(&channel)).await {
            Ok(Ok(())) => {}
            // A broken link is replaced on the next subscribe, without this channel.
            _ => link.live = None,
        }
    }
}

/// A connection's generation, message stream and stop signal.
type Reader = (u64, PubSubStream, oneshot::Receiver<()>);

/// Delivers a connection's messages to the watchers of their channels; when the
/// connection is lost, re-establishes it (with backoff) while anything is watched,
/// and goes on with the new one.
async fn read(
    hub: Weak<HubInner>,
    mut generation: u64,
    mut stream: PubSubStream,
    mut stopped: oneshot::Receiver<()>,
) {
    'connection: loop {
        if !deliver(&hub, &mut stream, &mut stopped).await {
            return;
        }
        drop(stream);
        let mut pause = Duration::from_millis(100);
        loop {
            let Some(inner) = hub.upgrade() else { return };
            {
                let mut link = inner.link.lock().await;
                if link.generation != generation {
                    return; // someone else connected since
                }
                link.live = None;
                let watched = inner.lock_channels().values().any(|c| c.watchers > 0);
                if !watched {
                    return; // the next subscribe connects
                }
                inner.wake_all();
                match inner.establish(&mut link).await {
                    Ok(next) => {
                        (generation, stream, stopped) = next;
                        continue 'connection;
                    }
                    Err(e) => tracing::warn!(error = %e, "pub/sub reconnect failed"),
                }
            }
            drop(inner);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
}

/// Passes messages on until the connection ends (true) or the reader is told to
/// stop or its hub is gone (false).
async fn deliver(
    hub: &Weak<HubInner>,
    stream: &mut PubSubStream,
    stopped: &mut oneshot::Receiver<()>,
) -> bool {
    loop {
        tokio::select! {
            _ = &mut *stopped => return false,
            message = stream.next() => match message {
                Some(message) => {
                    let Some(hub) = hub.upgrade() else { return false };
                    let channel = message.get_channel_name();
                    if let Some(c) = hub.lock_channels().get(channel) {
                        c.wake.send_modify(|n| *n = n.wrapping_add(1));
                    }
                }
                None => return true,
            },
        }
    }
}

impl Subscription {
    /// Resolves at the next announcement on the channel (or reconnect); `None`
    /// once the store is gone.
    pub(crate) async fn changed(&mut self) -> Option<()> {
        self.changes.changed().await.ok()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let last = {
            let mut channels = hub.lock_channels();
            match channels.get_mut(&self.channel) {
                Some(c) => {
                    c.watchers = c.watchers.saturating_sub(1);
                    c.watchers == 0
                }
                None => false,
            }
        };
        if last && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(hub.release(std::mem::take(&mut self.channel)));
        }
    }
}
