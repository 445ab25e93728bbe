//! Test support for Tether: real `redis-server` processes that a test owns.
//!
//! Every [`RedisServer`] listens on a free port on 127.0.0.1 (never 6379), keeps
//! its data in its own temporary directory, and is killed when dropped, so
//! tests can kill, restart and pause Redis without touching anything shared.
//!
//! ```no_run
//! use tether_testkit::{RedisServer, RedisOptions};
//! let redis = RedisServer::start(RedisOptions { aof: true, ..Default::default() });
//! println!("{}", redis.url());
//! redis.pause();  // SIGSTOP: clients see a stalled server
//! redis.resume();
//! ```
//!
//! [`FaultProxy`] sits between clients and a server to drop, stall or slow
//! their connections. [`RedisCluster`] forms a Redis Cluster of such servers (`redis-cli --cluster
//! create`) and can fail a master over; [`TestRedis`] lets a suite run the same
//! test on either. [`eventually`] waits for a condition, bounded in time.

mod cluster;
mod eventually;
mod process;
mod proxy;
mod redis_server;
mod waiting;

pub use cluster::{Failover, NODE_TIMEOUT, RedisCluster};
pub use eventually::{eventually, eventually_blocking, poll, poll_blocking};
pub use process::{ChildGuard, pid_listens_on, spawn_serving, spawn_serving_on, tether_bin};
pub use proxy::FaultProxy;
pub use redis_server::{RedisOptions, RedisServer, free_port};
pub use waiting::{split_waiting_value, waiting_value};

/// Where a test's Redis lives: what Tether is pointed at.
pub trait RedisEndpoint {
    /// The value for `--redis`: one URL, or a cluster's comma-separated seeds.
    fn url(&self) -> String;
}

/// A URL as it is (a proxy's, or any `--redis` value).
impl RedisEndpoint for String {
    fn url(&self) -> String {
        self.clone()
    }
}

impl RedisEndpoint for RedisServer {
    fn url(&self) -> String {
        RedisServer::url(self)
    }
}

impl RedisEndpoint for RedisCluster {
    fn url(&self) -> String {
        RedisCluster::url(self)
    }
}

/// The two shapes of Redis a suite can be parametrised on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One redis-server.
    Single,
    /// Three masters, no replicas: every queue's slot may live on another node.
    Cluster,
}

/// A single server or a cluster, started for one test.
#[derive(Debug)]
pub enum TestRedis {
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl TestRedis {
    pub fn start(topology: Topology) -> TestRedis {
        match topology {
            Topology::Single => TestRedis::Single(RedisServer::start(RedisOptions::default())),
            Topology::Cluster => TestRedis::Cluster(RedisCluster::start(3, 0)),
        }
    }

    /// A plain connection to the node that holds `key`'s slot (the server itself when
    /// there is one), for reading or arranging a queue's keys directly.
    pub fn connection_for(&self, key: &str) -> redis::Connection {
        match self {
            TestRedis::Single(server) => server.connection(),
            TestRedis::Cluster(cluster) => cluster.master_for(key).connection(),
        }
    }
}

impl RedisEndpoint for TestRedis {
    fn url(&self) -> String {
        match self {
            TestRedis::Single(server) => server.url(),
            TestRedis::Cluster(cluster) => cluster.url(),
        }
    }
}
