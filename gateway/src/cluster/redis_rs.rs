//! Redis Cluster on redis-rs' cluster-async client
//! (`--cfg edgelimit_gateway_client="redis-rs-cluster"`), for comparison
//! with `route.rs` + `map.rs`: the
//! library computes slots, keeps the map, follows MOVED/ASK and retries
//! TRYAGAIN/CLUSTERDOWN. It refuses a pipeline whose commands are in
//! different slots, so a request's commands are sent one by one, all at
//! once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::ConnectionLike;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use tokio::sync::OnceCell;

use crate::conn::ConnError;
use crate::policy::CommandTable;
use crate::pool::{conn_error, url, value};
use crate::resp::Value;
use crate::target::Target;

pub struct Cluster {
    seeds: Vec<Target>,
    connect_timeout: Duration,
    conn: OnceCell<ClusterConnection>,
    in_flight: AtomicUsize,
}

/// What one master said when asked for health.
pub struct NodeHealth {
    pub addr: String,
    pub slots: usize,
    pub problem: Option<String>,
}

struct InFlight<'a>(&'a AtomicUsize);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn cmd<A: AsRef<[u8]>>(args: &[A]) -> redis::Cmd {
    let mut c = redis::Cmd::new();
    for a in args {
        c.arg(a.as_ref());
    }
    c
}

/// A reply or an error redis-rs raised: a server error is the command's
/// reply; anything else is the connection's failure.
fn reply(r: redis::RedisResult<redis::Value>) -> Result<Value, ConnError> {
    match r {
        Ok(v) => Ok(value(v)),
        Err(e) if matches!(e.kind(), redis::ErrorKind::Server(_)) || e.code().is_some() => {
            let text = match (e.code(), e.detail()) {
                (Some(c), Some(d)) => format!("{c} {d}"),
                (Some(c), None) => c.to_string(),
                _ => e.to_string(),
            };
            Ok(Value::Error(Bytes::from(text)))
        }
        Err(e) => Err(conn_error(e)),
    }
}

impl Cluster {
    pub fn new(
        seeds: Vec<Target>,
        _pool_size: usize,
        connect_timeout: Duration,
        _refresh_every: Duration,
    ) -> Cluster {
        Cluster {
            seeds,
            connect_timeout,
            conn: OnceCell::new(),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// redis-rs refreshes its map itself.
    pub fn keep_fresh(self: &Arc<Self>) {}

    async fn conn(&self) -> Result<ClusterConnection, ConnError> {
        self.conn
            .get_or_try_init(|| async {
                let urls: Vec<String> = self
                    .seeds
                    .iter()
                    .map(|t| {
                        let mut t = t.clone();
                        t.db = 0;
                        url(&t)
                    })
                    .collect();
                // The defaults (16 retries, 1.28 s to 655 s apart) hold a
                // CLUSTERDOWN for minutes: a few short retries instead,
                // enough for MOVED/ASK, so a refusal comes back as 503.
                let client = ClusterClient::builder(urls)
                    .connection_timeout(self.connect_timeout)
                    .retries(3)
                    .min_retry_wait(10)
                    .max_retry_wait(100)
                    .build()
                    .map_err(conn_error)?;
                client.get_async_connection().await.map_err(conn_error)
            })
            .await
            .cloned()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The library does not hand out its slot map.
    pub fn master_targets(&self) -> Vec<Target> {
        vec![]
    }

    pub async fn run(
        &self,
        cmds: &[Vec<Bytes>],
        _table: &CommandTable,
    ) -> Result<Vec<Value>, ConnError> {
        let conn = self.conn().await?;
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let _done = InFlight(&self.in_flight);
        let mut tasks = Vec::with_capacity(cmds.len());
        for c in cmds {
            let mut conn = conn.clone();
            let c = cmd(c);
            tasks.push(tokio::spawn(
                async move { conn.req_packed_command(&c).await },
            ));
        }
        let mut out = Vec::with_capacity(cmds.len());
        let mut first_error = None;
        for t in tasks {
            match reply(t.await.unwrap_or_else(|_| {
                Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "task failed",
                )))
            })) {
                Ok(v) => out.push(v),
                Err(e) => {
                    out.push(Value::Error(Bytes::from(format!("ERR redis node: {e}"))));
                    first_error = first_error.or(Some(e));
                }
            }
        }
        match first_error {
            Some(e) if out.len() == 1 => Err(e),
            _ => Ok(out),
        }
    }

    /// MULTI, commands, EXEC as one pipeline: redis-rs sends it to the
    /// node of its first key.
    pub async fn run_transaction(
        &self,
        batch: &[Vec<Bytes>],
        _table: &CommandTable,
    ) -> Result<Vec<Value>, ConnError> {
        let mut conn = self.conn().await?;
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let _done = InFlight(&self.in_flight);
        let mut pipe = redis::pipe();
        for c in batch {
            pipe.add_command(cmd(c));
        }
        match conn.req_packed_commands(&pipe, 0, batch.len()).await {
            Ok(v) => Ok(v.into_iter().map(value).collect()),
            Err(e) => {
                let mut out = vec![reply(Err(e))?];
                out.extend((1..batch.len()).map(|_| Value::Nil));
                Ok(out)
            }
        }
    }

    pub async fn run_any(&self, c: &[&str]) -> Result<Value, ConnError> {
        let mut conn = self.conn().await?;
        reply(conn.req_packed_command(&cmd(c)).await)
    }

    /// Every master's `CLUSTER INFO`, through the library's fan-out (it
    /// does not say which master serves which slots: each entry claims an
    /// equal share).
    pub async fn health(&self) -> Result<Vec<NodeHealth>, ConnError> {
        use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
        let mut conn = self.conn().await?;
        let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        let ok = |t: &[u8]| t.windows(16).any(|w| w == b"cluster_state:ok");
        match conn.route_command(cmd(&["CLUSTER", "INFO"]), routing).await {
            Ok(redis::Value::Map(nodes)) => {
                let n = nodes.len().max(1);
                Ok(nodes
                    .into_iter()
                    .enumerate()
                    .map(|(i, (addr, v))| {
                        let addr = match value(addr) {
                            Value::Bulk(a) | Value::Simple(a) => {
                                String::from_utf8_lossy(&a).into_owned()
                            }
                            other => format!("{other:?}"),
                        };
                        let problem = match value(v) {
                            Value::Bulk(t) | Value::Simple(t) if ok(&t) => None,
                            Value::Error(e) => Some(String::from_utf8_lossy(&e).into_owned()),
                            _ => Some("cluster state not ok".to_string()),
                        };
                        NodeHealth {
                            addr,
                            slots: super::SLOTS / n + usize::from(i < super::SLOTS % n),
                            problem,
                        }
                    })
                    .collect())
            }
            Ok(other) => Ok(vec![NodeHealth {
                addr: "cluster".into(),
                slots: super::SLOTS,
                problem: Some(format!("unexpected reply {other:?}")),
            }]),
            Err(e) => Ok(vec![NodeHealth {
                addr: "cluster".into(),
                slots: super::SLOTS,
                problem: Some(e.to_string()),
            }]),
        }
    }
}
