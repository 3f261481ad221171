//! A fixed set of multiplexed connections, re-established on demand.
//!
//! A slot whose connection died (Redis restarted, network cut) reconnects on
//! the next request that lands on it; while Redis is down each such request
//! fails fast with a connection error instead of waiting.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::conn::{Conn, ConnError};
use crate::resp::{self, Value};
use crate::target::Target;

struct Slot {
    conn: RwLock<Option<Arc<Conn>>>,
    // Serialises reconnects so a burst does not open one socket per request.
    connecting: tokio::sync::Mutex<()>,
}

pub struct Pool {
    target: Target,
    connect_timeout: Duration,
    slots: Vec<Slot>,
    next: AtomicUsize,
}

impl Pool {
    pub fn new(target: Target, size: usize, connect_timeout: Duration) -> Pool {
        let slots = (0..size.max(1))
            .map(|_| Slot {
                conn: RwLock::new(None),
                connecting: tokio::sync::Mutex::new(()),
            })
            .collect();
        Pool {
            target,
            connect_timeout,
            slots,
            next: AtomicUsize::new(0),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Requests sent on its connections and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|slot| slot.conn.read().ok()?.as_ref().map(|c| c.in_flight()))
            .sum()
    }

    /// Runs commands as one contiguous batch on one connection.
    pub async fn run<A: AsRef<[u8]>>(&self, cmds: &[Vec<A>]) -> Result<Vec<Value>, ConnError> {
        let mut payload = Vec::with_capacity(64 * cmds.len());
        for c in cmds {
            resp::encode_command(&mut payload, c);
        }
        self.run_encoded(payload, cmds.len()).await
    }

    async fn run_encoded(&self, payload: Vec<u8>, replies: usize) -> Result<Vec<Value>, ConnError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut payload = payload;
        // One retry, only when nothing was sent (the connection was found
        // closed), so a command never runs twice.
        for _ in 0..2 {
            let conn = self.conn(i).await?;
            match conn.send(payload, replies).await {
                Ok(v) => return Ok(v),
                Err((ConnError::Closed, Some(p))) => payload = p,
                Err((e, _)) => return Err(e),
            }
        }
        Err(ConnError::Closed)
    }

    async fn conn(&self, i: usize) -> Result<Arc<Conn>, ConnError> {
        let slot = &self.slots[i];
        if let Some(c) = live(slot) {
            return Ok(c);
        }
        let _guard = slot.connecting.lock().await;
        if let Some(c) = live(slot) {
            return Ok(c);
        }
        let c = Conn::connect(&self.target, self.connect_timeout).await?;
        tracing::info!(redis = ?self.target, slot = i, "connected to redis");
        *slot.conn.write().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
        Ok(c)
    }
}

fn live(slot: &Slot) -> Option<Arc<Conn>> {
    let g = slot.conn.read().unwrap_or_else(|p| p.into_inner());
    g.as_ref().filter(|c| !c.is_closed()).cloned()
}
