//! Where commands go: one Redis server, or a Redis Cluster.

use bytes::Bytes;

use crate::cluster::Cluster;
use crate::conn::ConnError;
use crate::policy::CommandTable;
use crate::pool::Pool;
use crate::resp::Value;

pub enum Backend {
    Single(Pool),
    Cluster(Cluster),
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
            (Backend::Cluster(c), Some(t)) => c.run(cmds, t).await,
            (Backend::Cluster(c), None) => c.run(cmds, &CommandTable::default()).await,
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
            (Backend::Cluster(c), Some(t)) => c.run_transaction(batch, t).await,
            (Backend::Cluster(c), None) => c.run_transaction(batch, &CommandTable::default()).await,
            (Backend::Single(p), _) => p.run(batch).await,
        }
    }

    /// A keyless command on any one server.
    pub async fn run_any(&self, cmd: &[&str]) -> Result<Value, ConnError> {
        match self {
            Backend::Cluster(c) => c.run_any(cmd).await,
            Backend::Single(p) => Ok(p.run(&[cmd.to_vec()]).await?.pop().unwrap_or(Value::Nil)),
        }
    }
}
