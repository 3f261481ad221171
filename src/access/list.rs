//! The lists and how an id is matched against them.
//!
//! The most specific entry decides: an exact id first, then the longest
//! range holding the id's address. So `10.0.0.0/8` can be denied while
//! `10.1.2.3` stays allowed, and an entry is on one list at a time (listing
//! it again moves it). An id takes part in range matching when it is an IP
//! address or a network in CIDR notation, as
//! [`clientIp`](https://docs.rs/edgelimit) writes them (`203.0.113.7`,
//! `2001:db8:1:2::/64`); a network matches the ranges that contain it.
//!
//! Lookups cost one hash probe for the ids, and one per distinct range
//! length on the lists, whatever the number of entries.

use std::sync::{Arc, PoisonError, RwLock};

use hashbrown::HashMap;

use super::address;
use crate::{ConfigError, Decision, Reason};

impl Listed {
    /// The decision a limiter of `limit` answers for a listed id at
    /// `now_ms`, without asking its store.
    pub fn decision(self, limit: u64, now_ms: u64) -> Decision {
        match self {
            Self::Deny => Decision {
                allowed: false,
                limit,
                remaining: 0,
                reset_ms: u64::MAX,
                retry_after_ms: u64::MAX,
                reason: Some(Reason::DenyList),
            },
            Self::Allow => Decision {
                allowed: true,
                limit,
                remaining: limit,
                reset_ms: now_ms,
                retry_after_ms: 0,
                reason: Some(Reason::AllowList),
            },
        }
    }
}

/// Which list an entry is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listed {
    /// Always denied.
    Deny,
    /// Always admitted.
    Allow,
}

/// Deny and allow lists, shared by every clone (a handle): change them at
/// run time and every limiter holding a clone sees the change at its next
/// call.
///
/// ```
/// use edgelimit::{AccessList, Listed};
///
/// let lists = AccessList::new();
/// lists.deny("203.0.113.0/24")?;
/// lists.allow("203.0.113.9")?;
/// lists.deny("user:666")?;
/// assert_eq!(lists.check("203.0.113.7"), Some(Listed::Deny));
/// assert_eq!(lists.check("203.0.113.9"), Some(Listed::Allow));
/// assert_eq!(lists.check("user:666"), Some(Listed::Deny));
/// assert_eq!(lists.check("198.51.100.1"), None);
/// # Ok::<(), edgelimit::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct AccessList {
    lists: Arc<RwLock<Lists>>,
}

impl AccessList {
    /// Empty lists.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `entry` (an id, an IP address or a CIDR range) on the deny list.
    pub fn deny(&self, entry: &str) -> Result<(), ConfigError> {
        self.put(entry, Listed::Deny)
    }

    /// Puts `entry` (an id, an IP address or a CIDR range) on the allow list.
    pub fn allow(&self, entry: &str) -> Result<(), ConfigError> {
        self.put(entry, Listed::Allow)
    }

    /// Puts `entry` on `list` (moving it off the other one).
    pub fn put(&self, entry: &str, list: Listed) -> Result<(), ConfigError> {
        let entry = Entry::parse(entry)?;
        self.write().put(entry, list);
        Ok(())
    }

    /// Takes `entry` off whichever list it is on; whether it was on one.
    pub fn remove(&self, entry: &str) -> Result<bool, ConfigError> {
        let entry = Entry::parse(entry)?;
        Ok(self.write().remove(&entry))
    }

    /// Empties both lists.
    pub fn clear(&self) {
        *self.write() = Lists::default();
    }

    /// How many entries both lists hold.
    pub fn len(&self) -> usize {
        self.read().len
    }

    /// Whether both lists are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The list that decides for `id`, if any.
    pub fn check(&self, id: &str) -> Option<Listed> {
        self.read().check(id)
    }

