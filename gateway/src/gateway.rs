//! Runs checked commands on Redis: single commands, pipelines, transactions,
//! with the script-shebang rewriting of `scripts.rs` applied on the way.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::OnceCell;

use crate::backend::{Backend, Health};
use crate::conn::ConnError;
use crate::error::ApiError;
use crate::policy::{lower_name, CommandTable, Policy};
use crate::resp::Value;
use crate::scripts::{sha1_hex, Rewritten, Scripts};

pub struct Gateway {
    backend: Backend,
    scripts: Scripts,
    policy: Policy,
    table: OnceCell<Arc<CommandTable>>,
}

/// What to do with a command's reply after it ran.
enum Fixup {
    None,
    /// SCRIPT LOAD of a rewritten script: answer with the original's SHA.
    ReturnSha(Bytes),
    /// EVALSHA of a rewritten script: on NOSCRIPT, send its text with EVAL.
    RetryEval(Arc<Rewritten>, &'static str),
}

impl Gateway {
    pub fn new(backend: Backend, policy: Policy) -> Gateway {
        Gateway {
            backend,
            scripts: Scripts::default(),
            policy,
            table: OnceCell::new(),
        }
    }

    /// Remembers at most `max_bytes` of rewritten script text.
    pub fn with_script_cache_bytes(mut self, max_bytes: usize) -> Gateway {
        self.scripts = Scripts::with_max_bytes(max_bytes);
        self
    }

    /// Key positions are needed to route commands in a cluster.
    async fn routing_table(&self) -> Result<Option<Arc<CommandTable>>, ConnError> {
        if self.backend.is_cluster() {
            Ok(Some(self.command_table().await?))
        } else {
            Ok(None)
        }
    }

    /// Refuses the whole request before anything runs if one command is not
    /// allowed, so a pipeline never half-executes because of policy.
    pub async fn check(&self, cmds: &[Vec<Bytes>], read_only: bool) -> Result<(), ApiError> {
        let table = if read_only {
            Some(self.command_table().await?)
        } else {
            None
        };
        for c in cmds {
            self.policy.check(c, table.as_deref())?;
        }
        Ok(())
    }

    async fn command_table(&self) -> Result<Arc<CommandTable>, ConnError> {
        self.table
            .get_or_try_init(|| async {
                let v = self.backend.run_any(&["COMMAND"]).await?;
                let t = CommandTable::from_reply(&v);
                Ok::<_, ConnError>(Arc::new(t))
            })
            .await
            .cloned()
    }

    /// What `/metrics` reads at scrape time: Redis requests in flight and
    /// scripts remembered.
    pub fn gauges(&self) -> (usize, usize) {
        (self.backend.in_flight(), self.scripts.len())
    }

    /// Stops scripts holding Redis (see [`Backend::kill_busy_scripts`]).
    pub async fn kill_busy_scripts(&self) {
        self.backend
            .kill_busy_scripts(std::time::Duration::from_secs(1))
            .await;
    }

    pub async fn health(&self) -> Health {
        self.backend.health().await
    }

    pub async fn single(&self, args: Vec<Bytes>) -> Result<Value, ApiError> {
        let mut v = self.pipeline(vec![args]).await?;
        Ok(v.pop().unwrap_or(Value::Nil))
    }

    pub async fn pipeline(&self, mut cmds: Vec<Vec<Bytes>>) -> Result<Vec<Value>, ApiError> {
        let fixups: Vec<Fixup> = cmds.iter_mut().map(|c| self.prepare(c, false)).collect();
        let table = self.routing_table().await?;
        let mut out = self.backend.run(&cmds, table.as_deref()).await?;

        // Scripts Redis forgot (restart, flush): re-send their text, in one
        // second round trip.
        let mut retry_idx = vec![];
        let mut retry_cmds = vec![];
        for (i, f) in fixups.iter().enumerate() {
            if let Fixup::RetryEval(script, eval) = f {
                if is_noscript(&out[i]) {
                    let mut c = vec![Bytes::from_static(eval.as_bytes()), script.text.clone()];
                    c.extend(cmds[i].iter().skip(2).cloned());
                    retry_idx.push(i);
                    retry_cmds.push(c);
                }
            }
        }
        if !retry_cmds.is_empty() {
            let again = self.backend.run(&retry_cmds, table.as_deref()).await?;
            for (i, v) in retry_idx.into_iter().zip(again) {
                out[i] = v;
            }
        }
        for (v, f) in out.iter_mut().zip(&fixups) {
            apply(v, f);
        }
        Ok(out)
    }

