//! Which commands a request may run.
//!
//! Three layers: commands that cannot work over shared connections are
//! always refused; an optional allow-list narrows the rest; read-only tokens
//! only get commands Redis itself flags `readonly` (read from `COMMAND`, so
//! the classification follows the server's version).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use crate::error::ApiError;
use crate::limiter_only::LimiterOnly;
use crate::resp::Value;

/// Commands that change per-connection state or block the connection; on a
/// multiplexed connection they would leak into other clients' requests.
const CONNECTION_STATE: &[&str] = &[
    "subscribe",
    "psubscribe",
    "ssubscribe",
    "unsubscribe",
    "punsubscribe",
    "sunsubscribe",
    "monitor",
    "multi",
    "exec",
    "discard",
    "watch",
    "unwatch",
    "select",
    "auth",
    "hello",
    "reset",
    "quit",
    "sync",
    "psync",
    "replconf",
    "client",
    "readonly",
    "readwrite",
    "asking",
    "blpop",
    "brpop",
    "brpoplpush",
    "blmove",
    "blmpop",
    "bzpopmin",
    "bzpopmax",
    "bzmpop",
    "wait",
    "waitaof",
];

/// Harmless commands Redis does not flag `readonly` but read-only tokens
/// still need (health checks, script existence checks).
const READ_ONLY_EXTRA: &[&str] = &["ping", "echo", "time", "script|exists"];

pub fn lower_name(args: &[Bytes]) -> String {
    args.first()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .unwrap_or_default()
}

pub fn sub_name(name: &str, args: &[Bytes]) -> Option<String> {
    args.get(1)
        .map(|s| format!("{name}|{}", String::from_utf8_lossy(s).to_ascii_lowercase()))
}

#[derive(Debug, Default)]
pub struct Policy {
    /// Lowercase `name` or `name|subcommand` entries; `None` allows all.
    pub allow: Option<HashSet<String>>,
    /// `--limiter-only`: edgelimit's scripts and deletions under prefixes.
    pub limiter_only: Option<LimiterOnly>,
    /// Whether read-only tokens may run scripts (`EVAL_RO` and friends).
    pub read_only_scripts_denied: bool,
}

impl Policy {
    /// Read-only tokens may not run scripts (`--read-only-scripts deny`).
    pub fn deny_read_only_scripts(mut self) -> Policy {
        self.read_only_scripts_denied = true;
        self
    }

    /// With `--limiter-only` besides the allow-list (both must pass).
    pub fn limiter_only(mut self, only: LimiterOnly) -> Policy {
        self.limiter_only = Some(only);
        self
    }

    pub fn new(allow: &[String]) -> Policy {
        let set: HashSet<String> = allow
            .iter()
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        Policy {
            allow: (!set.is_empty()).then_some(set),
            limiter_only: None,
            read_only_scripts_denied: false,
        }
    }

    /// Checks one command; `readonly` is given for read-only tokens.
    pub fn check(&self, args: &[Bytes], readonly: Option<&CommandTable>) -> Result<(), ApiError> {
        let name = lower_name(args);
        if name.is_empty() {
            return Err(ApiError::BadRequest("ERR empty command".into()));
        }
        if CONNECTION_STATE.contains(&name.as_str()) || is_blocking_stream_read(&name, args) {
            return Err(ApiError::BadRequest(format!(
                "ERR command '{name}' is not supported over REST (it needs a dedicated connection)"
            )));
        }
        if let Some(only) = &self.limiter_only {
            only.check(&name, args)?;
        }
        // Only the allow-list and read-only checks need `name|sub`.
        let sub = if self.allow.is_some() || readonly.is_some() {
            sub_name(&name, args)
        } else {
            None
        };
        if let Some(allow) = &self.allow {
            let ok = allow.contains(&name) || sub.as_ref().is_some_and(|s| allow.contains(s));
            if !ok {
                return Err(ApiError::Forbidden(format!(
                    "NOPERM command '{name}' is not allowed by this gateway"
                )));
            }
        }
        if let Some(table) = readonly {
            let script = matches!(name.as_str(), "eval_ro" | "evalsha_ro" | "fcall_ro");
            if script && self.read_only_scripts_denied {
                return Err(ApiError::Forbidden(
                    "NOPERM read-only tokens may not run scripts on this gateway".into(),
                ));
            }
            if !table.is_read_only(&name, sub.as_deref()) {
                return Err(ApiError::Forbidden(format!(
                    "NOPERM this token is read-only and '{name}' may write"
                )));
            }
        }
        Ok(())
    }
}

fn is_blocking_stream_read(name: &str, args: &[Bytes]) -> bool {
    (name == "xread" || name == "xreadgroup")
        && args.iter().any(|a| a.eq_ignore_ascii_case(b"block"))
}

