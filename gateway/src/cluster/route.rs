//! Redis Cluster routing: hash slots, per-node pools, MOVED/ASK, failover.
//!
//! Commands are routed by the hash slot of their keys (key positions from the
//! server's `COMMAND` table; EVAL-family keys from `numkeys`). A request's
//! commands that map to one node travel as one pipeline to it; different
//! nodes are served concurrently. A MOVED reply refreshes the slot map and
//! resends the command to the node named in it; ASK sends `ASKING` and the
//! command together, contiguously, to the importing node. Routing is only a
//! first guess: Redis checks every key itself and answers CROSSSLOT or
//! MOVED, so an imprecise guess costs a redirect, never a wrong answer.
//!
//! Nodes die. The map is reloaded periodically, after a node could not be
//! reached and after CLUSTERDOWN or TRYAGAIN, from any node that answers
//! (masters, replicas, then the seeds), so a promoted replica is used as
//! soon as the cluster names it. Commands that could not be sent are sent
//! again once if the new map routes them elsewhere; otherwise each fails
//! alone, with a retryable error, and the rest of the request keeps its
//! results.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::conn::ConnError;
use crate::policy::{lower_name, CommandTable};
use crate::pool::Pool;
use crate::resp::Value;
use crate::target::Target;

use super::map::{Node, SlotMap};
use super::slot::{command_slot, crossslot};

/// Redirects followed for one command before giving up.
const MAX_REDIRECTS: usize = 3;
/// Shortest time between two reloads of the map prompted by failures: a
/// burst of failed requests causes one reload, not one each.
const MIN_REFRESH_GAP: Duration = Duration::from_millis(100);

pub struct Cluster {
    /// Where to learn the map when no known node answers: `--redis-url`
    /// and the `--cluster-seed`s.
    seeds: Vec<Target>,
    pool_size: usize,
    connect_timeout: Duration,
    refresh_every: Duration,
    map: RwLock<Arc<SlotMap>>,
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    refresher_started: AtomicBool,
}

enum Redirect {
    Moved(String),
    Ask(String),
}

fn redirect(v: &Value) -> Option<Redirect> {
    let Value::Error(e) = v else { return None };
    let text = std::str::from_utf8(e).ok()?;
    let mut parts = text.split(' ');
    let kind = parts.next()?;
    let addr = parts.nth(1)?.to_string();
    match kind {
        "MOVED" => Some(Redirect::Moved(addr)),
        "ASK" => Some(Redirect::Ask(addr)),
        _ => None,
    }
}

/// CLUSTERDOWN or TRYAGAIN: the cluster is changing; the map may be stale.
fn is_cluster_changing(v: &Value) -> bool {
    matches!(v, Value::Error(e) if e.starts_with(b"CLUSTERDOWN") || e.starts_with(b"TRYAGAIN"))
}

/// Script management must reach every master, so EVALSHA works wherever
/// the keys live.
fn is_broadcast(args: &[Bytes]) -> bool {
    lower_name(args) == "script"
        && args.get(1).is_some_and(|s| {
            s.eq_ignore_ascii_case(b"load")
                || s.eq_ignore_ascii_case(b"flush")
                || s.eq_ignore_ascii_case(b"exists")
        })
}

/// Nothing of the job reached Redis: sending it elsewhere is safe.
fn nothing_sent(e: &ConnError) -> bool {
    matches!(
        e,
        ConnError::Connect(_) | ConnError::ConnectTimeout | ConnError::Closed
    )
}

/// The reply standing for a command a node failed to answer: TRYAGAIN
/// (retryable; clients treat it as refused for now) when it was never
/// sent, a plain error when it may have run.
fn failed(addr: &str, e: &ConnError) -> Value {
    let text = if nothing_sent(e) {
        format!("TRYAGAIN redis node {addr} unreachable: {e}")
    } else {
        format!("ERR redis node {addr}: {e}; the command may have run")
    };
    Value::Error(Bytes::from(text))
}

/// What one master said when asked for health.
pub struct NodeHealth {
    pub addr: String,
    pub slots: usize,
    /// `None` when it answered and its cluster state is ok.
    pub problem: Option<String>,
}

impl Cluster {
    pub fn new(
        seeds: Vec<Target>,
        pool_size: usize,
        connect_timeout: Duration,
        refresh_every: Duration,
    ) -> Cluster {
        Cluster {
            seeds,
            pool_size,
            connect_timeout,
            refresh_every,
            map: RwLock::new(Arc::new(SlotMap::empty())),
            last_refresh: tokio::sync::Mutex::new(None),
            refresher_started: AtomicBool::new(false),
        }
    }

