//! In-isolate memory: sharded hash tables with per-key expiry and a bound on
//! the number of keys.

use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hashbrown::hash_table::HashTable;

use super::contract::{Key, Store, Transition};
use crate::algorithm::{AnyState, StateKind};
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
    hasher: foldhash::fast::FixedState,
}

// Aligned so two shards' locks never share a cache line.
#[repr(align(128))]
struct Shard(Mutex<Table>);

struct Table {
    entries: HashTable<Entry>,
    /// What the entries keep outside the table, as [`Entry::heap_bytes`]
    /// counts.
    heap: usize,
}

struct Entry {
    hash: u64,
    key: KeyText,
    /// Where `prefix` ends in `key`.
    prefix_len: u32,
    /// Units the state held after its last step (saturated): what evicting
    /// it would give back.
    held: u32,
    expires_at_ms: u64,
    /// Taken out while a transition runs on it.
    state: Option<AnyState>,
}

/// Keys up to this many bytes live inside the entry, so a lookup does not
/// chase a pointer: the default prefix plus an IPv4 address fits. Longer
/// keys go to the heap; a larger inline size makes every entry bigger,
/// which costs more in cache misses on many keys than it saves.
const INLINE_KEY: usize = 30;

/// `prefix` followed by `id`.
enum KeyText {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

impl KeyText {
    fn new(key: Key<'_>) -> Self {
        let (prefix, id) = (key.prefix.as_bytes(), key.id.as_bytes());
        let len = prefix.len() + id.len();
        if len <= INLINE_KEY {
            let mut bytes = [0; INLINE_KEY];
            bytes[..prefix.len()].copy_from_slice(prefix);
            bytes[prefix.len()..len].copy_from_slice(id);
            Self::Inline {
                len: len as u8,
                bytes,
            }
        } else {
            Self::Heap([prefix, id].concat().into_boxed_slice())
        }
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(bytes) => bytes,
        }
    }
}

impl Entry {
    /// What this entry keeps outside the table: a key too long to live
    /// inside it, and what its state keeps on the heap.
    #[inline]
    fn heap_bytes(&self) -> usize {
        let key = match &self.key {
            KeyText::Inline { .. } => 0,
            KeyText::Heap(bytes) => bytes.len(),
        };
        key + self.state.as_ref().map_or(0, AnyState::heap_bytes)
    }

