//! A fixed set of multiplexed connections, re-established on demand.
//!
//! A slot whose connection died (Redis restarted, network cut) reconnects on
//! the next request that lands on it; while Redis is down each such request
//! fails fast with a connection error instead of waiting.
//!
//! Each serving thread sends on its own share of the connections (with one
//! connection per thread, the default, on its own connection). A connection's
//! writer coalesces the jobs queued while it waits into one socket write, and
//! the jobs a thread queues in one pass over its ready requests then share
//! that write; spread round-robin over every connection they would be cut
//! into as many writes, each a read and a reply write for Redis.
//! `bench/gateway/run.sh` at 100 concurrent requests on 2 cores: 12.7 EVALSHA
//! calls per Redis read with two connections per thread (`POOL_SIZE=4`),
//! 21.5 with one.

use std::cell::Cell;
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
    /// Threads the slots are shared among: the runtime's workers.
    threads: usize,
}

/// Numbers the threads that send on pools, in the order they first do.
static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);
/// Threads the pools' connections are shared among (set by the gateway at
/// start; until then one thread uses them all).
static SHARING_THREADS: AtomicUsize = AtomicUsize::new(1);

/// Shares every pool made from now on among `threads` threads (the threads
/// serving connections).
pub fn share_among_threads(threads: usize) {
    SHARING_THREADS.store(threads, Ordering::Relaxed);
}

thread_local! {
    /// This thread's number (see [`number_this_thread`]) and how many
    /// requests it has sent.
    static THREAD: (Cell<Option<usize>>, Cell<usize>) = const { (Cell::new(None), Cell::new(0)) };
}

/// Numbers this thread among those sending on pools. The serving threads
/// take 0, 1, 2...: each then has its own share of every pool's connections.
/// Other threads are numbered when they first send.
pub fn number_this_thread(n: usize) {
    THREAD.with(|(number, _)| number.set(Some(n)));
}

/// The slot for this thread's next request (see [`slot`]).
fn slot_for_this_thread(slots: usize, threads: usize) -> usize {
    THREAD.with(|(number, sent)| {
        let n = number.get().unwrap_or_else(|| {
            let n = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
            number.set(Some(n));
            n
        });
        let turn = sent.get();
        sent.set(turn.wrapping_add(1));
        slot(slots, threads, n, turn)
    })
}

/// The slot of thread `number`'s request `turn` among `slots` shared by
/// `threads`: thread t uses the slots t, t + threads, t + 2 threads... (t
/// taken modulo the threads), in turn. With fewer slots than threads,
/// threads share them.
fn slot(slots: usize, threads: usize, number: usize, turn: usize) -> usize {
    let slots = slots.max(1);
    let threads = threads.clamp(1, slots);
    let first = number % threads;
    let share = (slots - first).div_ceil(threads);
    first + threads * (turn % share)
}

impl Pool {
    pub fn new(target: Target, size: usize, connect_timeout: Duration) -> Pool {
        let slots = (0..size.max(1))
            .map(|_| Slot {
                conn: RwLock::new(None),
                connecting: tokio::sync::Mutex::new(()),
            })
            .collect();
        let threads = SHARING_THREADS.load(Ordering::Relaxed);
        Pool {
            target,
            connect_timeout,
            slots,
            threads,
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
        let i = slot_for_this_thread(self.slots.len(), self.threads);
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

#[cfg(test)]
mod tests {
    use super::slot;
    use std::collections::BTreeSet;

    #[test]
    fn each_thread_has_its_own_slots_and_every_slot_is_used() {
        for slots in 1..=9 {
            for threads in 1..=6 {
                // Numbers are handed out process-wide: any run of
                // consecutive ones.
                let first_number = 7 * slots + threads;
                let shares: Vec<BTreeSet<usize>> = (first_number..first_number + threads)
                    .map(|number| {
                        (0..64)
                            .map(|turn| slot(slots, threads, number, turn))
                            .collect()
                    })
                    .collect();
                let used: BTreeSet<usize> = shares.iter().flatten().copied().collect();
                assert_eq!(
                    used,
                    (0..slots).collect(),
                    "{slots} slots, {threads} threads"
                );
                if threads <= slots {
                    let sizes: usize = shares.iter().map(BTreeSet::len).sum();
                    assert_eq!(sizes, slots, "shares overlap: {shares:?}");
                } else {
                    assert!(shares.iter().all(|s| s.len() == 1), "{shares:?}");
                }
            }
        }
    }
}
