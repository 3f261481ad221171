//! In-isolate memory: sharded hash tables with per-key expiry and a bound on
//! the number of keys.

use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use hashbrown::hash_table::HashTable;

use super::contract::{Key, Store, Transition};
use super::multi::KeysTransition;
use crate::algorithm::{
    AnyState, BlockState, ConcurrencyState, FixedWindowState, GcraState, Lease, LogEntry,
    SlidingLogState, SlidingWindowState, StateKind, TokenBucketState,
};
use crate::{ConfigError, Error};

/// Keys kept by [`MemoryStore::new`].
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// Bytes of state kept by [`MemoryStore::new`]: the default number of keys
/// fits about three times over, and an isolate's memory (128 MB on Workers)
/// keeps room for everything else.
pub const DEFAULT_MAX_BYTES: usize = 32 << 20;

/// A shard is never made smaller than this, so the bound stays meaningful
/// when keys hash unevenly.
const MIN_KEYS_PER_SHARD: usize = 64;

/// State in memory, shared by every limiter (and thread) holding a clone.
///
/// - **Expiry**: each key expires when its state stops mattering (the TTL the
///   algorithm reports), and an expired key reads as absent at once. Its
///   memory is reclaimed when its shard needs room, or by
///   [`purge_expired`](Self::purge_expired). Not on a timer of the calls'
///   own time: after a clock steps back, an expired state is live again for
///   the earlier time, exactly as the Redis twin keeps it (Redis deletes
///   keys on its own clock, not the callers').
/// - **Bound**: at most `max_keys` keys and about `max_bytes` bytes (each
///   key's entry, a long id, a sliding log's records and a semaphore's
///   leases all count). A new key arriving at a full shard
///   first clears expired keys, then evicts the keys whose state held the
///   fewest units at its last step (the fewest admissions forgetting it can
///   grant), the soonest to expire among equals. A flood of distinct keys
///   therefore cannot grow memory without limit, nor free a client held at
///   its limit while the flood's keys hold less.
/// - **Concurrency**: keys are spread over shards, each behind its own
///   mutex held only for one decision; no global lock.
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

struct Shared {
    shards: Box<[Shard]>,
    shard_bits: u32,
    shard_capacity: usize,
    /// Bytes each shard may keep.
    shard_budget: usize,
    hashing: Hashing,
}

/// How keys are hashed, and the first prefix seen, known to every shard.
struct Hashing {
    hasher: foldhash::fast::FixedState,
    /// The first prefix the store sees (as a rule, of the only limiter
    /// using it), kept with its hash from its first call on: a call on it
    /// compares its prefix once, before taking any lock, and hashes only
    /// its id. Entries name it by [`FIRST`]; other prefixes are kept by
    /// each shard (see [`Prefixes`]). It never changes, so a prefix has
    /// one name in a shard for as long as the store lives.
    first: OnceLock<First>,
}

struct First {
    text: Box<str>,
    hash: u64,
}

/// How an entry names the store's first prefix; a prefix kept by its shard
/// is named by its index there plus one.
const FIRST: u32 = 0;

impl Hashing {
    /// `prefix`'s hash, and whether it is the first prefix.
    #[inline(always)]
    fn prefix(&self, prefix: &str) -> (u64, bool) {
        match self.first.get() {
            Some(first) if same_bytes(first.text.as_bytes(), prefix.as_bytes()) => {
                (first.hash, true)
            }
            _ => self.other_prefix(prefix),
        }
    }

    #[inline(never)]
    fn other_prefix(&self, prefix: &str) -> (u64, bool) {
        let first = self.first.get_or_init(|| First {
            text: prefix.into(),
            hash: prefix_hash(&self.hasher, prefix),
        });
        if same_bytes(first.text.as_bytes(), prefix.as_bytes()) {
            (first.hash, true)
        } else {
            (prefix_hash(&self.hasher, prefix), false)
        }
    }

    /// A key's hashes.
    #[inline(always)]
    fn key(&self, key: Key<'_>) -> Hashes {
        let (prefix, first) = self.prefix(key.prefix);
        Hashes {
            prefix,
            key: key_hash(&self.hasher, prefix, key.id.as_bytes()),
            first,
        }
    }
}

// Aligned so two shards' locks never share a cache line.
#[repr(align(128))]
struct Shard(Mutex<Table>);

struct Table {
    /// Where each key's entry is in `entries`, by the key's hash: 4 bytes a
    /// key (and a control byte), so that it stays in cache far longer than
    /// the entries.
    index: HashTable<u32>,
    /// The entries, in the order they came: a lookup reads the index, then
    /// one entry.
    entries: Vec<Entry>,
    /// The prefixes the entries name.
    prefixes: Prefixes,
    /// The ids too long to live inside their entry.
    long_ids: LongIds,
    /// What the shard keeps outside the table: long ids, prefixes, and the
    /// states kept behind a pointer with what they point to (see
    /// [`Slot::heap_bytes`]).
    heap: usize,
}

/// One key: exactly one cache line, so that a lookup among many keys costs
/// one miss (besides the table's control bytes, which stay in cache far
/// longer). The prefix, shared by all of a limiter's keys, is kept once per
/// shard and named by index; the id lives inside the entry up to
/// [`INLINE_ID`] bytes.
#[repr(align(64))]
struct Entry {
    /// Taken out while a transition runs on it.
    state: Slot,
    expires_at_ms: u64,
    /// Units the state held after its last step (saturated): what evicting
    /// it would give back.
    held: u32,
    /// Index of the key's prefix in the shard's [`Prefixes`].
    prefix: u32,
    /// The id's length then its bytes, zero-padded; or [`LONG_ID`] then
    /// its index in the shard's [`LongIds`] (little-endian).
    id: [u8; 16],
}

const _: () = assert!(size_of::<Entry>() == 64);

/// Ids up to this many bytes live inside the entry, so a lookup does not
/// chase a pointer: an IPv4 address fits, and short user ids.
const INLINE_ID: usize = 15;

/// The first byte of [`Entry::id`] for an id kept in [`LongIds`].
const LONG_ID: u8 = u8::MAX;

/// An id as entries are compared with it.
enum IdProbe<'a> {
    /// What [`Entry::id`] holds for this id.
    Inline([u8; 16]),
    Long(&'a [u8]),
}

impl<'a> IdProbe<'a> {
    #[inline]
    fn new(id: &'a str) -> Self {
        let id = id.as_bytes();
        let n = id.len();
        if n > INLINE_ID {
            return Self::Long(id);
        }
        // Fixed-size copies, overlapping, rather than a call to memcpy.
        let mut bytes = [0; 16];
        bytes[0] = n as u8;
        if n >= 8 {
            bytes[1..9].copy_from_slice(&id[..8]);
            bytes[n - 7..=n].copy_from_slice(&id[n - 8..]);
        } else if n >= 4 {
            bytes[1..5].copy_from_slice(&id[..4]);
            bytes[n - 3..=n].copy_from_slice(&id[n - 4..]);
        } else {
            for (to, &from) in bytes[1..].iter_mut().zip(id) {
                *to = from;
            }
        }
        Self::Inline(bytes)
    }
}

/// `a == b`, comparing 16 bytes at a time inline rather than calling
/// memcmp: prefixes are compared on every call.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 16 {
        return a == b;
    }
    // Whole chunks, then the last 16 bytes (overlapping the chunks).
    let chunk = |s: &[u8], i: usize| {
        let mut c = [0; 16];
        c.copy_from_slice(&s[i..i + 16]);
        u128::from_ne_bytes(c)
    };
    (0..(n - 1) / 16).all(|k| chunk(a, 16 * k) == chunk(b, 16 * k))
        && chunk(a, n - 16) == chunk(b, n - 16)
}