    /// MULTI/EXEC. A transaction Redis refused (EXECABORT, when a command
    /// failed to queue) is a command error for the whole request.
    pub async fn multi_exec(&self, mut cmds: Vec<Vec<Bytes>>) -> Result<Vec<Value>, ApiError> {
        let fixups: Vec<Fixup> = cmds.iter_mut().map(|c| self.prepare(c, true)).collect();
        let n = cmds.len();
        let mut batch = Vec::with_capacity(n + 2);
        batch.push(vec![Bytes::from_static(b"MULTI")]);
        batch.extend(cmds);
        batch.push(vec![Bytes::from_static(b"EXEC")]);
        let table = self.routing_table().await?;
        let mut out = self
            .backend
            .run_transaction(&batch, table.as_deref())
            .await?;
        if let Some(e) = out[0].error_text() {
            return Err(ApiError::Command(e));
        }
        let queue_error = out[1..=n].iter().find_map(Value::error_text);
        match out.pop() {
            Some(Value::Array(mut results)) => {
                for (v, f) in results.iter_mut().zip(&fixups) {
                    apply(v, f);
                }
                Ok(results)
            }
            Some(Value::Error(e)) => {
                let mut msg = String::from_utf8_lossy(&e).into_owned();
                if let Some(q) = queue_error {
                    msg = format!("{msg} ({q})");
                }
                Err(ApiError::Command(msg))
            }
            _ => Err(ApiError::Command("EXECABORT transaction aborted".into())),
        }
    }

    /// Rewrites script commands in place (see `scripts.rs`). Inside MULTI an
    /// EVALSHA of a rewritten script becomes EVAL of its text, since a
    /// NOSCRIPT there cannot be retried without breaking atomicity.
    fn prepare(&self, args: &mut [Bytes], in_multi: bool) -> Fixup {
        let name = lower_name(args);
        match name.as_str() {
            "eval" | "eval_ro" if args.len() >= 2 => {
                if let Some(r) = self.scripts.prepare(&args[1]) {
                    args[1] = r.text.clone();
                }
                Fixup::None
            }
            "evalsha" | "evalsha_ro" if args.len() >= 2 => {
                let Some(r) = self.scripts.lookup(&args[1]) else {
                    return Fixup::None;
                };
                let eval = if name == "evalsha" { "EVAL" } else { "EVAL_RO" };
                if in_multi {
                    args[0] = Bytes::from_static(eval.as_bytes());
                    args[1] = r.text.clone();
                    Fixup::None
                } else {
                    args[1] = r.sha.clone();
                    Fixup::RetryEval(r, eval)
                }
            }
            "script" if args.len() >= 2 => {
                let sub = args[1].to_ascii_lowercase();
                match sub.as_slice() {
                    b"load" if args.len() == 3 => match self.scripts.prepare(&args[2]) {
                        Some(r) => {
                            let original = sha1_hex(&args[2]);
                            args[2] = r.text.clone();
                            Fixup::ReturnSha(original)
                        }
                        None => Fixup::None,
                    },
                    b"exists" => {
                        for a in args.iter_mut().skip(2) {
                            if let Some(r) = self.scripts.lookup(a) {
                                *a = r.sha.clone();
                            }
                        }
                        Fixup::None
                    }
                    b"flush" => {
                        self.scripts.clear();
                        Fixup::None
                    }
                    _ => Fixup::None,
                }
            }
            _ => Fixup::None,
        }
    }
}

fn is_noscript(v: &Value) -> bool {
    matches!(v, Value::Error(e) if e.starts_with(b"NOSCRIPT"))
}

fn apply(v: &mut Value, f: &Fixup) {
    if let (Fixup::ReturnSha(sha), false) = (f, v.is_error()) {
        *v = Value::Bulk(sha.clone());
    }
}
