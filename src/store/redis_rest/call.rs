//! A transition as a script call on one Redis key: what both transports send.

use super::deny_cache::DenyCache;
use super::json::Json;
use super::options::TimeSource;
use super::protocol;
use crate::scripts::Script;
use crate::store::{Key, Transition};
use crate::Error;

/// One script call, ready to send.
pub(crate) struct ScriptCall {
    pub(crate) script: &'static Script,
    pub(crate) key: String,
    /// `ARGV`, the time first.
    pub(crate) args: Vec<String>,
    pub(crate) idempotent: bool,
}

impl ScriptCall {
    /// The call standing for `transition` on `key` at `now_ms`; the time is
    /// left empty for Redis to read when `time` says so.
    pub(crate) fn prepare<T: Transition>(
        key: Key<'_>,
        now_ms: u64,
        transition: &T,
        time: TimeSource,
    ) -> Result<Self, Error> {
        let remote = transition.remote()?;
        let mut args = Vec::with_capacity(remote.args.len() + 1);
        args.push(match time {
            TimeSource::Redis => String::new(),
            TimeSource::Caller => now_ms.to_string(),
        });
        args.extend(remote.args);
        Ok(Self {
            script: remote.script,
            key: redis_key(key),
            args,
            idempotent: remote.idempotent,
        })
    }

    /// Its request body: EVALSHA, or EVAL with the code when `eval`.
    pub(crate) fn body(&self, eval: bool) -> String {
        super::protocol::script_body(
            self.script.sha1(),
            self.script.code(),
            eval,
            &self.key,
            &self.args,
        )
    }
}

/// `transition`'s answer from its script's result `json`, for a call on
/// `key` prepared at local time `sent_ms`; the deny cache, if any, learns
/// from it.
pub(crate) fn conclude<T: Transition>(
    json: &Json,
    key: Key<'_>,
    sent_ms: u64,
    transition: &T,
    cache: Option<&DenyCache>,
) -> Result<T::Output, Error> {
    let answer = transition.decode(&protocol::integers(json)?)?;
    Ok(match cache {
        Some(cache) => cache.learn(key, sent_ms, transition, answer),
        None => answer.output,
    })
}

/// The Redis key of `key`: in a hash tag, so every key one script touches
/// lives in one cluster slot.
pub(crate) fn redis_key(key: Key<'_>) -> String {
    format!("{{{}{}}}", key.prefix, key.id)
}