/// A state as an entry keeps it: the small ones in place, the two that grow
/// (a sliding log, a semaphore) behind a pointer, so that every entry fits
/// one cache line. A sliding log of one record or none, as most keys keep
/// when there are many of them, stays in place too.
enum Slot {
    Empty,
    FixedWindow(FixedWindowState),
    SlidingWindow(SlidingWindowState),
    TokenBucket(TokenBucketState),
    Gcra(GcraState),
    /// An empty sliding log and its `latest_ms`.
    NoRecord(u64),
    /// A sliding log of one record and its `latest_ms`.
    OneRecord(LogEntry, u64),
    SlidingLog(Box<SlidingLogState>),
    Concurrency(Box<ConcurrencyState>),
    Block(BlockState),
}

impl Slot {
    #[inline(always)]
    fn new(state: Option<AnyState>) -> Self {
        match state {
            None => Self::Empty,
            Some(AnyState::FixedWindow(s)) => Self::FixedWindow(s),
            Some(AnyState::SlidingWindow(s)) => Self::SlidingWindow(s),
            Some(AnyState::TokenBucket(s)) => Self::TokenBucket(s),
            Some(AnyState::Gcra(s)) => Self::Gcra(s),
            Some(AnyState::SlidingLog(s)) => Self::log(s),
            Some(AnyState::Concurrency(s)) => Self::Concurrency(Box::new(s)),
            Some(AnyState::Block(s)) => Self::Block(s),
        }
    }

    /// A sliding log, in place when it can be.
    #[inline]
    fn log(log: SlidingLogState) -> Self {
        match log.entries.len() {
            0 if log.total == 0 => Self::NoRecord(log.latest_ms),
            1 if log.total == log.entries[0].units => {
                Self::OneRecord(log.entries[0], log.latest_ms)
            }
            _ => Self::SlidingLog(Box::new(log)),
        }
    }

    /// A sliding log kept in place, as its state.
    fn short_log(record: Option<LogEntry>, latest_ms: u64) -> SlidingLogState {
        SlidingLogState {
            entries: record.into_iter().collect(),
            total: record.map_or(0, |r| r.units),
            latest_ms,
        }
    }

    /// The state, moved out: what is left behind is meaningless until
    /// [`put`](Self::put) (a state behind a pointer leaves its allocation,
    /// for `put` to reuse).
    #[inline(always)]
    fn take(&mut self) -> Option<AnyState> {
        match self {
            Self::SlidingLog(s) => Some(AnyState::SlidingLog(std::mem::take(&mut **s))),
            Self::Concurrency(s) => Some(AnyState::Concurrency(std::mem::take(&mut **s))),
            inline => inline.inline(),
        }
    }

    /// A copy of a state kept in the entry itself (`None` for the ones
    /// behind a pointer, and for none).
    #[inline(always)]
    fn inline(&self) -> Option<AnyState> {
        Some(match self {
            Self::Empty | Self::SlidingLog(_) | Self::Concurrency(_) => return None,
            Self::FixedWindow(s) => AnyState::FixedWindow(*s),
            Self::SlidingWindow(s) => AnyState::SlidingWindow(*s),
            Self::TokenBucket(s) => AnyState::TokenBucket(*s),
            Self::Gcra(s) => AnyState::Gcra(*s),
            Self::Block(s) => AnyState::Block(*s),
            Self::NoRecord(latest_ms) => AnyState::SlidingLog(Self::short_log(None, *latest_ms)),
            Self::OneRecord(record, latest_ms) => {
                AnyState::SlidingLog(Self::short_log(Some(*record), *latest_ms))
            }
        })
    }

    /// Keeps `state`.
    #[inline(always)]
    fn put(&mut self, state: Option<AnyState>) {
        match (state, self) {
            (Some(AnyState::SlidingLog(state)), Self::SlidingLog(kept))
                if state.entries.len() > 1 =>
            {
                **kept = state
            }
            (Some(AnyState::Concurrency(state)), Self::Concurrency(kept)) => **kept = state,
            (state, slot) => *slot = Self::new(state),
        }
    }

    /// A copy of the state.
    fn get(&self) -> Option<AnyState> {
        match self {
            Self::SlidingLog(s) => Some(AnyState::SlidingLog(SlidingLogState::clone(s))),
            Self::Concurrency(s) => Some(AnyState::Concurrency(ConcurrencyState::clone(s))),
            inline => inline.inline(),
        }
    }

    /// Bytes kept outside the entry: a state behind a pointer, and what it
    /// keeps on the heap itself (see [`AnyState::heap_bytes`]).
    #[inline]
    fn heap_bytes(&self) -> usize {
        match self {
            Self::SlidingLog(log) => {
                size_of::<SlidingLogState>() + log.entries.capacity() * size_of::<LogEntry>()
            }
            Self::Concurrency(semaphore) => {
                size_of::<ConcurrencyState>() + semaphore.leases.capacity() * size_of::<Lease>()
            }
            _ => 0,
        }
    }
}

/// The prefixes of a shard's keys, each kept once, with the number of
/// entries naming it: a prefix no entry names is dropped.
#[derive(Default)]
struct Prefixes {
    /// Indices into `slots`, by the prefix's hash.
    index: HashTable<u32>,
    slots: Vec<PrefixSlot>,
    /// Indices of unused slots.
    free: Vec<u32>,
    /// The slot found last, tried first: a shard mostly serves one limiter
    /// or a few.
    last: u32,
}

struct PrefixSlot {
    text: Box<str>,
    hash: u64,
    /// Entries naming it; 0 for an unused slot.
    keys: usize,
}

/// Bytes a kept prefix counts for.
fn prefix_bytes(prefix: &str) -> usize {
    prefix.len() + size_of::<PrefixSlot>() + size_of::<u32>()
}

/// A count of entries or slots as an index (a shard cannot hold 2^32
/// entries: they would take 256 GiB).
fn to_u32(len: usize) -> u32 {
    u32::try_from(len).expect("fewer than 2^32 keys in a shard")
}

impl Prefixes {
    #[inline(always)]
    fn find(&mut self, hash: u64, prefix: &str) -> Option<u32> {
        if let Some(last) = self.slots.get(self.last as usize) {
            if last.keys > 0 && same_bytes(last.text.as_bytes(), prefix.as_bytes()) {
                return Some(self.last);
            }
        }
        self.find_other(hash, prefix)
    }

    /// [`find`](Self::find) past the slot found last.
    #[inline(never)]
    fn find_other(&mut self, hash: u64, prefix: &str) -> Option<u32> {
        let slots = &self.slots;
        let found = *self
            .index
            .find(hash, |&i| *slots[i as usize].text == *prefix)?;
        self.last = found;
        Some(found)
    }

    /// The index of `prefix`, kept if new, counting one more entry naming
    /// it; and the bytes it takes if it is new.
    fn acquire(&mut self, hash: u64, prefix: &str) -> (u32, usize) {
        let (i, added) = match self.find(hash, prefix) {
            Some(i) => (i, 0),
            None => {
                let slot = PrefixSlot {
                    text: prefix.into(),
                    hash,
                    keys: 0,
                };
                let i = match self.free.pop() {
                    Some(i) => {
                        self.slots[i as usize] = slot;
                        i
                    }
                    None => {
                        self.slots.push(slot);
                        to_u32(self.slots.len() - 1)
                    }
                };
                let slots = &self.slots;
                self.index
                    .insert_unique(hash, i, |&j| slots[j as usize].hash);
                (i, prefix_bytes(prefix))
            }
        };
        self.slots[i as usize].keys += 1;
        (i, added)
    }

