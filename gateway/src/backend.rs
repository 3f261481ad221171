//! Where commands go: one Redis server, or a Redis Cluster.

use std::sync::Arc;

use bytes::Bytes;

use crate::cluster::{Cluster, NodeHealth};
use crate::conn::ConnError;
use crate::policy::CommandTable;
use crate::pool::Pool;
use crate::resp::Value;

/// What a backend says of its health.
pub enum Health {
    /// One server: `Err` with what went wrong unless it answered PING.
    Single(Result<(), String>),
    /// A cluster: every master with the slots it serves and what is wrong
    /// with it, if anything; `Err` when no slot map could be loaded.
    Cluster(Result<Vec<NodeHealth>, String>),
}

pub enum Backend {
    Single(Pool),
    Cluster(Arc<Cluster>),
}

impl Backend {
    pub fn is_cluster(&self) -> bool {
        matches!(self, Backend::Cluster(_))
    }

    /// Independent commands, replies in order. `table` is required for a
    /// cluster (key positions) and ignored otherwise.
    pub async fn run(
        &self,
        cmds: &[Vec<Bytes>],
        table: Option<&CommandTable>,
    ) -> Result<Vec<Value>, ConnError> {
        match (self, table) {
            (Backend::Cluster(c), table) => {
                c.keep_fresh();
                let fallback = CommandTable::default();
                c.run(cmds, table.unwrap_or(&fallback)).await
            }
            (Backend::Single(p), _) => p.run(cmds).await,
        }
    }

    /// A MULTI ... EXEC batch, sent contiguously to one server.
    pub async fn run_transaction(
        &self,
        batch: &[Vec<Bytes>],
        table: Option<&CommandTable>,
    ) -> Result<Vec<Value>, ConnError> {
        match (self, table) {
            (Backend::Cluster(c), table) => {
                c.keep_fresh();
                let fallback = CommandTable::default();
                c.run_transaction(batch, table.unwrap_or(&fallback)).await
            }
            (Backend::Single(p), _) => p.run(batch).await,
        }
    }

    /// A keyless command on any one server.
    pub async fn run_any(&self, cmd: &[&str]) -> Result<Value, ConnError> {
        match self {
            Backend::Cluster(c) => {
                c.keep_fresh();
                c.run_any(cmd).await
            }
            Backend::Single(p) => Ok(p.run(&[cmd.to_vec()]).await?.pop().unwrap_or(Value::Nil)),
        }
    }

    /// Requests sent to Redis and not answered yet.
    pub fn in_flight(&self) -> usize {
        match self {
            Backend::Single(p) => p.in_flight(),
            Backend::Cluster(c) => c.in_flight(),
        }
    }

    /// Sends `SCRIPT KILL` to every server over a connection of its own
    /// (the pooled ones may wait behind the script): a read-only script
    /// that outran its request's timeout stops holding Redis. Redis takes
    /// it once the script has run `busy-reply-threshold` (5 s by default).
    pub async fn kill_busy_scripts(&self, connect_timeout: std::time::Duration) {
        let targets = match self {
            Backend::Single(p) => vec![p.target().clone()],
            Backend::Cluster(c) => c.master_targets(),
        };
        for target in targets {
            let killed = async {
                let conn = crate::conn::Conn::connect(&target, connect_timeout).await?;
                let mut payload = Vec::new();
                crate::resp::encode_command(&mut payload, &["SCRIPT", "KILL"]);
                conn.send(payload, 1).await.map_err(|(e, _)| e)
            };
            // Give up well after Redis's own threshold for a busy script.
            match tokio::time::timeout(std::time::Duration::from_secs(30), killed).await {
                Ok(Ok(reply)) => {
                    // NOTBUSY when the script ended on its own meanwhile.
                    let answer = reply.first().and_then(|v| v.error_text());
                    tracing::warn!(
                        ?answer,
                        "a read-only script outran its request: SCRIPT KILL sent"
                    );
                }
                Ok(Err(error)) => tracing::warn!(%error, "SCRIPT KILL could not be sent"),
                Err(_) => tracing::warn!("SCRIPT KILL had no answer in 30 s"),
            }
        }
    }

    pub async fn health(&self) -> Health {
        match self {
            Backend::Cluster(c) => {
                c.keep_fresh();
                Health::Cluster(c.health().await.map_err(|e| e.to_string()))
            }
            Backend::Single(_) => Health::Single(match self.run_any(&["PING"]).await {
                Ok(Value::Error(e)) => Err(String::from_utf8_lossy(&e).into_owned()),
                Ok(_) => Ok(()),
                Err(e) => Err(e.to_string()),
            }),
        }
    }
}