    // A panic while holding the lock leaves the lists whole (every change
    // is one map operation), so a poisoned lock is still safe to use.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Lists> {
        self.lists.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Lists> {
        self.lists.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One entry as given: an id, or a network (an address is a network of
/// its full length).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Id(Box<str>),
    Network(Network),
}

/// An address family's network: the address with its host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    v6: bool,
    bits: u128,
    len: u8,
}

impl Entry {
    #[inline(never)]
    fn parse(text: &str) -> Result<Self, ConfigError> {
        if text.is_empty() {
            return Err(invalid(text, "an entry must not be empty"));
        }
        // A line read with its "\r", or a padded cell, would otherwise be an
        // id that no request ever has: a list entry that silently never
        // matches.
        if text.trim() != text {
            return Err(invalid(
                text,
                "the entry has leading or trailing whitespace",
            ));
        }
        match Network::parse(text) {
            Some(Ok(network)) => Ok(Self::Network(network)),
            Some(Err(why)) => Err(invalid(text, why)),
            // Likewise a mistyped address (10.0.0.256, 10.0.0/8).
            None if looks_like_an_address(text) => Err(invalid(
                text,
                "it looks like an IP address or range but is not one",
            )),
            None => Ok(Self::Id(text.into())),
        }
    }
}

/// Only hex digits, dots and colons (with a `.` or `:`), and perhaps a
/// `/` and digits: an address, never meant as an id.
fn looks_like_an_address(text: &str) -> bool {
    let (address, len) = text.split_once('/').unwrap_or((text, "0"));
    address.contains(['.', ':'])
        && address
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == '.' || c == ':')
        && len.chars().all(|c| c.is_ascii_digit())
}

fn invalid(entry: &str, why: &'static str) -> ConfigError {
    ConfigError::ListEntry {
        entry: entry.chars().take(100).collect(),
        why,
    }
}

impl Network {
    /// `None` when `text` is no address (an id, then), else the network or
    /// why it is not one.
    fn parse(text: &str) -> Option<Result<Self, &'static str>> {
        let (address, len) = match text.split_once('/') {
            Some((address, len)) => (address, Some(len)),
            None => (text, None),
        };
        let (mut v6, mut bits) = address::parse(address)?;
        // ::ffff:a.b.c.d is the IPv4 address a.b.c.d, as clientIp writes it.
        if v6 && len.is_none() && bits >> 32 == 0xffff {
            (v6, bits) = (false, bits & u128::from(u32::MAX));
        }
        let max = if v6 { 128 } else { 32 };
        let len = match len {
            None => max,
            Some(text) => match prefix_length(text) {
                Some(len) if len <= max => len,
                _ => return Some(Err(BAD_LENGTH)),
            },
        };
        if bits & !mask(len, max) != 0 {
            return Some(Err(HOST_BITS));
        }
        Some(Ok(Self { v6, bits, len }))
    }

    /// This network's key in the lists' map: family, length and bits, in hex.
    fn key(self, out: &mut [u8; 35]) -> &str {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bytes = self.bits.to_be_bytes();
        let bytes = if self.v6 { &bytes[..] } else { &bytes[12..] };
        out[0] = if self.v6 { b'6' } else { b'4' };
        for (pair, byte) in out[1..]
            .chunks_exact_mut(2)
            .zip([self.len].iter().chain(bytes))
        {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 15)];
        }
        std::str::from_utf8(&out[..3 + 2 * bytes.len()]).unwrap_or_default()
    }
}

const BAD_LENGTH: &str = "the prefix length must be a whole number up to 32 (IPv4) or 128 (IPv6)";
const HOST_BITS: &str =
    "the address has bits set past the prefix length: write the network's first address";

/// Digits only, no leading zero: one spelling per length.
fn prefix_length(text: &str) -> Option<u8> {
    let plain = text == "0" || !text.starts_with('0');
    match plain && !text.is_empty() && text.len() <= 3 && text.bytes().all(|c| c.is_ascii_digit()) {
        true => text.parse().ok(),
        false => None,
    }
}

/// The `len` leading bits of a `max`-bit address.
fn mask(len: u8, max: u8) -> u128 {
    match len {
        0 => 0,
        len => (u128::MAX << (128 - u32::from(len))) >> (128 - u32::from(max)),
    }
}

