//! Contention through the real gateway and a real `redis-server`: several OS
//! processes (this test binary run again as children) and many threads
//! hammering one key.
//!
//! - Rate limits: every decision's Redis time comes back with it, so the
//!   parent replays the observed decisions through the in-memory store at
//!   those times and requires the same answers, besides checking each
//!   algorithm's invariant (a fixed window admits exactly its limit once
//!   demand exceeds it, never more).
//! - Several limits as one call: the calls each limit was charged are
//!   exactly the calls admitted, whichever limit denied the others.
//! - Leases: at no instant more than `max` held, by a sweep over intervals
//!   during which each lease is known to be held.
//! - A Redis crash and restart with persistence on loses no lease and counts
//!   none twice; calls during the outage fail with a typed error, promptly.
//! - A holder killed with SIGKILL keeps its slot until its lease expires,
//!   not a millisecond less.

mod children;
mod holder;
mod leases;
mod multi;
mod quota;
mod rate;
mod replay;
mod restart;
mod setup;
