use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{RedisOptions, RedisServer, eventually_blocking, poll_blocking};

/// A Redis Cluster of private redis-servers on free loopback ports; torn down on drop.
///
/// ```no_run
/// use tether_testkit::{Failover, RedisCluster};
/// let cluster = RedisCluster::start(3, 1); // 3 masters, 1 replica each
/// println!("--redis {}", cluster.url()); // every node, comma-separated
/// let master = cluster.master_for("{default}");
/// cluster.fail_over(master, Failover::Graceful);
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

/// How a master hands over to its replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failover {
    /// `CLUSTER FAILOVER` on the replica: it catches up with the master first; nothing is lost.
    Graceful,
    /// `kill -9` of the master: the replica is elected after the node timeout, and the
    /// writes it had not yet received are gone.
    Kill,
}

/// Cluster node timeout: how long a silent master lasts before its replica takes over.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(1000);

/// How long `redis-cli --cluster create` may take to join the nodes.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);

impl RedisCluster {
    /// Starts `masters` masters with `replicas` replicas each, joins them with
    /// `redis-cli --cluster create`, and waits until every node reports `cluster_state:ok`.
    pub fn start(masters: usize, replicas: usize) -> RedisCluster {
        let options = RedisOptions {
            aof: false,
            extra_args: [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                &NODE_TIMEOUT.as_millis().to_string(),
                // A replica may be promoted however stale it is: the tests kill masters.
                "--cluster-replica-validity-factor",
                "0",
                // Replicas sync at once instead of waiting for more replicas to join.
                "--repl-diskless-sync-delay",
                "0",
            ]
            .map(String::from)
            .to_vec(),
        };
        let nodes: Vec<RedisServer> = (0..masters * (1 + replicas))
            .map(|_| RedisServer::start(options.clone()))
            .collect();
        let mut create = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-cli ({e}); install it with: apt-get install -y redis-tools"
                )
            });
        // redis-cli waits for the nodes to agree with no time limit of its own.
        let status = poll_blocking(CREATE_TIMEOUT, || {
            create.try_wait().ok().flatten().ok_or(())
        });
        let Ok(status) = status else {
            let _ = create.kill();
            let _ = create.wait();
            panic!("redis-cli --cluster create did not finish within {CREATE_TIMEOUT:?}");
        };
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = RedisCluster { nodes };
        cluster.wait_healthy(cluster.nodes.iter().collect(), masters);
        cluster
    }

    /// The seed URLs, comma-separated (every node), as `--redis` takes them.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.url())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The node serving `key`'s slot as master.
    pub fn master_for(&self, key: &str) -> &RedisServer {
        let mut conn = self.live()[0].connection();
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut conn)
            .expect("CLUSTER KEYSLOT");
        let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut conn)
            .expect("CLUSTER SLOTS");
        for range in slots {
            let redis::Value::Array(parts) = range else {
                continue;
            };
            let (Ok(start), Ok(end)) = (
                redis::from_redis_value::<u16>(parts[0].clone()),
                redis::from_redis_value::<u16>(parts[1].clone()),
            ) else {
                continue;
            };
            if (start..=end).contains(&slot) {
                let master: Vec<redis::Value> =
                    redis::from_redis_value(parts[2].clone()).expect("master entry");
                let port: u16 = redis::from_redis_value(master[1].clone()).expect("port");
                return self.node(port);
            }
        }
        panic!("no master serves slot {slot}");
    }

    /// Names `<prefix>0`, `<prefix>1`, … chosen so that `per_master` of them, used as
    /// hash tags, land on each master (slots follow from CRC16, so the pick is stable).
    pub fn names_on_every_master(&self, prefix: &str, per_master: usize) -> Vec<String> {
        let masters = self
            .live()
            .iter()
            .filter(|n| replica_of(n).is_none())
            .count();
        let mut chosen: Vec<(u16, String)> = Vec::new();
        for i in 0..10_000 {
            let name = format!("{prefix}{i}");
            let port = self.master_for(&format!("{{{name}}}")).port();
            if chosen.iter().filter(|(p, _)| *p == port).count() < per_master {
                chosen.push((port, name));
            }
            if chosen.len() == masters * per_master {
                return chosen.into_iter().map(|(_, name)| name).collect();
            }
        }
        panic!("no names found for every master");
    }

    fn node(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.port() == port)
            .expect("a node of this cluster")
    }

    /// Nodes whose process is alive.
    fn live(&self) -> Vec<&RedisServer> {
        self.nodes.iter().filter(|n| n.is_running()).collect()
    }

    /// The live replicas of `master`.
    pub fn replicas_of(&self, master: &RedisServer) -> Vec<&RedisServer> {
        let id = node_id(master);
        self.live()
            .into_iter()
            .filter(|n| n.port() != master.port() && replica_of(n).as_deref() == Some(id.as_str()))
            .collect()
    }

    /// Makes a replica of `master` take over and waits until the cluster is healthy again.
    /// Returns the new master.
    pub fn fail_over(&self, master: &RedisServer, how: Failover) -> &RedisServer {
        let replica = *self
            .replicas_of(master)
            .first()
            .expect("the master has a live replica");
        let masters = self
            .live()
            .iter()
            .filter(|n| replica_of(n).is_none())
            .count();
        match how {
            Failover::Graceful => {
                let _: () = redis::cmd("CLUSTER")
                    .arg("FAILOVER")
                    .query(&mut replica.connection())
                    .expect("CLUSTER FAILOVER");
            }
            Failover::Kill => master.kill(),
        }
        eventually_blocking(
            Duration::from_secs(30),
            "the replica was not promoted",
            || match replica_of(replica) {
                None => Ok(()),
                Some(master) => Err(format!("still a replica of {master}")),
            },
        );
        self.wait_healthy(self.live(), masters);
        replica
    }

    fn wait_healthy(&self, nodes: Vec<&RedisServer>, masters: usize) {
        eventually_blocking(
            Duration::from_secs(30),
            "the cluster did not become healthy",
            // Every node agrees: state ok, and it sees the expected live masters; every
            // replica has finished its sync.
            || match nodes.iter().find(|n| !healthy(n, masters)) {
                None => Ok(()),
                Some(node) => Err(format!("the node on port {} disagrees", node.port())),
            },
        );
    }
}

/// Whether `node` reports the cluster ok, its replication link (if a replica) up, and
/// `masters` live masters.
fn healthy(node: &RedisServer, masters: usize) -> bool {
    let mut conn = node.connection();
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut conn)
        .unwrap_or_default();
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut conn)
        .unwrap_or_default();
    let replication: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut conn)
        .unwrap_or_default();
    info.contains("cluster_state:ok")
        && (replication.contains("role:master") || replication.contains("master_link_status:up"))
        && nodes
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
            .count()
            == masters
}

fn node_id(node: &RedisServer) -> String {
    redis::cmd("CLUSTER")
        .arg("MYID")
        .query(&mut node.connection())
        .expect("CLUSTER MYID")
}

/// The master id this node replicates, or `None` for a master.
fn replica_of(node: &RedisServer) -> Option<String> {
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut node.connection())
        .ok()?;
    let me = nodes.lines().find(|l| l.contains("myself"))?;
    let fields: Vec<&str> = me.split(' ').collect();
    (fields.get(2)?.contains("slave") && fields.get(3)? != &"-").then(|| fields[3].to_owned())
}