/// Entries by their text (ids) or key (networks), to 0 (deny) or 1 (allow).
/// foldhash: a lookup hashes the id and up to one key per prefix length.
type Map = HashMap<Box<str>, u64, foldhash::fast::FixedState>;

#[derive(Debug, Default)]
struct Lists {
    ids: Map,
    networks: Map,
    /// How many networks each family (IPv4, IPv6) lists per prefix length.
    lengths: [Vec<u32>; 2],
    len: usize,
}

fn code(list: Listed) -> u64 {
    match list {
        Listed::Deny => 0,
        Listed::Allow => 1,
    }
}

fn listed(code: u64) -> Listed {
    match code {
        0 => Listed::Deny,
        _ => Listed::Allow,
    }
}

impl Lists {
    fn put(&mut self, entry: Entry, list: Listed) {
        let added = match entry {
            Entry::Id(id) => self.ids.insert(id, code(list)).is_none(),
            Entry::Network(network) => {
                let added = self
                    .networks
                    .insert(network.key(&mut [0; 35]).into(), code(list))
                    .is_none();
                if added {
                    let counts = &mut self.lengths[usize::from(network.v6)];
                    if counts.is_empty() {
                        counts.resize(if network.v6 { 129 } else { 33 }, 0);
                    }
                    counts[usize::from(network.len)] += 1;
                }
                added
            }
        };
        self.len += usize::from(added);
    }

    fn remove(&mut self, entry: &Entry) -> bool {
        let removed = match entry {
            Entry::Id(id) => self.ids.remove(id).is_some(),
            Entry::Network(network) => {
                let removed = self.networks.remove(network.key(&mut [0; 35])).is_some();
                if removed {
                    self.lengths[usize::from(network.v6)][usize::from(network.len)] -= 1;
                }
                removed
            }
        };
        self.len -= usize::from(removed);
        removed
    }