    #[inline]
    fn is(&self, hash: u64, key: Key<'_>) -> bool {
        let bytes = self.key.as_bytes();
        let split = key.prefix.len();
        self.hash == hash
            && self.prefix_len as usize == split
            && bytes.len() == split + key.id.len()
            && &bytes[..split] == key.prefix.as_bytes()
            && &bytes[split..] == key.id.as_bytes()
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
                self.state = state.map(StateKind::into_any);
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
                    self.state = state.map(StateKind::into_any);
                }
                Err(error)
            }
        }
    }
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
                    entries: HashTable::new(),
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
                hasher: foldhash::fast::FixedState::with_seed(crate::random::next_u64()),
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
            table.sweep(now_ms);
            // Give the table's spare room back too.
            table.entries.shrink_to_fit(|e| e.hash);
        }
    }

    #[inline]
    fn hash(&self, key: Key<'_>) -> u64 {
        let mut hasher = self.shared.hasher.build_hasher();
        hasher.write(key.prefix.as_bytes());
        hasher.write_u8(0xff); // not UTF-8: separates prefix from id
        hasher.write(key.id.as_bytes());
        hasher.finish()
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard {
        // Bits 32.. are unused by the table's bucket index and tag for any
        // table below 2^32 buckets.
        let index = (hash >> 32) as usize & ((1 << self.shared.shard_bits) - 1);
        &self.shared.shards[index]
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

impl Table {
    /// Adds `key`, which is not held, making room first. Not generic: every
    /// kind of step shares this code (the WebAssembly module stays small).
    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        hash: u64,
        key: Key<'_>,
        expires_at_ms: u64,
        held: u64,
        state: AnyState,
        now_ms: u64,
        bounds: Bounds,
    ) {
        let entry = Entry {
            hash,
            key: KeyText::new(key),
            prefix_len: key.prefix.len() as u32,
            held: saturate(held),
            expires_at_ms,
            state: Some(state),
        };
        let heap = entry.heap_bytes();
        self.make_room(now_ms, bounds, 1, heap);
        self.heap += heap;
        self.entries.insert_unique(hash, entry, |e| e.hash);
    }

    fn sweep(&mut self, now_ms: u64) {
        let mut freed = 0;
        self.entries.retain(|e| {
            let keep = e.expires_at_ms > now_ms;
            if !keep {
                freed += e.heap_bytes();
            }
            keep
        });
        self.heap -= freed;
    }

    /// What the shard keeps with `keys` more keys: the table as allocated
    /// (its buckets, doubled when it must grow for them) and the entries'
    /// heap.
    fn bytes(&self, keys: usize) -> usize {
        let capacity = self.entries.capacity().max(self.entries.len() + keys);
        let buckets = match capacity {
            0 => 0,
            capacity => (capacity * 8 / 7).next_power_of_two(),
        };
        // One control byte per bucket besides the entry.
        buckets * (size_of::<Entry>() + 1) + self.heap
    }

    /// Makes space for `keys` more keys keeping `heap` more bytes within
    /// `bounds` (none and nothing: back within them after a state grew).
    fn make_room(&mut self, now_ms: u64, bounds: Bounds, keys: usize, heap: usize) {
        let over =
            |t: &Self| t.entries.len() + keys > bounds.keys || t.bytes(keys) + heap > bounds.bytes;
        if over(self) {
            self.sweep(now_ms);
        }
        // Each round evicts at least one key. A shard keeps any one key,
        // however large (a state is bounded by its algorithm's limits): a
        // new key goes into an emptied shard, a grown one stays alone.
        let floor = usize::from(keys == 0);
        while over(self) && self.entries.len() > floor {
            self.evict();
        }
    }

    /// Evicts an eighth of the keys at once, so a flood pays for this scan
    /// rarely, and exactly an eighth: keys of one fixed window all hold the
    /// same and expire together, and evicting every tie would empty the
    /// shard. First the states holding the fewest units, whose loss grants
    /// the fewest admissions; among equals the soonest to expire.
    fn evict(&mut self) {
        let evict = (self.entries.len() / 8).max(1);
        let rank = |e: &Entry| (e.held, e.expires_at_ms);
        let mut ranks: Vec<(u32, u64)> = self.entries.iter().map(rank).collect();
        let (lower, &mut threshold, _) = ranks.select_nth_unstable(evict - 1);
        let mut ties_to_evict = evict - lower.iter().filter(|&&r| r < threshold).count();
        let mut freed = 0;
        self.entries.retain(|e| {
            let keep = match rank(e).cmp(&threshold) {
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Equal if ties_to_evict > 0 => {
                    ties_to_evict -= 1;
                    false
                }
                _ => true,
            };
            if !keep {
                freed += e.heap_bytes();
            }
            keep
        });
        self.heap -= freed;
    }

    /// Counts an entry's heap going from `before` to `after` bytes (a
    /// sliding log's or a semaphore's state grew or shrank), and gets back
    /// within `bounds` if it grew.
    #[inline]
    fn resized(&mut self, before: usize, after: usize, now_ms: u64, bounds: Bounds) {
        if after != before {
            self.heap = self.heap + after - before;
            if after > before {
                self.make_room(now_ms, bounds, 0, 0);
            }
        }
    }
}

impl MemoryStore {
    /// A copy of `key`'s state if it has a live one at `now_ms`, leaving it
    /// as it is.
    pub(crate) fn get(&self, key: Key<'_>, now_ms: u64) -> Option<AnyState> {
        let hash = self.hash(key);
        let table = self.shard(hash).lock();
        let entry = table.entries.find(hash, |e| e.is(hash, key))?;
        (entry.expires_at_ms > now_ms)
            .then(|| entry.state.clone())
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
        let hash = self.hash(key);
        let mut table = self.shard(hash).lock();
        let bounds = Bounds {
            keys: self.shared.shard_capacity,
            bytes: self.shared.shard_budget,
        };
        if let Some(entry) = table.entries.find_mut(hash, |e| e.is(hash, key)) {
            let before = entry.heap_bytes();
            let answer = entry.run(now_ms, step, held);
            let after = entry.heap_bytes();
            table.resized(before, after, now_ms, bounds);
            return answer;
        }
        let mut state = None;
        let (output, ttl_ms) = step(&mut state)?;
        if let Some(state) = state.filter(|_| ttl_ms > 0) {
            let expires_at_ms = now_ms.saturating_add(ttl_ms);
            table.insert(
                hash,
                key,
                expires_at_ms,
                held(&output),
                state.into_any(),
                now_ms,
                bounds,
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

    fn remove(&self, key: Key<'_>) -> Result<(), Error> {
        let hash = self.hash(key);
        let mut table = self.shard(hash).lock();
        if let Ok(found) = table.entries.find_entry(hash, |e| e.is(hash, key)) {
            let (entry, _) = found.remove();
            table.heap -= entry.heap_bytes();
        }
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
    fn a_byte_bound_counts_the_table_as_allocated() {
        // At most 127 keys: one shard. Short keys live in their entries, so
        // the table is all there is: a bucket costs an entry and a control
        // byte, and the table doubles its buckets when it grows (28 keys
        // take 32 buckets, 56 keys 64). Keys are added until the first
        // eviction: how many fit.
        let bucket = size_of::<Entry>() + 1;
        let fitting = |max_bytes: usize| {
            let store = MemoryStore::with_bounds(127, max_bytes).unwrap();
            for i in 0..127 {
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
                if store.len() <= i {
                    return i;
                }
                assert!(store.bytes() <= max_bytes, "{i}: {}", store.bytes());
            }
            127
        };
        assert_eq!(fitting(64 * bucket), 56, "64 buckets fit exactly");
        assert_eq!(fitting(64 * bucket - 1), 28, "64 buckets do not fit");
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
}
