//! Redis Cluster routing: hash slots, per-node pools, MOVED/ASK.
//!
//! Commands are routed by the hash slot of their keys (key positions from the
//! server's `COMMAND` table; EVAL-family keys from `numkeys`). A request's
//! commands that map to one node travel as one pipeline to it; different
//! nodes are served concurrently. A MOVED reply refreshes the slot map and
//! resends the command to the node named in it; ASK sends `ASKING` and the
//! command together, contiguously, to the importing node. Routing is only a
//! first guess: Redis checks every key itself and answers CROSSSLOT or
//! MOVED, so an imprecise guess costs a redirect, never a wrong answer.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::conn::ConnError;
use crate::policy::{lower_name, sub_name, CommandTable};
use crate::pool::Pool;
use crate::resp::Value;
use crate::target::Target;

const SLOTS: usize = 16384;
const UNASSIGNED: u16 = u16::MAX;
/// Redirects followed for one command before giving up.
const MAX_REDIRECTS: usize = 3;

struct SlotMap {
    /// Node index per slot.
    slots: Vec<u16>,
    nodes: Vec<(String, Arc<Pool>)>,
}

pub struct Cluster {
    seed: Target,
    pool_size: usize,
    connect_timeout: Duration,
    map: RwLock<Arc<SlotMap>>,
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
}

/// CRC16/XMODEM, the checksum Redis Cluster hashes keys with.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Hash slot of a key, honouring `{hash tags}`.
pub fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS as u16
}

/// The keys of a command, as far as the command table tells.
fn keys<'a>(args: &'a [Bytes], table: &CommandTable) -> Vec<&'a Bytes> {
    let name = lower_name(args);
    match name.as_str() {
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => {
            let n = args
                .get(2)
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            args.iter().skip(3).take(n).collect()
        }
        _ => {
            let sub = sub_name(&name, args);
            let Some(spec) = table.key_spec(&name, sub.as_deref()) else {
                return vec![];
            };
            if spec.first <= 0 {
                return vec![];
            }
            let last = if spec.last < 0 {
                args.len() as i64 + spec.last
            } else {
                spec.last
            };
            let step = spec.step.max(1) as usize;
            (spec.first..=last.min(args.len() as i64 - 1))
                .step_by(step)
                .filter_map(|i| args.get(i as usize))
                .collect()
        }
    }
}

fn crossslot() -> Value {
    Value::Error(Bytes::from_static(
        b"CROSSSLOT Keys in request don't hash to the same slot",
    ))
}

