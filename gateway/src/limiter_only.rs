//! `--limiter-only`: the gateway runs edgelimit's own scripts (known by
//! SHA-1 when the gateway is built, plus `--script` files) on keys under the
//! configured prefixes, and deletes keys under them (a limiter's `reset`);
//! everything else is refused. An allow-list naming `eval` would let a token
//! run any Lua (`redis.call('FLUSHALL')`, `KEYS`, `SET` on any key); this
//! cannot.

use std::collections::HashSet;

use bytes::Bytes;

use crate::error::ApiError;
use crate::scripts::sha1_hex;

#[derive(Debug, Clone)]
pub struct LimiterOnly {
    /// Lowercase hex SHA-1 of every script that may run.
    shas: HashSet<Bytes>,
    /// Key prefixes a script's keys and a deletion's keys must start with.
    prefixes: Vec<Bytes>,
}

impl LimiterOnly {
    /// edgelimit's scripts, the `extra` script bodies, keys under `prefixes`.
    pub fn new(extra: &[String], prefixes: &[String]) -> LimiterOnly {
        let own = edgelimit::scripts::ALL.iter().map(|s| s.code().to_owned());
        let shas = own
            .chain(extra.iter().cloned())
            .map(|code| sha1_hex(code.as_bytes()))
            .collect();
        let prefixes = prefixes
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| Bytes::copy_from_slice(p.as_bytes()))
            .collect();
        LimiterOnly { shas, prefixes }
    }

    /// Allows `args` (a command, lowercase `name` first) or says why not.
    pub fn check(&self, name: &str, args: &[Bytes]) -> Result<(), ApiError> {
        match name {
            "evalsha" | "evalsha_ro" => {
                let sha = args.get(1).map(|s| Bytes::from(s.to_ascii_lowercase()));
                self.script(sha.as_ref(), args)
            }
            "eval" | "eval_ro" => self.script(args.get(1).map(|b| sha1_hex(b)).as_ref(), args),
            "script" => match args.get(1).map(|s| s.to_ascii_lowercase()).as_deref() {
                Some(b"exists") => Ok(()),
                Some(b"load")
                    if args
                        .get(2)
                        .is_some_and(|b| self.shas.contains(&sha1_hex(b))) =>
                {
                    Ok(())
                }
                _ => Err(refused("only registered scripts may be loaded")),
            },
            "del" | "unlink" if args.len() > 1 => self.keys(&args[1..]),
            "ping" => Ok(()),
            _ => Err(refused(&format!("'{name}' is not a limiter's command"))),
        }
    }

    /// A script call: registered, its keys under the prefixes.
    fn script(&self, sha: Option<&Bytes>, args: &[Bytes]) -> Result<(), ApiError> {
        if !sha.is_some_and(|sha| self.shas.contains(sha)) {
            return Err(refused(
                "only edgelimit's scripts (and --script files) may run",
            ));
        }
        let count = args
            .get(2)
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| {
                ApiError::BadRequest("ERR the number of keys is not an integer".into())
            })?;
        match args.get(3..3 + count) {
            Some(keys) => self.keys(keys),
            None => Err(ApiError::BadRequest("ERR more keys than arguments".into())),
        }
    }

    fn keys(&self, keys: &[Bytes]) -> Result<(), ApiError> {
        match keys
            .iter()
            .all(|key| self.prefixes.iter().any(|p| key.starts_with(p)))
        {
            true => Ok(()),
            false => Err(refused("a key outside the limiter's prefixes")),
        }
    }
}

fn refused(why: &str) -> ApiError {
    ApiError::Forbidden(format!("NOPERM limiter-only gateway: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(parts: &[&str]) -> Vec<Bytes> {
        parts.iter().map(|p| Bytes::from(p.to_string())).collect()
    }

    fn check(only: &LimiterOnly, parts: &[&str]) -> bool {
        let args = cmd(parts);
        only.check(&parts[0].to_ascii_lowercase(), &args).is_ok()
    }

    #[test]
    fn only_registered_scripts_on_prefixed_keys() {
        let only = LimiterOnly::new(&["return 1".into()], &["edgelimit:".into(), "app:".into()]);
        let fixed = edgelimit::scripts::FIXED_WINDOW.sha1();
        assert!(check(
            &only,
            &["EVALSHA", fixed, "1", "edgelimit:fw:1000:{a}", "1"]
        ));
        assert!(check(
            &only,
            &["evalsha", &fixed.to_uppercase(), "1", "app:x", "1"]
        ));
        assert!(!check(&only, &["EVALSHA", fixed, "1", "other:x", "1"]));
        assert!(!check(&only, &["EVALSHA", fixed, "2", "edgelimit:x"]));
        assert!(!check(&only, &["EVALSHA", &"0".repeat(40), "0"]));
        assert!(check(&only, &["EVAL", "return 1", "0"]));
        assert!(!check(
            &only,
            &["EVAL", "return redis.call('FLUSHALL')", "0"]
        ));
        let code = edgelimit::scripts::GCRA.code();
        assert!(check(&only, &["EVAL", code, "1", "edgelimit:g:{a}", "1"]));
        assert!(check(&only, &["SCRIPT", "LOAD", code]));
        assert!(!check(&only, &["SCRIPT", "LOAD", "return 2"]));
        assert!(!check(&only, &["SCRIPT", "FLUSH"]));
        assert!(check(&only, &["DEL", "edgelimit:fw:1000:{a}", "app:b"]));
        assert!(!check(&only, &["DEL", "edgelimit:x", "users:1"]));
        assert!(!check(&only, &["DEL"]));
        for other in [
            ["FLUSHALL"].as_slice(),
            &["KEYS", "*"],
            &["SET", "edgelimit:x", "1"],
            &["INFO"],
        ] {
            assert!(!check(&only, other), "{other:?}");
        }
    }
}