/// Where a command's keys are, from the legacy `COMMAND` fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeySpec {
    pub first: i64,
    pub last: i64,
    pub step: i64,
    /// Keys whose positions depend on the arguments (EVAL, ZUNIONSTORE...).
    pub movable: bool,
}

/// Read-only classification and key positions, taken from the server's
/// `COMMAND` reply.
#[derive(Debug, Default)]
pub struct CommandTable {
    readonly: HashSet<String>,
    containers: HashSet<String>,
    keys: HashMap<String, KeySpec>,
}

impl CommandTable {
    pub fn from_reply(v: &Value) -> CommandTable {
        let mut t = CommandTable::default();
        if let Value::Array(entries) = v {
            for e in entries {
                t.add(e);
            }
        }
        t
    }

    fn add(&mut self, entry: &Value) {
        let Value::Array(f) = entry else { return };
        let Some(Value::Bulk(name)) = f.first() else {
            return;
        };
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        if let Some(Value::Array(flags)) = f.get(2) {
            let has = |flag: &[u8]| {
                flags
                    .iter()
                    .any(|x| matches!(x, Value::Simple(s) | Value::Bulk(s) if s.as_ref() == flag))
            };
            if has(b"readonly") {
                self.readonly.insert(name.clone());
            }
            let int = |i: usize| match f.get(i) {
                Some(Value::Int(n)) => *n,
                _ => 0,
            };
            let spec = KeySpec {
                first: int(3),
                last: int(4),
                step: int(5),
                movable: has(b"movablekeys"),
            };
            self.keys.insert(name.clone(), spec);
        }
        // Redis 7 lists subcommands (`script|load`) in the tenth field.
        if let Some(Value::Array(subs)) = f.get(9) {
            if !subs.is_empty() {
                self.containers.insert(name);
            }
            for s in subs {
                self.add(s);
            }
        }
    }

    /// Key positions of a command (`name` lowercase, `sub` as `name|sub`).
    pub fn key_spec(&self, name: &str, sub: Option<&str>) -> Option<KeySpec> {
        let key = match sub {
            Some(s) if self.containers.contains(name) => s,
            _ => name,
        };
        self.keys.get(key).copied()
    }

    pub fn is_read_only(&self, name: &str, sub: Option<&str>) -> bool {
        let key = match sub {
            Some(s) if self.containers.contains(name) => s,
            _ => name,
        };
        self.readonly.contains(key) || READ_ONLY_EXTRA.contains(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<Bytes> {
        v.iter().map(|s| Bytes::from(s.to_string())).collect()
    }

    fn entry(name: &str, flags: &[&str], subs: Vec<Value>) -> Value {
        let b = |s: &str| Value::Bulk(Bytes::from(s.to_string()));
        let flags = flags
            .iter()
            .map(|f| Value::Simple(Bytes::from(f.to_string())))
            .collect();
        let mut e = vec![b(name), Value::Int(-1), Value::Array(flags)];
        e.extend((0..6).map(|_| Value::Nil));
        e.push(Value::Array(subs));
        Value::Array(e)
    }

    #[test]
    fn refuses_connection_state_and_blocking() {
        let p = Policy::new(&[]);
        assert!(p.check(&args(&["GET", "k"]), None).is_ok());
        assert!(p.check(&args(&["subscribe", "c"]), None).is_err());
        assert!(p.check(&args(&["BLPOP", "l", "0"]), None).is_err());
        assert!(p
            .check(&args(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]), None)
            .is_err());
        assert!(p
            .check(&args(&["XREAD", "STREAMS", "s", "0"]), None)
            .is_ok());
        assert!(p.check(&[], None).is_err());
    }

    #[test]
    fn allow_list_and_read_only() {
        let p = Policy::new(&["evalsha".into(), "SCRIPT|LOAD".into()]);
        assert!(p.check(&args(&["EVALSHA", "x", "0"]), None).is_ok());
        assert!(p.check(&args(&["script", "load", "x"]), None).is_ok());
        assert!(p.check(&args(&["script", "flush"]), None).is_err());
        assert!(p.check(&args(&["get", "k"]), None).is_err());

        let table = CommandTable::from_reply(&Value::Array(vec![
            entry("get", &["readonly", "fast"], vec![]),
            entry("set", &["write"], vec![]),
            entry(
                "script",
                &[],
                vec![
                    entry("script|load", &["noscript"], vec![]),
                    entry("script|exists", &[], vec![]),
                ],
            ),
        ]));
        let p = Policy::new(&[]);
        assert!(p.check(&args(&["GET", "k"]), Some(&table)).is_ok());
        assert!(p.check(&args(&["PING"]), Some(&table)).is_ok());
        assert!(p.check(&args(&["SET", "k", "v"]), Some(&table)).is_err());
        assert!(p
            .check(&args(&["SCRIPT", "EXISTS", "x"]), Some(&table))
            .is_ok());
        assert!(p
            .check(&args(&["SCRIPT", "LOAD", "x"]), Some(&table))
            .is_err());
    }
}
