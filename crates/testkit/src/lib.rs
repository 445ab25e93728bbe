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

mod process;
mod redis_server;

pub use process::{ChildGuard, tether_bin};
pub use redis_server::{RedisOptions, RedisServer, free_port};