    /// One entry fewer names prefix `i`; the bytes freed.
    fn release(&mut self, i: u32) -> usize {
        let slot = &mut self.slots[i as usize];
        slot.keys -= 1;
        if slot.keys > 0 {
            return 0;
        }
        let text = std::mem::take(&mut slot.text);
        if let Ok(found) = self.index.find_entry(slot.hash, |&j| j == i) {
            found.remove();
        }
        self.free.push(i);
        prefix_bytes(&text)
    }

    #[inline]
    fn hash(&self, i: u32) -> u64 {
        self.slots[i as usize].hash
    }
}

/// Ids longer than [`INLINE_ID`], each named by its index.
#[derive(Default)]
struct LongIds {
    ids: Vec<Box<[u8]>>,
    /// Indices of unused slots.
    free: Vec<u32>,
}

/// Bytes a long id counts for.
fn long_id_bytes(id: &[u8]) -> usize {
    id.len() + size_of::<Box<[u8]>>()
}

impl LongIds {
    /// Keeps `id`; what [`Entry::id`] holds for it.
    fn add(&mut self, id: &[u8]) -> [u8; 16] {
        let i = match self.free.pop() {
            Some(i) => {
                self.ids[i as usize] = id.into();
                i
            }
            None => {
                self.ids.push(id.into());
                to_u32(self.ids.len() - 1)
            }
        };
        let mut bytes = [0; 16];
        bytes[0] = LONG_ID;
        bytes[1..5].copy_from_slice(&i.to_le_bytes());
        bytes
    }

    #[inline]
    fn get(&self, i: u32) -> &[u8] {
        &self.ids[i as usize]
    }

    /// Drops id `i`; the bytes freed.
    fn remove(&mut self, i: u32) -> usize {
        let id = std::mem::take(&mut self.ids[i as usize]);
        self.free.push(i);
        long_id_bytes(&id)
    }
}

/// A key's hashes: its prefix's alone, and the whole key's; and whether
/// its prefix is the store's first.
#[derive(Clone, Copy)]
struct Hashes {
    prefix: u64,
    key: u64,
    first: bool,
}

fn prefix_hash(hasher: &foldhash::fast::FixedState, prefix: &str) -> u64 {
    let mut hasher = hasher.build_hasher();
    hasher.write(prefix.as_bytes());
    hasher.finish()
}

#[inline(always)]
fn key_hash(hasher: &foldhash::fast::FixedState, prefix_hash: u64, id: &[u8]) -> u64 {
    let mut hasher = hasher.build_hasher();
    hasher.write_u64(prefix_hash);
    hasher.write(id);
    hasher.finish()
}

impl Entry {
    /// Index of this entry's id in [`LongIds`], when it is kept there.
    #[inline]
    fn long_id(&self) -> Option<u32> {
        (self.id[0] == LONG_ID).then(|| {
            let [_, a, b, c, d, ..] = self.id;
            u32::from_le_bytes([a, b, c, d])
        })
    }

    #[inline]
    fn id<'a>(&'a self, long_ids: &'a LongIds) -> &'a [u8] {
        match self.long_id() {
            Some(i) => long_ids.get(i),
            None => &self.id[1..=usize::from(self.id[0])],
        }
    }

    #[inline]
    fn is(&self, prefix: u32, id: &IdProbe<'_>, long_ids: &LongIds) -> bool {
        self.prefix == prefix
            && match id {
                IdProbe::Inline(bytes) => self.id == *bytes,
                IdProbe::Long(id) => self.long_id().is_some_and(|i| long_ids.get(i) == *id),
            }
    }

    /// The hash this entry was stored under.
    fn hash(&self, prefixes: &Prefixes, long_ids: &LongIds, hashing: &Hashing) -> u64 {
        let prefix = match self.prefix.checked_sub(1) {
            Some(i) => prefixes.hash(i),
            // Set before any entry named it.
            None => hashing.first.get().map_or(0, |first| first.hash),
        };
        key_hash(&hashing.hasher, prefix, self.id(long_ids))
    }

    /// Runs `step` on this entry's state. A TTL of 0 marks the entry dead
    /// (at every time, as Redis deletes such a key) rather than removing
    /// it: the key is likely to come back (a permit released, a bucket full
    /// again), and eviction reclaims it first if not.
    #[inline]
    fn run<S: StateKind, R>(
        &mut self,
        now_ms: u64,
        step: impl FnOnce(&mut Option<S>) -> Result<(R, u64), Error>,
        held: impl FnOnce(&R) -> u64,
    ) -> Result<R, Error> {
        let live = self.expires_at_ms > now_ms;
        let mut state = if live {
            self.state.take().and_then(S::from_any)
        } else {
            None
        };
        match step(&mut state) {
            Ok((output, ttl_ms)) => {
                self.state.put(state.map(StateKind::into_any));
                self.held = saturate(held(&output));
                self.expires_at_ms = match ttl_ms {
                    0 => 0,
                    ttl_ms => now_ms.saturating_add(ttl_ms),
                };
                Ok(output)
            }
            Err(error) => {
                // The step left the state as it was; an expired entry was
                // not touched at all.
                if live {
                    self.state.put(state.map(StateKind::into_any));
                }
                Err(error)
            }
        }
    }
}

/// Drops what `entry`, leaving the table, kept elsewhere; the bytes freed.
fn forget(entry: &Entry, prefixes: &mut Prefixes, long_ids: &mut LongIds) -> usize {
    let id = entry.long_id().map_or(0, |i| long_ids.remove(i));
    let prefix = entry
        .prefix
        .checked_sub(1)
        .map_or(0, |i| prefixes.release(i));
    entry.state.heap_bytes() + id + prefix
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.shared.shards.len())
            .field("max_keys", &self.max_keys())
            .field("max_bytes", &self.max_bytes())
            .finish()
    }
}

impl MemoryStore {
    /// A store keeping at most [`DEFAULT_MAX_KEYS`] keys.
    pub fn new() -> Self {
        Self::with_max_keys(DEFAULT_MAX_KEYS)
    }

    /// A store keeping at most `max_keys` keys (at least 1) and
    /// [`DEFAULT_MAX_BYTES`].
    pub fn with_max_keys(max_keys: usize) -> Self {
        Self::build(max_keys.max(1), DEFAULT_MAX_BYTES)
    }

    /// A store keeping at most `max_keys` keys and about `max_bytes` bytes
    /// of state, whichever bound comes first. Both must be at least 1.
    pub fn with_bounds(max_keys: usize, max_bytes: usize) -> Result<Self, ConfigError> {
        if max_keys == 0 {
            return Err(ConfigError::Zero { what: "max_keys" });
        }
        if max_bytes == 0 {
            return Err(ConfigError::Zero { what: "max_bytes" });
        }
        Ok(Self::build(max_keys, max_bytes))
    }

