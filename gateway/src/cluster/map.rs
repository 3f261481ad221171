//! The slot map: which master serves each hash slot, read from `CLUSTER SLOTS`.

use std::sync::Arc;

use crate::pool::Pool;
use crate::resp::Value;

use super::slot::SLOTS;

const UNASSIGNED: u16 = u16::MAX;

/// A node's `host:port` and its connections.
pub type Node = (String, Arc<Pool>);

pub struct SlotMap {
    /// Index into `masters` per slot, or `UNASSIGNED`.
    slots: Vec<u16>,
    pub masters: Vec<Node>,
    /// Every node the map names, masters first, then replicas: where a
    /// refresh can ask when masters are down.
    pub nodes: Vec<Node>,
}

impl SlotMap {
    pub fn empty() -> SlotMap {
        SlotMap {
            slots: vec![UNASSIGNED; SLOTS],
            masters: vec![],
            nodes: vec![],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.masters.is_empty()
    }

    /// The master serving `slot`; for a command without keys, the first
    /// master.
    pub fn master_of(&self, slot: Option<u16>) -> Option<&Node> {
        let index = match slot {
            Some(s) => self.slots[s as usize],
            None => 0,
        };
        self.masters.get(index as usize)
    }

    /// The connections to `addr`, if the map names it.
    pub fn pool(&self, addr: &str) -> Option<Arc<Pool>> {
        self.nodes
            .iter()
            .find(|(a, _)| a == addr)
            .map(|(_, p)| p.clone())
    }

    /// Slots each master serves, in the order of `masters`.
    pub fn slot_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.masters.len()];
        for &s in &self.slots {
            if let Some(c) = counts.get_mut(s as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// The map a `CLUSTER SLOTS` reply describes. `queried_host` stands for
    /// an empty host ("the address you reached me on"); `pool` gives the
    /// connections of a node (reused from the previous map when it had them).
    pub fn from_reply(
        reply: &Value,
        queried_host: &str,
        mut pool: impl FnMut(&str) -> Option<Arc<Pool>>,
    ) -> SlotMap {
        let mut map = SlotMap::empty();
        let mut replicas: Vec<String> = vec![];
        let Value::Array(ranges) = reply else {
            return map;
        };
        for r in ranges {
            let Value::Array(f) = r else { continue };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(master)) =
                (f.first(), f.get(1), f.get(2))
            else {
                continue;
            };
            let Some(addr) = node_addr(master, queried_host) else {
                continue;
            };
            replicas.extend(f.iter().skip(3).filter_map(|n| node_addr(n, queried_host)));
            let index = match map.masters.iter().position(|(a, _)| *a == addr) {
                Some(i) => i,
                None => {
                    let Some(p) = pool(&addr) else { continue };
                    map.masters.push((addr, p));
                    map.masters.len() - 1
                }
            };
            let (start, end) = (
                (*start).clamp(0, SLOTS as i64 - 1) as usize,
                (*end).clamp(0, SLOTS as i64 - 1) as usize,
            );
            for s in map.slots.iter_mut().take(end + 1).skip(start) {
                *s = index as u16;
            }
        }
        map.nodes = map.masters.clone();
        for addr in replicas {
            if map.nodes.iter().any(|(a, _)| *a == addr) {
                continue;
            }
            if let Some(p) = pool(&addr) {
                map.nodes.push((addr, p));
            }
        }
        map
    }
}

/// `host:port` of a node entry `[host, port, id, …]`.
fn node_addr(entry: &Value, queried_host: &str) -> Option<String> {
    let Value::Array(f) = entry else { return None };
    let (Some(Value::Bulk(host)), Some(Value::Int(port))) = (f.first(), f.get(1)) else {
        return None;
    };
    let host = match std::str::from_utf8(host) {
        Ok("") | Ok("?") | Err(_) => queried_host.to_string(),
        Ok(h) => h.to_string(),
    };
    Some(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}
