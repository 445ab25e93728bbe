//! One Redis or a Redis Cluster behind one connection type.
//!
//! The rest of the crate sends commands, pipelines and scripts through [`Conn`]
//! and never asks which it is: every per-queue command and pipeline touches one
//! hash tag, so the cluster client routes it to the node that owns the queue's
//! slot (and follows MOVED/ASK and failovers by itself). Only a few things
//! differ by topology and live here: how to connect, where blocking waits go
//! (blocking reads and the `WAIT` of replica-confirmed enqueues), and where
//! pub/sub subscriptions go.

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::{StoreConfig, StoreError, redact};

/// A connection to a single Redis or to a cluster; cheap to clone (all clones share it).
#[derive(Clone)]
pub(crate) enum Conn {
    /// Reconnecting, multiplexed: the shared connection of a single Redis.
    Single(ConnectionManager),
    /// A private connection (blocking waits on a single Redis).
    Private(MultiplexedConnection),
    /// Routes each command by its key's slot; reconnects and follows redirections.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Private(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Private(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Private(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// What a store needs to open more connections later: blocking waits and pub/sub.
#[derive(Clone)]
pub(crate) enum Topology {
    Single(redis::Client),
    /// `waits` answers slowly by design (blocking reads); `seeds` carry pub/sub,
    /// which Redis Cluster broadcasts to every node, so any reachable seed will do.
    Cluster {
        waits: Box<ClusterClient>,
        seeds: Vec<redis::Client>,
    },
}

/// The longest a blocking wait may ask Redis to block on a cluster (its client's
/// response timeout is fixed when it is built, so waits must stay under it).
pub(crate) const MAX_CLUSTER_WAIT: Duration = Duration::from_secs(20);

impl StoreConfig {
    /// The URLs in [`url`](StoreConfig::url), split on commas.
    pub fn seeds(&self) -> Vec<&str> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect()
    }

    /// Cluster mode: more than one URL, or `cluster` set.
    pub fn is_cluster(&self) -> bool {
        self.cluster || self.seeds().len() > 1
    }
}

fn bad_url(url: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Config(format!("bad redis url {}: {e}", redact(url)))
}

fn cluster_client(seeds: &[&str], response_timeout: Duration) -> Result<ClusterClient, StoreError> {
    ClusterClientBuilder::new(seeds.to_vec())
        .response_timeout(response_timeout)
        .connection_timeout(Duration::from_secs(5))
        // About 4 s of retries in all: long enough to ride out a replica's promotion.
        .retries(8)
        .retry_wait_formula(50, 2)
        .min_retry_wait(50)
        .max_retry_wait(1000)
        .build()
        .map_err(|e| bad_url(&seeds.join(","), e))
}

/// Opens the shared connection and remembers how to open the others.
pub(crate) async fn connect(config: &StoreConfig) -> Result<(Conn, Topology), StoreError> {
    let seeds = config.seeds();
    if seeds.is_empty() {
        return Err(StoreError::Config("no redis url given".into()));
    }
    if !config.is_cluster() {
        let client = redis::Client::open(seeds[0]).map_err(|e| bad_url(seeds[0], e))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_with_config(client.clone(), manager_config).await?;
        return Ok((Conn::Single(conn), Topology::Single(client)));
    }
    let conn = cluster_client(&seeds, config.response_timeout)?
        .get_async_connection()
        .await?;
    let waits = cluster_client(&seeds, MAX_CLUSTER_WAIT + Duration::from_secs(5))?;
    let seeds = seeds
        .iter()
        .map(|url| redis::Client::open(*url).map_err(|e| bad_url(url, e)))
        .collect::<Result<_, _>>()?;
    Ok((
        Conn::Cluster(conn),
        Topology::Cluster {
            waits: Box::new(waits),
            seeds,
        },
    ))
}

impl Topology {
    /// A connection of its own for blocking reads of up to `block` each.
    pub(crate) async fn waiting_connection(&self, block: Duration) -> Result<Conn, StoreError> {
        match self {
            Topology::Single(client) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_response_timeout(Some(block + Duration::from_secs(5)))
                    .set_connection_timeout(Some(Duration::from_secs(5)));
                Ok(Conn::Private(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                ))
            }
            Topology::Cluster { waits, .. } => {
                Ok(Conn::Cluster(waits.get_async_connection().await?))
            }
        }
    }

    /// A pub/sub connection: the single server, or the first cluster seed that answers.
    pub(crate) async fn pubsub(&self) -> Result<redis::aio::PubSub, StoreError> {
        match self {
            Topology::Single(client) => Ok(client.get_async_pubsub().await?),
            Topology::Cluster { seeds, .. } => {
                let mut last = None;
                for client in seeds {
                    match client.get_async_pubsub().await {
                        Ok(pubsub) => return Ok(pubsub),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last
                    .map(StoreError::from)
                    .unwrap_or_else(|| StoreError::Config("no cluster seed".into())))
            }
        }
    }
}

/// Connections of their own for enqueues that wait for replicas (`min_replicas`).
///
/// `WAIT` blocks the connection it is sent on until the replicas answer or its
/// timeout passes, and it counts the writes of that connection only: the enqueue
/// script and its `WAIT` go together on one of these, never on the shared
/// connection, so every other call of the process goes on at once. Each enqueue in
/// flight takes one (so their waits overlap rather than queue); idle ones are kept
/// for the next.
pub(crate) struct Dedicated {
    topology: Topology,
    block: Duration,
    idle: Mutex<Vec<Conn>>,
}

/// Idle replica-waiting connections kept open; more are opened while many enqueues
/// wait at once and closed afterwards.
const MAX_IDLE_DEDICATED: usize = 8;

impl Dedicated {
    /// Connections whose commands may take up to `block` more than usual.
    pub(crate) fn new(topology: Topology, block: Duration) -> Dedicated {
        Dedicated {
            topology,
            block,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle connection, or a new one (on a cluster, a client that routes the
    /// script and its `WAIT` to the queue's master).
    pub(crate) async fn take(&self) -> Result<Conn, StoreError> {
        let idle = self.idle.lock().unwrap().pop();
        match idle {
            Some(conn) => Ok(conn),
            None => self.topology.waiting_connection(self.block).await,
        }
    }

    /// Returns a connection after a call that succeeded (after a failure it is dropped:
    /// a private connection does not reconnect by itself).
    pub(crate) fn give_back(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap();
        if idle.len() < MAX_IDLE_DEDICATED {
            idle.push(conn);
        }
    }
}
