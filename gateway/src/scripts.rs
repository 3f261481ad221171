//! Lua shebang compatibility.
//!
//! Upstash accepts `#!lua flags=allow-key-locking`; Redis 7 rejects flags it
//! does not know and Redis 6 rejects any shebang. Before a script reaches
//! Redis its first line is rewritten to keep only the flags Redis knows (or
//! blanked, keeping line numbers in error messages, when none remain).
//!
//! Clients address scripts by the SHA-1 of the text they hold, so the gateway
//! remembers original SHA -> rewritten script. EVALSHA of an original SHA is
//! sent as EVALSHA of the rewritten SHA, and when Redis lost its script cache
//! (restart, SCRIPT FLUSH by another client) the gateway still holds the text
//! and re-sends it with EVAL.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use sha1::{Digest, Sha1};

/// Flags Redis 7 understands in an EVAL shebang.
const KNOWN_FLAGS: &[&str] = &[
    "no-writes",
    "allow-oom",
    "allow-stale",
    "no-cluster",
    "allow-cross-slot-keys",
];

/// Bound on remembered scripts; past it new scripts still run (EVAL is
/// rewritten on the fly) but their original SHA is not remembered.
const MAX_SCRIPTS: usize = 10_000;

#[derive(Debug)]
pub struct Rewritten {
    pub text: Bytes,
    /// Lowercase hex SHA-1 of `text`: what Redis knows the script by.
    pub sha: Bytes,
}

/// Bytes of remembered script text at most, unless configured
/// (`--max-script-cache-bytes`).
pub const DEFAULT_MAX_SCRIPT_BYTES: usize = 16 << 20;

pub struct Scripts {
    by_original_sha: RwLock<HashMap<Bytes, Arc<Rewritten>>>,
    /// Text remembered, in bytes, and the most that may be.
    bytes: std::sync::atomic::AtomicUsize,
    max_bytes: usize,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts::with_max_bytes(DEFAULT_MAX_SCRIPT_BYTES)
    }
}

pub fn sha1_hex(data: &[u8]) -> Bytes {
    let digest = Sha1::digest(data);
    let mut s = String::with_capacity(40);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    Bytes::from(s)
}

/// The script as Redis will accept it, or `None` when it needs no change.
pub fn rewrite(script: &[u8]) -> Option<Bytes> {
    let rest = script.strip_prefix(b"#!")?;
    let line_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let line = std::str::from_utf8(&rest[..line_end]).ok()?;
    let (line, cr) = match line.strip_suffix('\r') {
        Some(l) => (l, true),
        None => (line, false),
    };
    let mut words = line.split_ascii_whitespace();
    // Other engines are left for Redis to reject with its own message.
    if words.next()? != "lua" {
        return None;
    }
    let mut kept: Vec<&str> = vec![];
    let mut changed = false;
    for w in words {
        match w.strip_prefix("flags=") {
            Some(flags) => {
                for f in flags.split(',').filter(|f| !f.is_empty()) {
                    if KNOWN_FLAGS.contains(&f) {
                        kept.push(f);
                    } else {
                        changed = true;
                    }
                }
            }
            None => changed = true,
        }
    }
    if !changed {
        return None;
    }
    let mut out = Vec::with_capacity(script.len());
    if !kept.is_empty() {
        out.extend_from_slice(b"#!lua flags=");
        out.extend_from_slice(kept.join(",").as_bytes());
    }
    if cr {
        out.push(b'\r');
    }
    out.extend_from_slice(&rest[line_end..]);
    Some(Bytes::from(out))
}

impl Scripts {
    /// Remembers at most `max_bytes` of script text.
    pub fn with_max_bytes(max_bytes: usize) -> Scripts {
        Scripts {
            by_original_sha: RwLock::default(),
            bytes: Default::default(),
            max_bytes,
        }
    }

    /// Rewrites `script` if needed and remembers it under its original SHA.
    pub fn prepare(&self, script: &[u8]) -> Option<Arc<Rewritten>> {
        let text = rewrite(script)?;
        let r = Arc::new(Rewritten {
            sha: sha1_hex(&text),
            text,
        });
        let mut map = self
            .by_original_sha
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let used = self.bytes.load(std::sync::atomic::Ordering::Relaxed);
        if map.len() < MAX_SCRIPTS
            && used + r.text.len() <= self.max_bytes
            && map.insert(sha1_hex(script), r.clone()).is_none()
        {
            self.bytes
                .fetch_add(r.text.len(), std::sync::atomic::Ordering::Relaxed);
        }
        Some(r)
    }

    /// The rewritten script known under an original SHA (any letter case).
    pub fn lookup(&self, sha: &[u8]) -> Option<Arc<Rewritten>> {
        let key = Bytes::from(sha.to_ascii_lowercase());
        let map = self
            .by_original_sha
            .read()
            .unwrap_or_else(|p| p.into_inner());
        map.get(&key).cloned()
    }

    /// Scripts remembered.
    pub fn len(&self) -> usize {
        self.by_original_sha
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// SCRIPT FLUSH: forget everything, as Redis does.
    pub fn clear(&self) {
        let mut map = self
            .by_original_sha
            .write()
            .unwrap_or_else(|p| p.into_inner());
        map.clear();
        self.bytes.store(0, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_unknown_flags() {
        let s = b"#!lua flags=allow-key-locking\nreturn 1";
        assert_eq!(rewrite(s).unwrap(), Bytes::from_static(b"\nreturn 1"));
        let s = b"#!lua flags=allow-key-locking,no-writes\r\nreturn 1";
        assert_eq!(
            rewrite(s).unwrap(),
            Bytes::from_static(b"#!lua flags=no-writes\r\nreturn 1")
        );
    }

    #[test]
    fn leaves_valid_scripts_alone() {
        assert!(rewrite(b"return 1").is_none());
        assert!(rewrite(b"#!lua\nreturn 1").is_none());
        assert!(rewrite(b"#!lua flags=no-writes\nreturn 1").is_none());
        assert!(rewrite(b"#!python\nx").is_none());
    }

    #[test]
    fn maps_original_sha() {
        let s = Scripts::default();
        let orig = b"#!lua flags=allow-key-locking\nreturn 1";
        let r = s.prepare(orig).unwrap();
        assert_eq!(r.sha, sha1_hex(b"\nreturn 1"));
        let upper = sha1_hex(orig).to_ascii_uppercase();
        assert_eq!(s.lookup(&upper).unwrap().sha, r.sha);
        s.clear();
        assert!(s.lookup(&sha1_hex(orig)).is_none());
        assert_eq!(
            sha1_hex(b"abc"),
            Bytes::from_static(b"a9993e364706816aba3e25717850c26c9cd0d89d")
        );
    }
}