    fn build(max_keys: usize, max_bytes: usize) -> Self {
        let mut shard_bits = default_shard_count().trailing_zeros();
        while shard_bits > 0 && max_keys >> shard_bits < MIN_KEYS_PER_SHARD {
            shard_bits -= 1;
        }
        let shards = (0..1usize << shard_bits)
            .map(|_| {
                Shard(Mutex::new(Table {
                    index: HashTable::new(),
                    entries: Vec::new(),
                    prefixes: Prefixes::default(),
                    long_ids: LongIds::default(),
                    heap: 0,
                }))
            })
            .collect();
        Self {
            shared: Arc::new(Shared {
                shards,
                shard_bits,
                // Rounding down keeps the total at or below max_keys.
                shard_capacity: max_keys >> shard_bits,
                shard_budget: (max_bytes >> shard_bits).max(1),
                // A seed of the crate's generator: from the OS's randomness
                // natively, from the host's in WebAssembly (which has none of
                // its own: foldhash's default seed there comes from addresses,
                // and costs the module a kilobyte).
                hashing: Hashing {
                    hasher: foldhash::fast::FixedState::with_seed(crate::random::next_u64()),
                    first: OnceLock::new(),
                },
            }),
        }
    }

    /// The most keys this store keeps.
    pub fn max_keys(&self) -> usize {
        self.shared.shard_capacity << self.shared.shard_bits
    }

    /// The bytes of state this store keeps at most (about: a single state
    /// larger than a shard's share is kept alone).
    pub fn max_bytes(&self) -> usize {
        self.shared.shard_budget << self.shared.shard_bits
    }

    /// Bytes of state held now, as the bound counts them.
    pub fn bytes(&self) -> usize {
        self.shared.shards.iter().map(|s| s.lock().bytes(0)).sum()
    }

