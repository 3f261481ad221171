//! `Pool` on redis-rs (`--cfg edgelimit_gateway_client="redis-rs"`), for comparison with
//! `pool.rs` + `conn.rs`: `--pool-size` `ConnectionManager`s (each one
//! multiplexed connection that reconnects by itself), used round-robin.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};

use crate::conn::ConnError;
use crate::resp::Value;
use crate::target::Target;

pub struct Pool {
    target: Target,
    size: usize,
    connect_timeout: Duration,
    conns: OnceLock<Result<Vec<ConnectionManager>, String>>,
    next: AtomicUsize,
    in_flight: AtomicUsize,
}

/// The URL redis-rs reads, credentials percent-encoded.
pub(crate) fn url(t: &Target) -> String {
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let auth = match (&t.username, &t.password) {
        (Some(u), Some(p)) => format!("{}:{}@", enc(u), enc(p)),
        (None, Some(p)) => format!(":{}@", enc(p)),
        _ => String::new(),
    };
    let host = if t.host.contains(':') {
        format!("[{}]", t.host)
    } else {
        t.host.clone()
    };
    format!("redis://{auth}{host}:{}/{}", t.port, t.db)
}

struct InFlight<'a>(&'a AtomicUsize);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    pub fn new(target: Target, size: usize, connect_timeout: Duration) -> Pool {
        Pool {
            target,
            size: size.max(1),
            connect_timeout,
            conns: OnceLock::new(),
            next: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn conns(&self) -> Result<&[ConnectionManager], ConnError> {
        let made = self.conns.get_or_init(|| {
            let client = redis::Client::open(url(&self.target)).map_err(|e| e.to_string())?;
            // No response timeout: the request's own timeout bounds it.
            // One connection attempt per request while Redis is down, so
            // requests fail fast instead of waiting through backoff.
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.connect_timeout))
                .set_response_timeout(None)
                .set_number_of_retries(0);
            (0..self.size)
                .map(|_| {
                    ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                        .map_err(|e| e.to_string())
                })
                .collect()
        });
        made.as_deref().map_err(|e| ConnError::Handshake(e.clone()))
    }

    /// Runs commands as one contiguous batch on one connection.
    pub async fn run<A: AsRef<[u8]>>(&self, cmds: &[Vec<A>]) -> Result<Vec<Value>, ConnError> {
        let conns = self.conns()?;
        let i = self.next.fetch_add(1, Ordering::Relaxed) % conns.len();
        let mut conn = conns[i].clone();
        let mut pipe = redis::pipe();
        for c in cmds {
            let mut cmd = redis::Cmd::new();
            for a in c {
                cmd.arg(a.as_ref());
            }
            pipe.add_command(cmd);
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let _done = InFlight(&self.in_flight);
        let replies = conn
            .req_packed_commands(&pipe, 0, cmds.len())
            .await
            .map_err(conn_error)?;
        Ok(replies.into_iter().map(value).collect())
    }
}

pub(crate) fn conn_error(e: redis::RedisError) -> ConnError {
    if e.is_connection_refusal() {
        ConnError::Connect(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            e.to_string(),
        ))
    } else if e.is_timeout() {
        ConnError::ConnectTimeout
    } else if e.is_unrecoverable_error() || e.is_connection_dropped() || e.is_io_error() {
        ConnError::Lost
    } else {
        ConnError::Handshake(e.to_string())
    }
}

/// redis-rs' reply as the gateway's.
pub(crate) fn value(v: redis::Value) -> Value {
    use redis::Value as R;
    match v {
        R::Nil => Value::Nil,
        R::Int(i) => Value::Int(i),
        R::BulkString(b) => Value::Bulk(Bytes::from(b)),
        R::Array(a) | R::Set(a) => Value::Array(a.into_iter().map(value).collect()),
        R::SimpleString(s) => Value::Simple(Bytes::from(s)),
        R::Okay => Value::Simple(Bytes::from_static(b"OK")),
        R::Map(m) => Value::Array(
            m.into_iter()
                .flat_map(|(k, v)| [value(k), value(v)])
                .collect(),
        ),
        R::Attribute { data, .. } => value(*data),
        R::Double(d) => Value::Bulk(Bytes::from(d.to_string())),
        R::Boolean(b) => Value::Int(b as i64),
        R::VerbatimString { text, .. } => Value::Bulk(Bytes::from(text)),
        R::BigNumber(n) => Value::Bulk(Bytes::from(n)),
        R::Push { data, .. } => Value::Array(data.into_iter().map(value).collect()),
        R::ServerError(e) => {
            let text = match e.details() {
                Some(d) => format!("{} {d}", e.code()),
                None => e.code().to_string(),
            };
            Value::Error(Bytes::from(text))
        }
        _ => Value::Nil,
    }
}