    /// Reloads the map every `refresh_every` in the background, for as long
    /// as the cluster is in use (started on first use, inside the runtime).
    pub fn keep_fresh(self: &Arc<Self>) {
        if self.refresh_every.is_zero() || self.refresher_started.swap(true, Ordering::Relaxed) {
            return;
        }
        let cluster: Weak<Cluster> = Arc::downgrade(self);
        let every = self.refresh_every;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(cluster) = cluster.upgrade() else {
                    return;
                };
                if let Err(e) = cluster.refresh().await {
                    tracing::warn!(error = %e, "cannot reload the cluster slot map");
                }
            }
        });
    }

    fn current(&self) -> Arc<SlotMap> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The target of node `host:port`: the seed's credentials, database 0
    /// (the only one in cluster mode).
    fn node_target(&self, addr: &str) -> Option<Target> {
        let (host, port) = addr.rsplit_once(':')?;
        let mut t = self.seeds.first()?.clone();
        t.host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        t.port = port.parse().ok()?;
        t.db = 0;
        Some(t)
    }

    /// Requests sent to the masters and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.current()
            .masters
            .iter()
            .map(|(_, pool)| pool.in_flight())
            .sum()
    }

    /// Every master's target, for commands sent outside the pools.
    pub fn master_targets(&self) -> Vec<Target> {
        let map = self.current();
        map.masters
            .iter()
            .filter_map(|(addr, _)| self.node_target(addr))
            .collect()
    }

    fn new_pool(&self, t: Target) -> Arc<Pool> {
        Arc::new(Pool::new(t, self.pool_size, self.connect_timeout))
    }

    /// The pool for `host:port`, creating one for a node not in the map yet.
    fn pool_for(&self, addr: &str) -> Option<Arc<Pool>> {
        self.current()
            .pool(addr)
            .or_else(|| self.node_target(addr).map(|t| self.new_pool(t)))
    }

    /// Loads the slot map once; later calls return the cached one.
    async fn loaded(&self) -> Result<Arc<SlotMap>, ConnError> {
        let map = self.current();
        if !map.is_empty() {
            return Ok(map);
        }
        self.refresh().await?;
        Ok(self.current())
    }

    /// Reads CLUSTER SLOTS from a node that answers and swaps the map. A
    /// refresh that finished while this one waited already saw what
    /// prompted it, and is enough.
    pub async fn refresh(&self) -> Result<(), ConnError> {
        let asked = Instant::now();
        let mut last = self.last_refresh.lock().await;
        if last.is_some_and(|t| t > asked) && !self.current().is_empty() {
            return Ok(());
        }
        self.reload(&mut last).await
    }

    /// A refresh after a failure, unless one ran in the last
    /// `MIN_REFRESH_GAP`.
    async fn refresh_after_failure(&self) {
        let mut last = self.last_refresh.lock().await;
        if last.is_some_and(|t| t.elapsed() < MIN_REFRESH_GAP) {
            return;
        }
        if let Err(e) = self.reload(&mut last).await {
            tracing::warn!(error = %e, "cannot reload the cluster slot map");
        }
    }

    async fn reload(&self, last: &mut Option<Instant>) -> Result<(), ConnError> {
        let old = self.current();
        let mut sources: Vec<Node> = old.nodes.clone();
        for seed in &self.seeds {
            let addr = format!("{}:{}", seed.host, seed.port);
            if !sources.iter().any(|(a, _)| *a == addr) {
                sources.push((addr, self.new_pool(seed.clone())));
            }
        }
        let mut err = ConnError::Closed;
        for (addr, pool) in sources {
            let reply = match pool.run(&[vec!["CLUSTER", "SLOTS"]]).await {
                Ok(mut v) => v.pop().unwrap_or(Value::Nil),
                Err(e) => {
                    err = e;
                    continue;
                }
            };
            let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or("");
            let new = SlotMap::from_reply(&reply, host, |a| {
                old.pool(a)
                    .or_else(|| self.node_target(a).map(|t| self.new_pool(t)))
            });
            if new.is_empty() {
                continue;
            }
            let before: Vec<&str> = old.masters.iter().map(|(a, _)| a.as_str()).collect();
            let after: Vec<&str> = new.masters.iter().map(|(a, _)| a.as_str()).collect();
            if before != after {
                tracing::info!(masters = ?after, from = %addr, "cluster slot map loaded");
            }
            *self.map.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
            *last = Some(Instant::now());
            return Ok(());
        }
        Err(err)
    }

    /// Runs independent commands; replies come back in request order. A
    /// command whose node cannot be reached gets an error reply of its own
    /// while the others keep theirs; only when no command got a reply does
    /// the whole request fail.
    pub async fn run(
        &self,
        cmds: &[Vec<Bytes>],
        table: &CommandTable,
    ) -> Result<Vec<Value>, ConnError> {
        let map = self.loaded().await?;
        let mut out: Vec<Option<Value>> = vec![None; cmds.len()];
        let mut slots: Vec<Option<u16>> = vec![None; cmds.len()];
        let mut routed = vec![];
        for (i, c) in cmds.iter().enumerate() {
            if is_broadcast(c) {
                out[i] = Some(self.broadcast(&map, c).await?);
                continue;
            }
            match command_slot(c, table) {
                Err(e) => out[i] = Some(e),
                Ok(s) => {
                    slots[i] = s;
                    routed.push(i);
                }
            }
        }

        let mut first_error = None;
        let mut map = map;
        for attempt in 0..2 {
            let (unsent, error) = self
                .send_routed(&map, cmds, &slots, &routed, &mut out)
                .await;
            if unsent.is_empty() {
                break;
            }
            first_error = first_error.or(error);
            // The node may be gone for good (a replica promoted in its
            // place): ask the cluster, and send again what now goes
            // elsewhere.
            self.refresh_after_failure().await;
            let fresh = self.current();
            let moved: Vec<usize> = unsent
                .iter()
                .copied()
                .filter(|&i| {
                    let before = map.master_of(slots[i]).map(|(a, _)| a.as_str());
                    let now = fresh.master_of(slots[i]).map(|(a, _)| a.as_str());
                    now.is_some() && now != before
                })
                .collect();
            if attempt == 1 || moved.is_empty() {
                break;
            }
            for &i in &moved {
                out[i] = None;
            }
            routed = moved;
            map = fresh;
        }

        let answered = out
            .iter()
            .any(|v| v.as_ref().is_some_and(|v| !is_unreachable(v)));
        if let (false, Some(e)) = (answered, first_error) {
            return Err(e);
        }
        let mut out: Vec<Value> = out.into_iter().map(|v| v.unwrap_or(Value::Nil)).collect();
        let mut changing = false;
        for (i, v) in out.iter_mut().enumerate() {
            if redirect(v).is_some() {
                *v = self.follow(&cmds[i], v.clone()).await?;
            }
            changing |= is_cluster_changing(v);
        }
        if changing {
            self.refresh_after_failure().await;
        }
        Ok(out)
    }

    /// Sends the commands `routed` to their masters in `map`, one pipeline
    /// per node, all nodes at once, and fills `out`. Returns the commands
    /// that were never sent (their node could not be reached), whose replies
    /// say so, and the first connection error.
    async fn send_routed(
        &self,
        map: &SlotMap,
        cmds: &[Vec<Bytes>],
        slots: &[Option<u16>],
        routed: &[usize],
        out: &mut [Option<Value>],
    ) -> (Vec<usize>, Option<ConnError>) {
        let mut groups: Vec<(&Node, Vec<usize>)> = vec![];
        for &i in routed {
            let Some(node) = map.master_of(slots[i]) else {
                out[i] = Some(Value::Error(Bytes::from_static(
                    b"CLUSTERDOWN Hash slot not served",
                )));
                continue;
            };
            match groups.iter_mut().find(|(n, _)| Arc::ptr_eq(&n.1, &node.1)) {
                Some((_, idx)) => idx.push(i),
                None => groups.push((node, vec![i])),
            }
        }
        let mut tasks = vec![];
        for ((addr, pool), idx) in groups {
            let batch: Vec<Vec<Bytes>> = idx.iter().map(|&i| cmds[i].clone()).collect();
            let pool = pool.clone();
            let task = tokio::spawn(async move { pool.run(&batch).await });
            tasks.push((addr.clone(), idx, task));
        }
        let mut unsent = vec![];
        let mut first_error = None;
        for (addr, idx, task) in tasks {
            match task.await.unwrap_or(Err(ConnError::Lost)) {
                Ok(replies) => {
                    for (i, v) in idx.into_iter().zip(replies) {
                        out[i] = Some(v);
                    }
                }
                Err(e) => {
                    tracing::warn!(node = %addr, error = %e, "cluster node failed");
                    for &i in &idx {
                        out[i] = Some(failed(&addr, &e));
                    }
                    if nothing_sent(&e) {
                        unsent.extend(idx);
                    }
                    first_error = first_error.or(Some(e));
                }
            }
        }
        (unsent, first_error)
    }

    /// Follows MOVED/ASK redirects for one command.
    async fn follow(&self, cmd: &[Bytes], mut reply: Value) -> Result<Value, ConnError> {
        for _ in 0..MAX_REDIRECTS {
            match redirect(&reply) {
                Some(Redirect::Moved(addr)) => {
                    // The map is stale; refresh it for the next requests.
                    let _ = self.refresh().await;
                    let Some(pool) = self.pool_for(&addr) else {
                        return Ok(reply);
                    };
                    reply = pool.run(&[cmd.to_vec()]).await?.pop().unwrap_or(Value::Nil);
                }
                Some(Redirect::Ask(addr)) => {
                    let Some(pool) = self.pool_for(&addr) else {
                        return Ok(reply);
                    };
                    let batch = [vec![Bytes::from_static(b"ASKING")], cmd.to_vec()];
                    reply = pool.run(&batch).await?.pop().unwrap_or(Value::Nil);
                }
                None => return Ok(reply),
            }
        }
        Ok(reply)
    }

    /// SCRIPT LOAD / FLUSH / EXISTS on every master that can be reached (a
    /// master that is down gets the script when a client's EVALSHA finds it
    /// missing there: NOSCRIPT, then EVAL).
    async fn broadcast(&self, map: &SlotMap, cmd: &[Bytes]) -> Result<Value, ConnError> {
        let mut combined: Option<Value> = None;
        let mut unreachable = None;
        for (addr, pool) in &map.masters {
            let v = match pool.run(&[cmd.to_vec()]).await {
                Ok(mut v) => v.pop().unwrap_or(Value::Nil),
                Err(e) if nothing_sent(&e) => {
                    tracing::warn!(node = %addr, error = %e, "cluster node failed");
                    unreachable = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if v.is_error() {
                return Ok(v);
            }
            combined = Some(match (combined, v) {
                // SCRIPT EXISTS: a script exists only if every master has it.
                (Some(Value::Array(a)), Value::Array(b)) => Value::Array(
                    a.into_iter()
                        .zip(b)
                        .map(|(x, y)| match (x, y) {
                            (Value::Int(x), Value::Int(y)) => Value::Int(x.min(y)),
                            (x, _) => x,
                        })
                        .collect(),
                ),
                (Some(prev), _) => prev,
                (None, v) => v,
            });
        }
        match (combined, unreachable) {
            (Some(v), _) => Ok(v),
            (None, Some(e)) => Err(e),
            (None, None) => Ok(Value::Nil),
        }
    }

    /// MULTI, commands, EXEC on the node owning the commands' one slot.
    pub async fn run_transaction(
        &self,
        batch: &[Vec<Bytes>],
        table: &CommandTable,
    ) -> Result<Vec<Value>, ConnError> {
        let n = batch.len().saturating_sub(2);
        let inner = &batch[1..1 + n];
        let mut slot = None;
        for c in inner {
            match command_slot(c, table) {
                Ok(Some(s)) if slot.is_some_and(|x| x != s) => return Ok(refused(n, crossslot())),
                Ok(Some(s)) => slot = Some(s),
                Ok(None) => {}
                Err(e) => return Ok(refused(n, e)),
            }
        }
        for attempt in 0..2 {
            let map = self.loaded().await?;
            let Some((addr, pool)) = map.master_of(slot) else {
                let e = Value::Error(Bytes::from_static(b"CLUSTERDOWN Hash slot not served"));
                return Ok(refused(n, e));
            };
            let out = match pool.run(batch).await {
                Ok(out) => out,
                Err(e) if nothing_sent(&e) && attempt == 0 => {
                    // Send it again only to a new owner of the slot.
                    self.refresh_after_failure().await;
                    let now = self.current();
                    if now.master_of(slot).is_some_and(|(a, _)| a != addr) {
                        continue;
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            // A MOVED while queueing aborted the transaction before anything
            // ran, so it is safe to send it again to the right node.
            let moved = out
                .iter()
                .take(n + 1)
                .any(|v| matches!(redirect(v), Some(Redirect::Moved(_))));
            if moved && attempt == 0 {
                self.refresh().await?;
                continue;
            }
            if out.iter().any(is_cluster_changing) {
                self.refresh_after_failure().await;
            }
            return Ok(out);
        }
        Ok(refused(n, crossslot()))
    }

    /// A keyless command on the first master that can be reached.
    pub async fn run_any(&self, cmd: &[&str]) -> Result<Value, ConnError> {
        let map = self.loaded().await?;
        let mut err = ConnError::Closed;
        for (_, pool) in &map.masters {
            match pool.run(&[cmd.to_vec()]).await {
                Ok(mut v) => return Ok(v.pop().unwrap_or(Value::Nil)),
                Err(e) if nothing_sent(&e) => err = e,
                Err(e) => return Err(e),
            }
        }
        self.refresh_after_failure().await;
        Err(err)
    }

    /// Every master of the map with the slots it serves, asked for its
    /// `CLUSTER INFO` at once: a master that does not answer, or answers
    /// that the cluster is not ok, serves none of its slots.
    pub async fn health(&self) -> Result<Vec<NodeHealth>, ConnError> {
        let map = self.loaded().await?;
        let counts = map.slot_counts();
        let mut tasks = vec![];
        for ((addr, pool), slots) in map.masters.iter().zip(counts) {
            let pool = pool.clone();
            let timeout = self.connect_timeout;
            let ask = async move {
                let cmd = [vec!["CLUSTER", "INFO"]];
                match tokio::time::timeout(timeout, pool.run(&cmd)).await {
                    Ok(Ok(mut v)) => match v.pop() {
                        Some(Value::Bulk(text)) | Some(Value::Simple(text))
                            if text.windows(16).any(|w| w == b"cluster_state:ok") =>
                        {
                            None
                        }
                        Some(Value::Error(e)) => Some(String::from_utf8_lossy(&e).into_owned()),
                        _ => Some("cluster state not ok".to_string()),
                    },
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some("no answer in time".to_string()),
                }
            };
            tasks.push((addr.clone(), slots, tokio::spawn(ask)));
        }
        let mut nodes = vec![];
        for (addr, slots, task) in tasks {
            let problem = task
                .await
                .unwrap_or_else(|_| Some("health check failed".to_string()));
            nodes.push(NodeHealth {
                addr,
                slots,
                problem,
            });
        }
        if nodes.iter().any(|n| n.problem.is_some()) {
            self.refresh_after_failure().await;
        }
        Ok(nodes)
    }
}

/// A reply `failed` made: the command did not reach its node.
fn is_unreachable(v: &Value) -> bool {
    matches!(v, Value::Error(e) if e.starts_with(b"TRYAGAIN redis node ") || e.starts_with(b"ERR redis node "))
}

/// A transaction refused before sending: the MULTI slot carries the error.
fn refused(n: usize, e: Value) -> Vec<Value> {
    let mut v = vec![e];
    v.extend((0..n + 1).map(|_| Value::Nil));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redirects() {
        let v = Value::Error(Bytes::from_static(b"MOVED 3999 127.0.0.1:6381"));
        assert!(matches!(redirect(&v), Some(Redirect::Moved(a)) if a == "127.0.0.1:6381"));
        let v = Value::Error(Bytes::from_static(b"ASK 3999 10.0.0.1:7000"));
        assert!(matches!(redirect(&v), Some(Redirect::Ask(a)) if a == "10.0.0.1:7000"));
        assert!(redirect(&Value::Error(Bytes::from_static(b"ERR x"))).is_none());
    }

    #[test]
    fn unreachable_nodes_fail_their_commands_only() {
        let refused =
            ConnError::Connect(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let v = failed("127.0.0.1:7001", &refused);
        assert!(v
            .error_text()
            .unwrap()
            .starts_with("TRYAGAIN redis node 127.0.0.1:7001 unreachable"));
        assert!(is_unreachable(&v) && is_cluster_changing(&v));
        let v = failed("127.0.0.1:7001", &ConnError::Lost);
        assert!(v
            .error_text()
            .unwrap()
            .starts_with("ERR redis node 127.0.0.1:7001"));
        assert!(is_unreachable(&v) && !is_cluster_changing(&v));
    }
}