    /// Keys held in memory, including expired ones not yet swept.
    pub fn len(&self) -> usize {
        self.shared
            .shards
            .iter()
            .map(|s| s.lock().entries.len())
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every key expired at `now_ms` now, rather than when room is
    /// needed.
    pub fn purge_expired(&self, now_ms: u64) {
        for shard in self.shared.shards.iter() {
            let mut table = shard.lock();
            let hashing = &self.shared.hashing;
            table.sweep(now_ms, hashing);
            // Give the table's spare room back too.
            let Table {
                index,
                entries,
                prefixes,
                long_ids,
                ..
            } = &mut *table;
            entries.shrink_to_fit();
            index.shrink_to_fit(|&i| entries[i as usize].hash(prefixes, long_ids, hashing));
        }
    }

    #[inline]
    fn hashes(&self, key: Key<'_>) -> Hashes {
        self.shared.hashing.key(key)
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard {
        &self.shared.shards[self.shard_index(hash)]
    }

    #[inline]
    fn shard_index(&self, hash: u64) -> usize {
        // Bits 32.. are unused by the table's bucket index and tag for any
        // table below 2^32 buckets.
        (hash >> 32) as usize & ((1 << self.shared.shard_bits) - 1)
    }
}

fn saturate(units: u64) -> u32 {
    u32::try_from(units).unwrap_or(u32::MAX)
}

fn default_shard_count() -> usize {
    #[cfg(target_arch = "wasm32")]
    {
        1 // single-threaded: one table, an uncontended lock
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        shards_for(std::thread::available_parallelism().map_or(4, usize::from))
    }
}

/// Four shards a core, so threads rarely wait on one another's lock; a
/// power of two (a shard is picked by a mask), and at most 64.
#[cfg(not(target_arch = "wasm32"))]
fn shards_for(cores: usize) -> usize {
    (cores * 4).next_power_of_two().min(64)
}

impl Shard {
    #[inline]
    fn lock(&self) -> MutexGuard<'_, Table> {
        // A poisoned lock means a panic elsewhere mid-update; every update
        // leaves the table consistent, so keep serving.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How much a shard may keep.
#[derive(Clone, Copy)]
struct Bounds {
    keys: usize,
    bytes: usize,
}

/// The capacity `entries` grows to when full: doubled (at least 4), as a
/// `Vec` grows, but chosen here so that the bound in bytes can count it
/// before it happens.
fn grown(capacity: usize) -> usize {
    (capacity * 2).max(4)
}

impl Table {
    /// Adds `key`, which is not held, making room first. Not generic: every
    /// kind of step shares this code (the WebAssembly module stays small).
    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        hashes: Hashes,
        key: Key<'_>,
        id: IdProbe<'_>,
        expires_at_ms: u64,
        held: u64,
        state: AnyState,
        now_ms: u64,
        bounds: Bounds,
        hashing: &Hashing,
    ) {
        let state = Slot::new(Some(state));
        let long_id = match id {
            IdProbe::Inline(_) => 0,
            IdProbe::Long(id) => long_id_bytes(id),
        };
        let heap = state.heap_bytes() + long_id;
        // A prefix of the shard counts as if new: making room may drop it.
        let prefix_room = match hashes.first {
            true => 0,
            false => prefix_bytes(key.prefix),
        };
        self.make_room(now_ms, bounds, 1, heap + prefix_room, hashing);
        let (prefix, prefix_added) = match hashes.first {
            true => (FIRST, 0),
            false => {
                let (i, added) = self.prefixes.acquire(hashes.prefix, key.prefix);
                (i + 1, added)
            }
        };
        let id = match id {
            IdProbe::Inline(bytes) => bytes,
            IdProbe::Long(id) => self.long_ids.add(id),
        };
        self.heap += heap + prefix_added;
        let entry = Entry {
            state,
            expires_at_ms,
            held: saturate(held),
            prefix,
            id,
        };
        let capacity = self.entries.capacity();
        if self.entries.len() == capacity {
            self.entries.reserve_exact(grown(capacity) - capacity);
        }
        let at = to_u32(self.entries.len());
        self.entries.push(entry);
        let Self {
            index,
            entries,
            prefixes,
            long_ids,
            ..
        } = self;
        index.insert_unique(hashes.key, at, |&i| {
            entries[i as usize].hash(prefixes, long_ids, hashing)
        });
    }

    /// Drops the entries `keep` refuses, and what they kept elsewhere.
    fn retain(&mut self, hashing: &Hashing, mut keep: impl FnMut(&Entry) -> bool) {
        let Self {
            index,
            entries,
            prefixes,
            long_ids,
            heap,
        } = self;
        let before = entries.len();
        entries.retain(|e| {
            let keep = keep(e);
            if !keep {
                *heap -= forget(e, prefixes, long_ids);
            }
            keep
        });
        if entries.len() == before {
            return;
        }
        // The entries moved: index them again (the index keeps its room).
        index.clear();
        for (at, entry) in entries.iter().enumerate() {
            let hash = entry.hash(prefixes, long_ids, hashing);
            index.insert_unique(hash, to_u32(at), |&i| {
                entries[i as usize].hash(prefixes, long_ids, hashing)
            });
        }
    }

    fn sweep(&mut self, now_ms: u64, hashing: &Hashing) {
        self.retain(hashing, |e| e.expires_at_ms > now_ms);
    }

    /// What the shard keeps with `keys` more keys: the index and the
    /// entries as allocated (grown when they must for those keys), and the
    /// entries' heap.
    fn bytes(&self, keys: usize) -> usize {
        let len = self.entries.len() + keys;
        let capacity = self.index.capacity().max(len);
        let buckets = match capacity {
            0 => 0,
            capacity => (capacity * 8 / 7).next_power_of_two(),
        };
        let mut entries = self.entries.capacity();
        if entries < len {
            entries = grown(entries).max(len);
        }
        // One control byte per bucket besides the index.
        buckets * (size_of::<u32>() + 1) + entries * size_of::<Entry>() + self.heap
    }

    /// Makes space for `keys` more keys keeping `heap` more bytes within
    /// `bounds` (none and nothing: back within them after a state grew).
    fn make_room(
        &mut self,
        now_ms: u64,
        bounds: Bounds,
        keys: usize,
        heap: usize,
        hashing: &Hashing,
    ) {
        let over =
            |t: &Self| t.entries.len() + keys > bounds.keys || t.bytes(keys) + heap > bounds.bytes;
        if over(self) {
            self.sweep(now_ms, hashing);
        }
        // Each round evicts at least one key. A shard keeps any one key,
        // however large (a state is bounded by its algorithm's limits): a
        // new key goes into an emptied shard, a grown one stays alone.
        let floor = usize::from(keys == 0);
        while over(self) && self.entries.len() > floor {
            self.evict(hashing);
        }
    }

    /// Evicts an eighth of the keys at once, so a flood pays for this scan
    /// rarely, and exactly an eighth: keys of one fixed window all hold the
    /// same and expire together, and evicting every tie would empty the
    /// shard. First the states holding the fewest units, whose loss grants
    /// the fewest admissions; among equals the soonest to expire.
    fn evict(&mut self, hashing: &Hashing) {
        let evict = (self.entries.len() / 8).max(1);
        let rank = |e: &Entry| (e.held, e.expires_at_ms);
        let mut ranks: Vec<(u32, u64)> = self.entries.iter().map(rank).collect();
        let (lower, &mut threshold, _) = ranks.select_nth_unstable(evict - 1);
        let mut ties_to_evict = evict - lower.iter().filter(|&&r| r < threshold).count();
        self.retain(hashing, |e| match rank(e).cmp(&threshold) {
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal if ties_to_evict > 0 => {
                ties_to_evict -= 1;
                false
            }
            _ => true,
        });
    }

    /// The prefix of `key` as its entry names it, if any entry does.
    #[inline(always)]
    fn prefix(&mut self, hashes: Hashes, key: Key<'_>) -> Option<u32> {
        match hashes.first {
            true => Some(FIRST),
            false => Some(self.prefixes.find(hashes.prefix, key.prefix)? + 1),
        }
    }

    /// The entry of `key`, if held.
    #[inline(always)]
    fn find_mut(&mut self, hashes: Hashes, key: Key<'_>, id: &IdProbe<'_>) -> Option<&mut Entry> {
        let prefix = self.prefix(hashes, key)?;
        let Self {
            index,
            entries,
            long_ids,
            ..
        } = self;
        let &at = index.find(hashes.key, |&i| {
            entries[i as usize].is(prefix, id, long_ids)
        })?;
        Some(&mut entries[at as usize])
    }

    /// Removes the entry of `key`, if held.
    fn remove(&mut self, hashes: Hashes, key: Key<'_>, id: &IdProbe<'_>, hashing: &Hashing) {
        let Some(prefix) = self.prefix(hashes, key) else {
            return;
        };
        let Self {
            index,
            entries,
            prefixes,
            long_ids,
            heap,
        } = self;
        let found = index.find_entry(hashes.key, |&i| {
            entries[i as usize].is(prefix, id, long_ids)
        });
        let Ok(found) = found else {
            return;
        };
        let (at, _) = found.remove();
        let entry = entries.swap_remove(at as usize);
        *heap -= forget(&entry, prefixes, long_ids);
        if let Some(moved) = entries.get(at as usize) {
            // The last entry took its place.
            let last = to_u32(entries.len());
            let hash = moved.hash(prefixes, long_ids, hashing);
            if let Some(i) = index.find_mut(hash, |&i| i == last) {
                *i = at;
            }
        }
    }

    /// Counts an entry's heap going from `before` to `after` bytes (a
    /// sliding log's or a semaphore's state grew or shrank), and gets back
    /// within `bounds` if it grew.
    #[inline]
    fn resized(
        &mut self,
        before: usize,
        after: usize,
        now_ms: u64,
        bounds: Bounds,
        hashing: &Hashing,
    ) {
        if after != before {
            self.heap = self.heap + after - before;
            if after > before {
                self.make_room(now_ms, bounds, 0, 0, hashing);
            }
        }
    }
}

impl MemoryStore {
    /// A copy of `key`'s state if it has a live one at `now_ms`, leaving it
    /// as it is.
    pub(crate) fn get(&self, key: Key<'_>, now_ms: u64) -> Option<AnyState> {
        let hashes = self.hashes(key);
        let id = IdProbe::new(key.id);
        let mut table = self.shard(hashes.key).lock();
        let entry = table.find_mut(hashes, key, &id)?;
        (entry.expires_at_ms > now_ms)
            .then(|| entry.state.get())
            .flatten()
    }

    /// Runs `step` atomically on `key`'s state at `now_ms`: the state (or
    /// `None`) in, the answer and the state's TTL out, as
    /// [`Transition::apply`] does. On error the state is left as it was.
    /// `held` reads from the answer the units the state holds (see
    /// [`Transition::held`]).
    #[inline]
    pub(crate) fn update<S: StateKind, R>(
        &self,
        key: Key<'_>,
        now_ms: u64,
        step: impl FnOnce(&mut Option<S>) -> Result<(R, u64), Error>,
        held: impl FnOnce(&R) -> u64,
    ) -> Result<R, Error> {
        let hashes = self.hashes(key);
        let mut table = self.shard(hashes.key).lock();
        self.update_in(&mut table, hashes, key, now_ms, step, held)
    }

    /// [`update`](Self::update) in `table`, the locked shard of `key`.
    #[inline]
    fn update_in<S: StateKind, R>(
        &self,
        table: &mut Table,
        hashes: Hashes,
        key: Key<'_>,
        now_ms: u64,
        step: impl FnOnce(&mut Option<S>) -> Result<(R, u64), Error>,
        held: impl FnOnce(&R) -> u64,
    ) -> Result<R, Error> {
        let id = IdProbe::new(key.id);
        let bounds = Bounds {
            keys: self.shared.shard_capacity,
            bytes: self.shared.shard_budget,
        };
        if let Some(entry) = table.find_mut(hashes, key, &id) {
            let before = entry.state.heap_bytes();
            let answer = entry.run(now_ms, step, held);
            let after = entry.state.heap_bytes();
            table.resized(before, after, now_ms, bounds, &self.shared.hashing);
            return answer;
        }
        let mut state = None;
        let (output, ttl_ms) = step(&mut state)?;
        if let Some(state) = state.filter(|_| ttl_ms > 0) {
            let expires_at_ms = now_ms.saturating_add(ttl_ms);
            table.insert(
                hashes,
                key,
                id,
                expires_at_ms,
                held(&output),
                state.into_any(),
                now_ms,
                bounds,
                &self.shared.hashing,
            );
        }
        Ok(output)
    }
}

impl Store for MemoryStore {
    #[inline]
    fn transact<T: Transition>(
        &self,
        key: Key<'_>,
        now_ms: u64,
        transition: &T,
    ) -> Result<T::Output, Error> {
        self.update(
            key,
            now_ms,
            |state| transition.apply(state, now_ms),
            |output| transition.held(output),
        )
    }

    fn transact_keys<T: KeysTransition>(
        &self,
        keys: &[Key<'_>],
        now_ms: u64,
        transition: &T,
    ) -> Result<T::Output, Error> {
        let hashes: Vec<Hashes> = keys.iter().map(|key| self.hashes(*key)).collect();
        let shards: Vec<usize> = hashes.iter().map(|h| self.shard_index(h.key)).collect();
        // Locked in the order of their index, so calls sharing shards never
        // wait for each other in a cycle.
        let mut order = shards.clone();
        order.sort_unstable();
        order.dedup();
        let mut tables: Vec<MutexGuard<'_, Table>> = order
            .iter()
            .map(|&i| self.shared.shards[i].lock())
            .collect();
        let table_of = |key: usize| order.partition_point(|&i| i < shards[key]);
        let mut states = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let id = IdProbe::new(key.id);
            let entry = tables[table_of(i)].find_mut(hashes[i], *key, &id);
            let live = entry.filter(|entry| entry.expires_at_ms > now_ms);
            states.push(live.and_then(|entry| entry.state.get()));
        }
        let (output, ttls) = transition.apply(&mut states, now_ms)?;
        for (i, (mut state, ttl)) in states.into_iter().zip(ttls).enumerate() {
            let Some(ttl) = ttl else { continue };
            let held = transition.held(&output, i);
            let write = |slot: &mut Option<AnyState>| {
                *slot = state.take();
                Ok(((), ttl))
            };
            let table = &mut tables[table_of(i)];
            self.update_in(table, hashes[i], keys[i], now_ms, write, |_| held)?;
        }
        Ok(output)
    }

    fn remove(&self, key: Key<'_>) -> Result<(), Error> {
        let hashes = self.hashes(key);
        let id = IdProbe::new(key.id);
        let mut table = self.shard(hashes.key).lock();
        table.remove(hashes, key, &id, &self.shared.hashing);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::GcraState;

    const KEY: Key<'static> = Key {
        prefix: "p:",
        id: "a",
    };
    const STATE: GcraState = GcraState {
        tat_ms: 1_500,
        tat_frac: 0,
    };

    fn keep(store: &MemoryStore, now_ms: u64, ttl_ms: u64) {
        let step = |state: &mut Option<GcraState>| {
            *state = Some(STATE);
            Ok(((), ttl_ms))
        };
        store.update(KEY, now_ms, step, |_| 0).unwrap();
    }

    #[test]
    fn a_copy_is_read_until_the_key_expires() {
        let store = MemoryStore::new();
        assert_eq!(store.get(KEY, 1_000), None);
        keep(&store, 1_000, 500);
        for _ in 0..2 {
            assert_eq!(store.get(KEY, 1_499), Some(AnyState::Gcra(STATE)));
        }
        assert_eq!(store.get(KEY, 1_500), None, "expired at its TTL");
        store.purge_expired(1_499);
        assert_eq!(store.len(), 1);
        assert!(!store.is_empty());
        store.purge_expired(1_500);
        assert!(store.is_empty(), "reclaimed at its TTL");
        let other = Key {
            prefix: "p:",
            id: "b",
        };
        assert_eq!(store.get(other, 1_000), None);
    }

    #[test]
    fn keys_joining_to_the_same_text_are_told_apart() {
        // "a" + "b7" and "ab" + "7" join to the same bytes. A table compares
        // a key with those whose hashes share a few bits (7 of them); over
        // many pairs, each in a store of its own (one small table), some
        // do, and the comparison must still tell them apart.
        for i in 0..2_000 {
            let store = MemoryStore::with_max_keys(64);
            let (short_id, long_id) = (format!("b{i}"), i.to_string());
            let short = Key {
                prefix: "a",
                id: &short_id,
            };
            let long = Key {
                prefix: "ab",
                id: &long_id,
            };
            store
                .update(
                    short,
                    1_000,
                    |state: &mut Option<GcraState>| {
                        *state = Some(STATE);
                        Ok(((), 500))
                    },
                    |_| 0,
                )
                .unwrap();
            assert_eq!(store.get(long, 1_000), None, "{i}");
        }
    }

    fn put(store: &MemoryStore, key: Key<'_>, state: AnyState) {
        let step = |slot: &mut Option<AnyState>| {
            *slot = Some(state);
            Ok(((), 60_000))
        };
        store.update(key, 1_000, step, |_| 0).unwrap();
    }

    #[test]
    fn keys_of_many_prefixes_and_long_ids_are_kept_apart_and_given_back() {
        let store = MemoryStore::with_max_keys(64);
        let prefixes: Vec<String> = (0..6).map(|p| format!("p{p}:gcra:1000/3:")).collect();
        // Ids inside the entry, at its bound, and past it.
        let ids = [
            "a",
            "ab",
            "aaaaaaaaaaaaaaa",
            "aaaaaaaaaaaaaaaa",
            &"x".repeat(100),
        ];
        let state = |p: usize, i: usize| {
            AnyState::Gcra(GcraState {
                tat_ms: 10_000 + p as u64,
                tat_frac: i as u64,
            })
        };
        for (p, prefix) in prefixes.iter().enumerate() {
            for (i, id) in ids.iter().enumerate() {
                put(&store, Key { prefix, id }, state(p, i));
            }
        }
        assert_eq!(store.len(), prefixes.len() * ids.len());
        for (p, prefix) in prefixes.iter().enumerate() {
            for (i, id) in ids.iter().enumerate() {
                let key = Key { prefix, id };
                assert_eq!(store.get(key, 1_000), Some(state(p, i)), "{prefix}{id}");
            }
            assert_eq!(store.get(Key { prefix, id: "b" }, 1_000), None);
        }
        // Half removed one by one, the rest expired: nothing left behind.
        for prefix in &prefixes[..3] {
            for id in ids {
                store.remove(Key { prefix, id }).unwrap();
                assert_eq!(store.get(Key { prefix, id }, 1_000), None);
            }
        }
        assert_eq!(store.len(), 3 * ids.len());
        store.purge_expired(u64::MAX);
        assert_eq!((store.len(), store.bytes()), (0, 0));
        // And kept apart again once forgotten.
        for (p, prefix) in prefixes.iter().enumerate().rev() {
            put(&store, Key { prefix, id: "a" }, state(p, 0));
        }
        for (p, prefix) in prefixes.iter().enumerate() {
            let key = Key { prefix, id: "a" };
            assert_eq!(store.get(key, 1_000), Some(state(p, 0)));
        }
    }

    #[test]
    fn every_state_is_kept_as_it_was() {
        use crate::algorithm::{
            ConcurrencyState, FixedWindowState, Lease, LogEntry, SlidingLogState,
            SlidingWindowState, TokenBucketState,
        };
        let record = |at_ms, units| LogEntry { at_ms, units };
        let log = |entries: Vec<LogEntry>, total, latest_ms| {
            AnyState::SlidingLog(SlidingLogState {
                entries: entries.into(),
                total,
                latest_ms,
            })
        };
        let states = [
            AnyState::FixedWindow(FixedWindowState {
                window_start_ms: 1,
                count: 2,
            }),
            AnyState::SlidingWindow(SlidingWindowState {
                window_start_ms: 1,
                current: 2,
                previous: 3,
            }),
            AnyState::TokenBucket(TokenBucketState {
                tokens: 1,
                refilled_at_ms: 2,
            }),
            AnyState::Gcra(STATE),
            log(vec![], 0, 7),
            log(vec![record(5, 2)], 2, 7),
            log(vec![record(5, 2), record(6, 1)], 3, 7),
            // Not what the algorithm keeps, but kept as it is all the same.
            log(vec![], 4, 7),
            log(vec![record(5, 2)], 3, 7),
            AnyState::Concurrency(ConcurrencyState {
                leases: vec![Lease {
                    id: 9,
                    expires_at_ms: 70_000,
                }],
                ..ConcurrencyState::default()
            }),
        ];
        let store = MemoryStore::new();
        // Each state over each other, in place and behind a pointer.
        for before in &states {
            for after in &states {
                put(&store, KEY, before.clone());
                assert_eq!(store.get(KEY, 1_000).as_ref(), Some(before));
                put(&store, KEY, after.clone());
                assert_eq!(store.get(KEY, 1_000).as_ref(), Some(after));
            }
        }
        store.purge_expired(u64::MAX);
        assert_eq!(store.bytes(), 0);
    }

    #[test]
    fn a_failed_step_leaves_the_state_as_it_was() {
        let store = MemoryStore::new();
        keep(&store, 1_000, 500);
        let fail = |state: &mut Option<GcraState>| -> Result<((), u64), Error> {
            assert_eq!(*state, Some(STATE));
            Err(Error::CostExceedsLimit { cost: 2, limit: 1 })
        };
        assert!(store.update(KEY, 1_200, fail, |_| 0).is_err());
        assert_eq!(store.get(KEY, 1_200), Some(AnyState::Gcra(STATE)));
    }

    #[test]
    fn a_byte_bound_is_kept_and_filled_never_collapsing_to_one_key() {
        // At most 127 keys: one shard. Keys are added one by one past the
        // first eviction: the store stays within its bound after every
        // insert, and once full it keeps about as many keys as fitted
        // (eviction frees room for the new key, never the whole table).
        for max_bytes in [2_000, 4_000, 8_000, 16_000] {
            let store = MemoryStore::with_bounds(127, max_bytes).unwrap();
            let mut most = 0;
            for i in 0..400 {
                let id = i.to_string();
                let key = Key {
                    prefix: "p:",
                    id: &id,
                };
                let step = |state: &mut Option<GcraState>| {
                    *state = Some(STATE);
                    Ok(((), 60_000))
                };
                store.update(key, 1_000, step, |_| 0).unwrap();
                assert!(
                    store.bytes() <= max_bytes,
                    "{max_bytes}: key {i}: {} bytes",
                    store.bytes()
                );
                most = most.max(store.len());
                assert!(
                    store.len() * 2 >= most,
                    "{max_bytes}: key {i}: {} of {most} left",
                    store.len()
                );
            }
            assert!(most > 4, "{max_bytes}: only {most} keys fitted");
        }
    }

    #[test]
    #[cfg(not(target_arch = "wasm32"))]
    fn four_shards_a_core_as_a_power_of_two_up_to_64() {
        let shards = [1, 2, 3, 4, 5, 16, 17, 100].map(shards_for);
        assert_eq!(shards, [4, 8, 16, 16, 32, 64, 64, 64]);
        let cores = std::thread::available_parallelism().map_or(4, usize::from);
        assert_eq!(MemoryStore::new().shared.shards.len(), shards_for(cores));
    }

    #[test]
    fn shards_never_hold_fewer_than_64_keys_unless_there_is_one() {
        let most = MemoryStore::new().shared.shards.len();
        for max_keys in [1, 63, 64, 127, 128, 511, 512, 513, 4_096, 100_000] {
            let store = MemoryStore::with_max_keys(max_keys);
            let n = store.shared.shards.len();
            assert!(n.is_power_of_two() && n <= most, "{max_keys}: {n}");
            assert!(
                n == 1 || max_keys / n >= MIN_KEYS_PER_SHARD,
                "{max_keys}: {n}"
            );
            assert!(
                n == most || max_keys / (2 * n) < MIN_KEYS_PER_SHARD,
                "{max_keys}: {n} shards, where twice as many would hold 64 keys each"
            );
            assert_eq!(store.max_keys(), max_keys / n * n);
        }
    }

    #[test]
    fn prefixes_of_one_length_differing_in_any_one_byte_are_kept_apart() {
        // Prefixes are compared 16 bytes at a time, the last 16 overlapping
        // the others: a difference anywhere, in a whole chunk or only in
        // the last bytes, tells them apart. For the store's first prefix
        // (the second differs from it) and for a prefix its shard keeps
        // (the third differs from the second, found last).
        let state = |k: u64| {
            AnyState::Gcra(GcraState {
                tat_ms: 10_000,
                tat_frac: k,
            })
        };
        for n in 1..=64 {
            // No byte repeats: no other part of a prefix matches a part.
            let first: Vec<u8> = (0..n).map(|j| b'!' + (j * 37 % 90) as u8).collect();
            for i in 0..n {
                let differing = |byte: u8| {
                    let mut prefix = first.clone();
                    prefix[i] = byte;
                    String::from_utf8(prefix).unwrap()
                };
                let prefixes = [
                    String::from_utf8(first.clone()).unwrap(),
                    differing(b'}'),
                    differing(b'~'),
                ];
                let store = MemoryStore::with_max_keys(64);
                for (k, prefix) in prefixes.iter().enumerate() {
                    let key = Key { prefix, id: "a" };
                    assert_eq!(store.get(key, 1_000), None, "{n} bytes, at {i}: {prefix}");
                    put(&store, key, state(k as u64));
                }
                for (k, prefix) in prefixes.iter().enumerate() {
                    let key = Key { prefix, id: "a" };
                    assert_eq!(store.get(key, 1_000), Some(state(k as u64)), "{prefix}");
                }
            }
        }
    }

    #[test]
    fn the_first_prefix_costs_nothing_and_any_other_its_text_and_slot_once() {
        // The store keeps its first prefix once, outside the shards; a
        // shard keeps any other once, however many of its keys name it.
        let one_key = |prefix: &str| {
            let store = MemoryStore::with_max_keys(64);
            put(&store, Key { prefix, id: "a" }, AnyState::Gcra(STATE));
            store.bytes()
        };
        let short = one_key("p:");
        for n in [1, 15, 16, 17, 31, 32, 33, 100] {
            assert_eq!(one_key(&"p".repeat(n)), short, "first prefix of {n} bytes");
        }
        let kept = |prefix: &str| prefix.len() + size_of::<PrefixSlot>() + size_of::<u32>();
        for n in [1, 15, 16, 17, 100] {
            let other = "q".repeat(n);
            // The same keys (so the same table), the second under another
            // prefix or under the first.
            let store = MemoryStore::with_max_keys(64);
            put(&store, KEY, AnyState::Gcra(STATE));
            let b = Key {
                prefix: KEY.prefix,
                id: "b",
            };
            put(&store, b, AnyState::Gcra(STATE));
            let with_first = store.bytes();
            store.remove(b).unwrap();
            let (b, c) = (
                Key {
                    prefix: &other,
                    id: "b",
                },
                Key {
                    prefix: &other,
                    id: "c",
                },
            );
            put(&store, b, AnyState::Gcra(STATE));
            assert_eq!(
                store.bytes(),
                with_first + kept(&other),
                "a prefix of {n} bytes"
            );
            put(&store, c, AnyState::Gcra(STATE));
            let with_three = store.bytes();
            // Keys leaving keep the table's room: what changes is the prefix.
            store.remove(b).unwrap();
            assert_eq!(store.bytes(), with_three, "kept while a key names it");
            store.remove(c).unwrap();
            assert_eq!(
                store.bytes() + kept(&other),
                with_three,
                "given back with its last key"
            );
        }
    }

    fn record(at_ms: u64, units: u64) -> LogEntry {
        LogEntry { at_ms, units }
    }

    fn log(entries: Vec<LogEntry>, total: u64) -> AnyState {
        AnyState::SlidingLog(SlidingLogState {
            entries: entries.into(),
            total,
            latest_ms: 7,
        })
    }

    #[test]
    fn a_sliding_log_down_to_one_record_or_none_is_kept_in_place_again() {
        // A log of one record or none (what most keys keep when there are
        // many) takes no more room than a state of fixed size; a log of
        // more records takes more, and gives it back when it shrinks.
        let store = MemoryStore::with_max_keys(64);
        put(&store, KEY, AnyState::Gcra(STATE));
        let in_place = store.bytes();
        let long = log(vec![record(5, 2), record(6, 1)], 3);
        for short in [log(vec![record(6, 1)], 1), log(vec![], 0)] {
            put(&store, KEY, long.clone());
            assert!(store.bytes() > in_place);
            put(&store, KEY, short.clone());
            assert_eq!(store.get(KEY, 1_000).as_ref(), Some(&short));
            assert_eq!(store.bytes(), in_place, "{short:?}");
            // And so it is from the start.
            store.remove(KEY).unwrap();
            put(&store, KEY, short.clone());
            assert_eq!(store.bytes(), in_place, "{short:?} when new");
        }
    }

    #[test]
    fn a_state_behind_a_pointer_counts_its_size_and_its_heap() {
        // Exactly: the state's own size, and what it keeps outside itself
        // (AnyState::heap_bytes), for as long as the key keeps it.
        let store = MemoryStore::with_max_keys(64);
        put(&store, KEY, AnyState::Gcra(STATE));
        let in_place = store.bytes();
        let semaphore = |leases: usize| {
            let mut state = ConcurrencyState {
                leases: Vec::with_capacity(leases),
                ..ConcurrencyState::default()
            };
            for id in 0..leases as u64 {
                state.leases.push(Lease {
                    id,
                    expires_at_ms: 70_000,
                });
            }
            AnyState::Concurrency(state)
        };
        let records = |n: u64| log((0..n).map(|at| record(at, 1)).collect(), n);
        for state in [
            semaphore(1),
            semaphore(3),
            semaphore(100),
            records(2),
            records(3),
            records(100),
        ] {
            let own = match state {
                AnyState::Concurrency(_) => size_of::<ConcurrencyState>(),
                _ => size_of::<SlidingLogState>(),
            };
            let expected = in_place + own + state.heap_bytes();
            put(&store, KEY, state.clone());
            assert_eq!(store.bytes(), expected, "{state:?}");
            put(&store, KEY, AnyState::Gcra(STATE));
            assert_eq!(store.bytes(), in_place, "given back: {state:?}");
        }
    }

    #[test]
    fn the_empty_prefix_is_not_taken_for_a_forgotten_one() {
        // A prefix no key names any more leaves its slot, emptied of its
        // text, to the next new prefix: the empty prefix is not that slot.
        let state = |k: u64| {
            AnyState::Gcra(GcraState {
                tat_ms: 10_000,
                tat_frac: k,
            })
        };
        let store = MemoryStore::with_max_keys(64);
        put(&store, KEY, state(0));
        let gone = Key {
            prefix: "gone:",
            id: "a",
        };
        put(&store, gone, state(1));
        store.remove(gone).unwrap();
        let empty = Key {
            prefix: "",
            id: "a",
        };
        let next = Key {
            prefix: "next:",
            id: "a",
        };
        put(&store, empty, state(2));
        assert_eq!(store.get(next, 1_000), None);
        put(&store, next, state(3));
        assert_eq!(store.get(empty, 1_000), Some(state(2)));
        assert_eq!(store.get(next, 1_000), Some(state(3)));
        assert_eq!(store.get(gone, 1_000), None);
    }

    #[test]
    fn an_id_too_long_for_the_entry_counts_its_bytes_and_its_pointer() {
        let one_key = |id: &str| {
            let store = MemoryStore::with_max_keys(64);
            put(&store, Key { prefix: "p:", id }, AnyState::Gcra(STATE));
            let bytes = store.bytes();
            store.remove(Key { prefix: "p:", id }).unwrap();
            (bytes, store.bytes())
        };
        let (inline, empty) = one_key("a");
        assert_eq!(
            one_key(&"a".repeat(INLINE_ID)),
            (inline, empty),
            "inside the entry"
        );
        for n in [INLINE_ID + 1, 100, 1_000] {
            let expected = inline + n + size_of::<Box<[u8]>>();
            assert_eq!(one_key(&"a".repeat(n)), (expected, empty), "{n} bytes");
        }
    }

    #[test]
    fn keys_of_other_prefixes_stay_found_while_prefixes_come_and_go() {
        // A prefix leaving its shard's index takes out its own place there,
        // not that of another prefix (each store hashes with its own seed:
        // many rounds meet many arrangements).
        let state = |k: u64| {
            AnyState::Gcra(GcraState {
                tat_ms: 10_000,
                tat_frac: k,
            })
        };
        for _round in 0..20 {
            let store = MemoryStore::with_max_keys(127);
            put(&store, KEY, state(0));
            let prefixes: Vec<String> = (1..=100).map(|p| format!("prefix-{p}:")).collect();
            let key = |p: usize| Key {
                prefix: &prefixes[p],
                id: "a",
            };
            for p in 0..prefixes.len() {
                put(&store, key(p), state(p as u64 + 1));
            }
            for p in (0..prefixes.len()).step_by(2) {
                store.remove(key(p)).unwrap();
            }
            for p in 0..prefixes.len() {
                let expected = (p % 2 == 1).then(|| state(p as u64 + 1));
                assert_eq!(store.get(key(p), 1_000), expected, "{}", key(p).prefix);
            }
            // And back again.
            for p in (0..prefixes.len()).step_by(2) {
                put(&store, key(p), state(p as u64 + 1));
            }
            for p in 0..prefixes.len() {
                assert_eq!(store.get(key(p), 1_000), Some(state(p as u64 + 1)));
            }
        }
    }

    #[test]
    fn a_shard_counts_its_index_and_its_entries_as_allocated() {
        // The entries as their vector holds them, grown by doubling from 4
        // (as a `Vec` grows); the index as its table allocates it, 4 bytes
        // and a control byte a bucket (besides one group of control bytes
        // of fixed size, at most 16, counted nowhere). One shard.
        let store = MemoryStore::with_max_keys(127);
        let mut group = None;
        for n in 1..=127usize {
            let id = n.to_string();
            put(
                &store,
                Key {
                    prefix: "p:",
                    id: &id,
                },
                AnyState::Gcra(STATE),
            );
            let table = store.shared.shards[0].lock();
            assert_eq!(
                table.entries.capacity(),
                n.next_power_of_two().max(4),
                "{n} keys"
            );
            let entries = table.entries.capacity() * size_of::<Entry>();
            let index = table.bytes(0) - entries;
            let uncounted = table.index.allocation_size() - index;
            assert_eq!(*group.get_or_insert(uncounted), uncounted, "{n} keys");
            assert!(
                uncounted <= 16,
                "{n} keys: {uncounted} bytes of the index not counted"
            );
            drop(table);
            assert_eq!(store.bytes(), entries + index);
        }
    }

    #[test]
    fn a_new_prefix_counts_toward_the_bound_when_its_first_key_comes() {
        // Keys under prefixes of their own (not the store's first): each
        // one's text and slot are made room for, so the bound holds after
        // every call.
        let store = MemoryStore::with_bounds(127, 8_000).unwrap();
        put(&store, KEY, AnyState::Gcra(STATE));
        for i in 0..300 {
            let prefix = format!("{i:0200}");
            put(
                &store,
                Key {
                    prefix: &prefix,
                    id: "a",
                },
                AnyState::Gcra(STATE),
            );
            assert!(store.bytes() <= 8_000, "key {i}: {} bytes", store.bytes());
        }
    }
}