/// The one slot of a command: `Ok(None)` when it has no keys.
fn command_slot(args: &[Bytes], table: &CommandTable) -> Result<Option<u16>, Value> {
    let mut found = None;
    for k in keys(args, table) {
        let s = slot(k);
        match found {
            None => found = Some(s),
            Some(f) if f != s => return Err(crossslot()),
            _ => {}
        }
    }
    Ok(found)
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

impl Cluster {
    pub fn new(seed: Target, pool_size: usize, connect_timeout: Duration) -> Cluster {
        Cluster {
            seed,
            pool_size,
            connect_timeout,
            map: RwLock::new(Arc::new(SlotMap {
                slots: vec![UNASSIGNED; SLOTS],
                nodes: vec![],
            })),
            last_refresh: tokio::sync::Mutex::new(None),
        }
    }

    fn current(&self) -> Arc<SlotMap> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn node_target(&self, addr: &str) -> Option<Target> {
        let (host, port) = addr.rsplit_once(':')?;
        let mut t = self.seed.clone();
        t.host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        t.port = port.parse().ok()?;
        // Cluster mode has only database 0.
        t.db = 0;
        Some(t)
    }

    fn new_pool(&self, t: Target) -> Arc<Pool> {
        Arc::new(Pool::new(t, self.pool_size, self.connect_timeout))
    }

    /// The pool for `host:port`, creating one for a node not in the map yet.
    fn pool_for(&self, addr: &str) -> Option<Arc<Pool>> {
        let map = self.current();
        if let Some((_, p)) = map.nodes.iter().find(|(a, _)| a == addr) {
            return Some(p.clone());
        }
        self.node_target(addr).map(|t| self.new_pool(t))
    }

    /// Loads the slot map once; later calls return the cached one.
    async fn loaded(&self) -> Result<Arc<SlotMap>, ConnError> {
        let map = self.current();
        if !map.nodes.is_empty() {
            return Ok(map);
        }
        self.refresh().await?;
        Ok(self.current())
    }

    /// Reads CLUSTER SLOTS from a known node (or the seed) and swaps the map.
    pub async fn refresh(&self) -> Result<(), ConnError> {
        let asked = Instant::now();
        let mut last = self.last_refresh.lock().await;
        let map = self.current();
        // A refresh that finished while this one waited already saw what
        // prompted it (a burst of MOVED replies causes one refresh).
        if last.is_some_and(|t| t > asked) && !map.nodes.is_empty() {
            return Ok(());
        }
        let mut sources: Vec<(String, Arc<Pool>)> = map.nodes.clone();
        let seed_addr = format!("{}:{}", self.seed.host, self.seed.port);
        if !sources.iter().any(|(a, _)| *a == seed_addr) {
            sources.push((seed_addr, self.new_pool(self.seed.clone())));
        }
        let mut err = ConnError::Closed;
        for (addr, pool) in sources {
            match pool.run(&[vec!["CLUSTER", "SLOTS"]]).await {
                Ok(v) => {
                    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or("");
                    let new = self.build(&v[0], host, &map);
                    if !new.nodes.is_empty() {
                        tracing::info!(nodes = new.nodes.len(), "cluster slot map loaded");
                        *self.map.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
                        *last = Some(Instant::now());
                        return Ok(());
                    }
                }
                Err(e) => err = e,
            }
        }
        Err(err)
    }

    fn build(&self, reply: &Value, queried_host: &str, old: &SlotMap) -> SlotMap {
        let mut slots = vec![UNASSIGNED; SLOTS];
        let mut nodes: Vec<(String, Arc<Pool>)> = vec![];
        let Value::Array(ranges) = reply else {
            return SlotMap { slots, nodes };
        };
        for r in ranges {
            let Value::Array(f) = r else { continue };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
                (f.first(), f.get(1), f.get(2))
            else {
                continue;
            };
            let (Some(Value::Bulk(host)), Some(Value::Int(port))) = (master.first(), master.get(1))
            else {
                continue;
            };
            // An empty host means "the address you reached me on".
            let host = match std::str::from_utf8(host) {
                Ok("") | Ok("?") | Err(_) => queried_host.to_string(),
                Ok(h) => h.to_string(),
            };
            let addr = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            let idx = match nodes.iter().position(|(a, _)| *a == addr) {
                Some(i) => i,
                None => {
                    let pool = old
                        .nodes
                        .iter()
                        .find(|(a, _)| *a == addr)
                        .map(|(_, p)| p.clone())
                        .or_else(|| self.node_target(&addr).map(|t| self.new_pool(t)));
                    let Some(pool) = pool else { continue };
                    nodes.push((addr, pool));
                    nodes.len() - 1
                }
            };
            let (start, end) = (
                (*start).clamp(0, 16383) as usize,
                (*end).clamp(0, 16383) as usize,
            );
            for s in &mut slots[start..=end] {
                *s = idx as u16;
            }
        }
        SlotMap { slots, nodes }
    }

    fn pool_of_slot(map: &SlotMap, slot: Option<u16>) -> Option<Arc<Pool>> {
        let idx = match slot {
            Some(s) => map.slots[s as usize],
            None => 0,
        };
        map.nodes.get(idx as usize).map(|(_, p)| p.clone())
    }

    /// Runs independent commands; replies come back in request order.
    pub async fn run(
        &self,
        cmds: &[Vec<Bytes>],
        table: &CommandTable,
    ) -> Result<Vec<Value>, ConnError> {
        let map = self.loaded().await?;
        let mut out: Vec<Option<Value>> = vec![None; cmds.len()];
        let mut groups: Vec<(Arc<Pool>, Vec<usize>)> = vec![];
        for (i, c) in cmds.iter().enumerate() {
            if is_broadcast(c) {
                out[i] = Some(self.broadcast(&map, c).await?);
                continue;
            }
            let pool = match command_slot(c, table) {
                Err(e) => {
                    out[i] = Some(e);
                    continue;
                }
                Ok(s) => Self::pool_of_slot(&map, s),
            };
            let Some(pool) = pool else {
                out[i] = Some(Value::Error(Bytes::from_static(
                    b"CLUSTERDOWN Hash slot not served",
                )));
                continue;
            };
            match groups.iter_mut().find(|(p, _)| Arc::ptr_eq(p, &pool)) {
                Some((_, idx)) => idx.push(i),
                None => groups.push((pool, vec![i])),
            }
        }

        // One pipeline per node, all nodes at once.
        let mut tasks = vec![];
        for (pool, idx) in groups {
            let batch: Vec<Vec<Bytes>> = idx.iter().map(|&i| cmds[i].clone()).collect();
            tasks.push((idx, tokio::spawn(async move { pool.run(&batch).await })));
        }
        for (idx, task) in tasks {
            let replies = task.await.map_err(|_| ConnError::Lost)??;
            for (i, v) in idx.into_iter().zip(replies) {
                out[i] = Some(v);
            }
        }

        let mut out: Vec<Value> = out.into_iter().map(|v| v.unwrap_or(Value::Nil)).collect();
        for (i, v) in out.iter_mut().enumerate() {
            if redirect(v).is_some() {
                *v = self.follow(&cmds[i], v.clone()).await?;
            }
        }
        Ok(out)
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

    /// SCRIPT LOAD / FLUSH / EXISTS on every master.
    async fn broadcast(&self, map: &SlotMap, cmd: &[Bytes]) -> Result<Value, ConnError> {
        let mut combined: Option<Value> = None;
        for (_, pool) in &map.nodes {
            let v = pool.run(&[cmd.to_vec()]).await?.pop().unwrap_or(Value::Nil);
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
        Ok(combined.unwrap_or(Value::Nil))
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
            let Some(pool) = Self::pool_of_slot(&map, slot) else {
                let e = Value::Error(Bytes::from_static(b"CLUSTERDOWN Hash slot not served"));
                return Ok(refused(n, e));
            };
            let out = pool.run(batch).await?;
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
            return Ok(out);
        }
        Ok(refused(n, crossslot()))
    }

    pub async fn run_any(&self, cmd: &[&str]) -> Result<Value, ConnError> {
        let map = self.loaded().await?;
        let pool = Self::pool_of_slot(&map, None).ok_or(ConnError::Closed)?;
        Ok(pool.run(&[cmd.to_vec()]).await?.pop().unwrap_or(Value::Nil))
    }
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
    fn slots_match_redis() {
        // Values from CLUSTER KEYSLOT.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
        assert_eq!(crc16(b"123456789"), 0x31c3);
    }

    #[test]
    fn parses_redirects() {
        let v = Value::Error(Bytes::from_static(b"MOVED 3999 127.0.0.1:6381"));
        assert!(matches!(redirect(&v), Some(Redirect::Moved(a)) if a == "127.0.0.1:6381"));
        let v = Value::Error(Bytes::from_static(b"ASK 3999 10.0.0.1:7000"));
        assert!(matches!(redirect(&v), Some(Redirect::Ask(a)) if a == "10.0.0.1:7000"));
        assert!(redirect(&Value::Error(Bytes::from_static(b"ERR x"))).is_none());
    }
}
