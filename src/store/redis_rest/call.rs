//! A transition as a script call on one Redis key: what every transport
//! sends, alone or in a batch.

use super::deny_cache::DenyCache;
use super::json::{self, Json};
use super::options::TimeSource;
use super::protocol;
use crate::scripts::Script;
use crate::store::{Answer, Key, KeysTransition, Remote, Transition};
use crate::Error;

/// One script call, ready to send. Its key and arguments are kept as JSON
/// fragments, written once: a call may be sent more than once (EVAL after
/// NOSCRIPT, retries), alone or in a batch.
#[derive(Debug)]
pub(crate) struct ScriptCall {
    pub(crate) script: &'static Script,
    /// The Redis keys, as JSON strings joined by commas (one but for a
    /// step on several keys, which is never batched).
    key_json: String,
    key_count: usize,
    /// `ARGV` (the time first), as JSON strings joined by commas.
    args_json: String,
    arg_count: usize,
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
        Ok(Self::of(&[key], now_ms, transition.remote()?, time))
    }

    /// The call standing for `transition` on `keys` at `now_ms`.
    pub(crate) fn prepare_keys<T: KeysTransition>(
        keys: &[Key<'_>],
        now_ms: u64,
        transition: &T,
        time: TimeSource,
    ) -> Result<Self, Error> {
        Ok(Self::of(keys, now_ms, transition.remote()?, time))
    }

    /// The call of `remote` (not generic: every transition shares it).
    fn of(keys: &[Key<'_>], now_ms: u64, remote: Remote, time: TimeSource) -> Self {
        let mut key_json = String::with_capacity(keys.len() * 24);
        for key in keys {
            if !key_json.is_empty() {
                key_json.push(',');
            }
            json::push_str(&mut key_json, &redis_key(*key));
        }
        let mut args_json = String::with_capacity(16 + 8 * remote.args.len());
        match time {
            TimeSource::Redis => args_json.push_str("\"\""),
            TimeSource::Caller => json::push_str(&mut args_json, &now_ms.to_string()),
        }
        for arg in &remote.args {
            args_json.push(',');
            json::push_str(&mut args_json, arg);
        }
        Self {
            script: remote.script,
            key_json,
            key_count: keys.len(),
            args_json,
            arg_count: remote.args.len() + 1,
            idempotent: remote.idempotent,
        }
    }

    /// Its request body alone: EVALSHA, or EVAL with the code when `eval`.
    pub(crate) fn body(&self, eval: bool) -> String {
        protocol::script_body(
            self.script,
            eval,
            self.key_count,
            &self.key_json,
            &self.args_json,
        )
    }

    /// Whether the batch script can run it: a call of one of its scripts
    /// on one key.
    pub(crate) fn batchable(&self) -> bool {
        self.key_count == 1 && self.script.batch_number().is_some()
    }

    /// Its script's number in the batch script.
    pub(crate) fn batch_number(&self) -> usize {
        self.script.batch_number().unwrap_or(0)
    }

    /// Its arguments after the script's number and their count, as JSON.
    pub(crate) fn args_json(&self) -> &str {
        &self.args_json
    }

    /// Appends its key to `keys` and its arguments to `args` as the batch
    /// script takes them: its script's number, their count, then them; or,
    /// when they are `same` as the previous call's, only `0`.
    pub(crate) fn push_into_batch(&self, keys: &mut String, args: &mut String, same: bool) {
        if !keys.is_empty() {
            keys.push(',');
            args.push(',');
        }
        keys.push_str(&self.key_json);
        if same {
            args.push_str("\"0\"");
            return;
        }
        json::push_str(args, &self.batch_number().to_string());
        args.push(',');
        json::push_str(args, &self.arg_count.to_string());
        args.push(',');
        args.push_str(&self.args_json);
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
    let answer = decode(json, transition)?;
    Ok(match cache {
        Some(cache) => cache.learn(key, sent_ms, transition, answer),
        None => answer.output,
    })
}

/// A step on several keys: its answer from its script's result `json`.
pub(crate) fn conclude_keys<T: KeysTransition>(
    json: &Json,
    transition: &T,
) -> Result<T::Output, Error> {
    Ok(transition.decode(&protocol::integers(json)?)?)
}

/// `transition`'s reading of its script's result `json`.
pub(crate) fn decode<T: Transition>(
    json: &Json,
    transition: &T,
) -> Result<Answer<T::Output, T::State>, Error> {
    Ok(transition.decode(&protocol::integers(json)?)?)
}

/// The Redis key of `key`: in a hash tag, so every key one script touches
/// lives in one cluster slot.
pub(crate) fn redis_key(key: Key<'_>) -> String {
    // Not `format!`: this runs for every call, and the formatting
    // machinery costs more than the copies.
    let mut text = String::with_capacity(key.prefix.len() + key.id.len() + 2);
    text.push_str(key.prefix);
    text.push('{');
    text.push_str(key.id);
    text.push('}');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Consume;
    use crate::{scripts, FixedWindow};

    #[test]
    fn bodies_alone_and_in_a_batch() {
        let algorithm = FixedWindow::new(3, "1 s").unwrap();
        let consume = Consume {
            algorithm: &algorithm,
            cost: 2,
        };
        let key = Key {
            prefix: "p:",
            id: "a\"b",
        };
        let call = ScriptCall::prepare(key, 1_000, &consume, TimeSource::Caller).unwrap();
        let sha = scripts::FIXED_WINDOW.sha1();
        assert_eq!(
            call.body(false),
            format!(r#"["EVALSHA","{sha}","1","p:{{a\"b}}","1000","2","0","3","1000"]"#)
        );
        assert!(call
            .body(true)
            .starts_with(r#"["EVAL","-- edgelimit fixed_window\n"#));
        let redis_time = ScriptCall::prepare(key, 1_000, &consume, TimeSource::Redis).unwrap();
        assert!(redis_time
            .body(false)
            .ends_with(r#","","2","0","3","1000"]"#));

        let (mut keys, mut args) = (String::new(), String::new());
        call.push_into_batch(&mut keys, &mut args, false);
        redis_time.push_into_batch(&mut keys, &mut args, false);
        redis_time.push_into_batch(&mut keys, &mut args, true);
        assert_eq!(keys, r#""p:{a\"b}","p:{a\"b}","p:{a\"b}""#);
        assert_eq!(
            args,
            r#""1","5","1000","2","0","3","1000","1","5","","2","0","3","1000","0""#
        );
    }
}
