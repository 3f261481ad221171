//! `Pool` on fred (`--cfg edgelimit_gateway_client="fred"`), for comparison with `pool.rs` +
//! `conn.rs`: fred's static pool of `--pool-size` clients, each one
//! connection that reconnects by itself; a request's commands are one fred
//! pipeline on one client.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use fred::clients::Pool as FredPool;
use fred::error::ErrorKind;
use fred::interfaces::ClientLike;
use fred::types::config::Options;
use fred::types::config::{Config, ReconnectPolicy};
use fred::types::{Builder, ClusterHash, CustomCommand, Value as FValue};
use tokio::sync::OnceCell;

use crate::conn::ConnError;
use crate::resp::Value;
use crate::target::Target;

pub struct Pool {
    target: Target,
    size: usize,
    connect_timeout: Duration,
    pool: OnceCell<FredPool>,
    in_flight: AtomicUsize,
}

struct InFlight<'a>(&'a AtomicUsize);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn url(t: &Target) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let auth = match (&t.username, &t.password) {
        (Some(u), Some(p)) => format!("{}:{}@", enc(u), enc(p)),
        (None, Some(p)) => format!(":{}@", enc(p)),
        _ => String::new(),
    };
    format!("redis://{auth}{}:{}/{}", t.host, t.port, t.db)
}

impl Pool {
    pub fn new(target: Target, size: usize, connect_timeout: Duration) -> Pool {
        Pool {
            target,
            size: size.max(1),
            connect_timeout,
            pool: OnceCell::new(),
            in_flight: AtomicUsize::new(0),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    async fn pool(&self) -> Result<&FredPool, ConnError> {
        self.pool
            .get_or_try_init(|| async {
                let mut config = Config::from_url(&url(&self.target)).map_err(fred_error)?;
                config.fail_fast = true;
                let timeout = self.connect_timeout;
                let pool = Builder::from_config(config)
                    .with_connection_config(|c| {
                        c.connection_timeout = timeout;
                        c.max_command_attempts = 1;
                    })
                    // Reconnect every 100 ms, for ever.
                    .set_policy(ReconnectPolicy::new_constant(0, 100))
                    .build_pool(self.size)
                    .map_err(fred_error)?;
                pool.init().await.map_err(fred_error)?;
                Ok(pool)
            })
            .await
    }

    /// Runs commands as one pipeline on one client.
    pub async fn run<A: AsRef<[u8]>>(&self, cmds: &[Vec<A>]) -> Result<Vec<Value>, ConnError> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let _done = InFlight(&self.in_flight);
        let pool = self.pool().await?;
        let client = pool.next();
        let pipe = client.pipeline();
        // Fail at once while disconnected, instead of waiting for the
        // reconnection.
        let options = Options {
            fail_fast: true,
            ..Options::default()
        };
        let queue = pipe.with_options(&options);
        for c in cmds {
            let Some((name, args)) = c.split_first() else {
                continue;
            };
            let name = String::from_utf8_lossy(name.as_ref()).into_owned();
            let cmd = CustomCommand::new(name, ClusterHash::FirstKey, false);
            let args: Vec<FValue> = args
                .iter()
                .map(|a| FValue::Bytes(Bytes::copy_from_slice(a.as_ref())))
                .collect();
            let () = queue.custom(cmd, args).await.map_err(fred_error)?;
        }
        let results = pipe.try_all::<FValue>().await;
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            out.push(match r {
                Ok(v) => value(v),
                Err(e) if is_connection(e.kind()) => return Err(fred_error(e)),
                Err(e) => Value::Error(Bytes::from(e.details().to_string())),
            });
        }
        Ok(out)
    }
}

fn is_connection(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::IO | ErrorKind::Canceled | ErrorKind::Timeout | ErrorKind::Backpressure
    )
}

fn fred_error(e: fred::error::Error) -> ConnError {
    match e.kind() {
        ErrorKind::Timeout => ConnError::ConnectTimeout,
        ErrorKind::IO | ErrorKind::Canceled => ConnError::Lost,
        _ => ConnError::Handshake(e.to_string()),
    }
}

/// fred's reply as the gateway's. fred does not keep status replies apart
/// from bulk strings: "OK" is taken for a status.
fn value(v: FValue) -> Value {
    match v {
        FValue::Null => Value::Nil,
        FValue::Integer(i) => Value::Int(i),
        FValue::Boolean(b) => Value::Int(b as i64),
        FValue::Double(d) => Value::Bulk(Bytes::from(d.to_string())),
        FValue::String(s) if &*s == "OK" => Value::Simple(Bytes::from_static(b"OK")),
        FValue::String(s) => Value::Bulk(Bytes::from(s.to_string())),
        FValue::Bytes(b) => Value::Bulk(b),
        FValue::Queued => Value::Simple(Bytes::from_static(b"QUEUED")),
        FValue::Array(a) => Value::Array(a.into_iter().map(value).collect()),
        FValue::Map(m) => Value::Array(
            m.inner()
                .into_iter()
                .flat_map(|(k, v)| [Value::Bulk(Bytes::from(k.as_bytes().to_vec())), value(v)])
                .collect(),
        ),
    }
}