    fn check(&self, id: &str) -> Option<Listed> {
        if self.len == 0 {
            return None;
        }
        if let Some(&list) = self.ids.get(id) {
            return Some(listed(list));
        }
        if self.networks.is_empty() {
            return None;
        }
        let Some(Ok(network)) = Network::parse(id) else {
            return None;
        };
        let max = if network.v6 { 128 } else { 32 };
        let counts = &self.lengths[usize::from(network.v6)];
        let mut key = [0; 35];
        (0..=network.len).rev().find_map(|len| {
            if counts.get(usize::from(len)).is_none_or(|&n| n == 0) {
                return None;
            }
            let range = Network {
                bits: network.bits & mask(len, max),
                len,
                ..network
            };
            self.networks
                .get(range.key(&mut key))
                .map(|&list| listed(list))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_entry_decides() {
        let lists = AccessList::new();
        lists.deny("10.0.0.0/8").unwrap();
        lists.allow("10.1.0.0/16").unwrap();
        lists.deny("10.1.2.3").unwrap();
        assert_eq!(lists.check("10.9.9.9"), Some(Listed::Deny));
        assert_eq!(lists.check("10.1.9.9"), Some(Listed::Allow));
        assert_eq!(lists.check("10.1.2.3"), Some(Listed::Deny));
        assert_eq!(lists.check("11.0.0.1"), None);
        // An exact id beats any range, even one that holds it.
        lists.allow("10.1.2.3").unwrap();
        assert_eq!(lists.check("10.1.2.3"), Some(Listed::Allow));
        assert_eq!(lists.len(), 3, "listing again moves the entry");
    }

    #[test]
    fn ipv6_networks_and_mapped_addresses() {
        let lists = AccessList::new();
        lists.deny("2001:db8::/32").unwrap();
        lists.allow("192.0.2.0/24").unwrap();
        assert_eq!(lists.check("2001:db8:1:2::5"), Some(Listed::Deny));
        // clientIp's form of an IPv6 client: its /64.
        assert_eq!(lists.check("2001:db8:1:2::/64"), Some(Listed::Deny));
        assert_eq!(lists.check("2001:db9::1"), None);
        assert_eq!(lists.check("::ffff:192.0.2.4"), Some(Listed::Allow));
        // A network wider than the range is not inside it.
        lists.deny("2001:db9:0:1::/64").unwrap();
        assert_eq!(lists.check("2001:db9::/32"), None);
        assert_eq!(lists.check("0.0.0.0/0"), None);
        lists.deny("0.0.0.0/0").unwrap();
        assert_eq!(lists.check("0.0.0.0/0"), Some(Listed::Deny));
        assert_eq!(lists.check("8.8.8.8"), Some(Listed::Deny));
        assert_eq!(lists.check("192.0.2.1"), Some(Listed::Allow));
    }

    #[test]
    fn ids_that_look_like_addresses_are_ids() {
        let lists = AccessList::new();
        lists.deny("ip:10.0.0.1").unwrap();
        lists.deny("10.0.0.0/8").unwrap();
        assert_eq!(lists.check("ip:10.0.0.1"), Some(Listed::Deny));
        assert_eq!(lists.check("ip:10.0.0.2"), None);
        assert_eq!(lists.check("10.0.0.2/33"), None);
        assert_eq!(lists.check("10.0.0.2 "), None);
    }

    #[test]
    fn bad_entries_are_typed_errors_and_change_nothing() {
        let lists = AccessList::new();
        lists.deny("10.0.0.0/8").unwrap();
        for bad in [
            "",
            "10.0.0.1/8",
            "10.0.0.0/33",
            "10.0.0.0/x",
            "10.0.0.0/08",
            "::1/129",
            "10.0.0.0/",
            "10.0.0.256",
            "10.0.0/8",
            "2001:db8:::1/32",
            "10.0.0.0/8\r",
            " user:1",
            "user:1\n",
        ] {
            let error = lists.deny(bad).unwrap_err();
            assert!(
                matches!(error, ConfigError::ListEntry { .. }),
                "{bad}: {error}"
            );
            assert!(lists.allow(bad).is_err());
            assert!(lists.remove(bad).is_err());
        }
        assert_eq!(lists.len(), 1);
        assert_eq!(lists.check("10.2.3.4"), Some(Listed::Deny));
        // Ids that only resemble addresses stay ids.
        for id in [
            "user/1",
            "v1.2-beta",
            "deadbeef",
            "a:b:c:d:e:f:g",
            "1.2.3.4.example",
        ] {
            lists.deny(id).unwrap();
            assert_eq!(lists.check(id), Some(Listed::Deny), "{id}");
        }
    }

    #[test]
    fn removing_and_clearing() {
        let lists = AccessList::new();
        let shared = lists.clone();
        lists.deny("user:1").unwrap();
        lists.deny("10.0.0.0/8").unwrap();
        lists.allow("10.0.0.0/9").unwrap();
        assert_eq!(shared.check("10.1.0.0"), Some(Listed::Allow));
        assert!(shared.remove("10.0.0.0/9").unwrap());
        assert!(!shared.remove("10.0.0.0/9").unwrap());
        assert_eq!(lists.check("10.1.0.0"), Some(Listed::Deny));
        assert!(lists.remove("user:1").unwrap());
        assert_eq!(lists.check("user:1"), None);
        assert_eq!(lists.len(), 1);
        lists.clear();
        assert!(shared.is_empty());
        assert_eq!(lists.check("10.1.0.0"), None);
    }

    #[test]
    fn a_hundred_thousand_entries() {
        let lists = AccessList::new();
        for i in 0..100_000u32 {
            let [a, b, c, _] = (i << 8).to_be_bytes();
            lists.deny(&format!("{a}.{b}.{c}.0/24")).unwrap();
            lists.allow(&format!("user:{i}")).unwrap();
        }
        assert_eq!(lists.len(), 200_000);
        assert_eq!(lists.check("0.1.2.77"), Some(Listed::Deny));
        assert_eq!(lists.check("user:99999"), Some(Listed::Allow));
        assert_eq!(lists.check("200.0.0.1"), None);
    }
}
