//! One multiplexed connection to Redis.
//!
//! Many HTTP requests share a connection: each request hands a job (its
//! commands, already RESP-encoded, and how many replies they produce) to a
//! writer task, which coalesces queued jobs into one socket write. A reader
//! task decodes replies in order and hands each job its slice. Redis answers
//! a connection's commands strictly in order, so a job's commands stay
//! contiguous on the wire: a pipeline is one real pipeline and a
//! MULTI..EXEC block cannot interleave with other requests' commands.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::resp::{self, Value};
use crate::target::Target;

/// The largest reply read from Redis (`--max-reply-bytes`): a longer one
/// (`EVAL "return string.rep('x', 1e8)"`) is not buffered; its request gets
/// an error and the connection is replaced.
static MAX_REPLY_BYTES: AtomicUsize = AtomicUsize::new(16 << 20);

/// Sets the largest reply read from Redis, for every connection.
pub fn set_max_reply_bytes(max: usize) {
    MAX_REPLY_BYTES.store(max.max(1024), Ordering::Relaxed);
}

/// Bytes coalesced into one write at most; bounds latency added by batching.
const MAX_BATCH: usize = 256 * 1024;
/// Jobs queued per connection before callers wait (backpressure).
const QUEUE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("cannot connect to redis: {0}")]
    Connect(io::Error),
    #[error("timed out connecting to redis")]
    ConnectTimeout,
    #[error("redis rejected the connection setup: {0}")]
    Handshake(String),
    /// The connection was already closed; nothing of the job was sent, so
    /// the caller may retry it on a fresh connection.
    #[error("connection to redis closed")]
    Closed,
    /// The connection broke while the job was in flight: it may or may not
    /// have run, so it must not be retried blindly.
    #[error("connection to redis lost")]
    Lost,
}

pub struct Job {
    payload: Vec<u8>,
    replies: usize,
    done: oneshot::Sender<Vec<Value>>,
}

struct Pending {
    replies: usize,
    done: oneshot::Sender<Vec<Value>>,
}

/// A connection's end, shared by its users and its two tasks. Every request
/// asks whether it is closed: a flag answers without a lock (a
/// `CancellationToken` takes one, for every thread sending on the
/// connection to contend for); the tasks wait on the token.
#[derive(Clone, Default)]
struct Closing {
    flag: Arc<AtomicBool>,
    token: CancellationToken,
}

impl Closing {
    fn close(&self) {
        self.flag.store(true, Ordering::Release);
        self.token.cancel();
    }

    fn is_closed(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    fn closed(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }
}

pub struct Conn {
    jobs: mpsc::Sender<Job>,
    closed: Closing,
    /// Jobs sent and not yet answered; tells the writer whether waiting a
    /// moment for more jobs to batch is worth it.
    inflight: Arc<AtomicUsize>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.closed.close();
    }
}

impl Conn {
    pub async fn connect(target: &Target, timeout: Duration) -> Result<Arc<Conn>, ConnError> {
        let connect = async {
            let mut stream = TcpStream::connect((target.host.as_str(), target.port))
                .await
                .map_err(ConnError::Connect)?;
            stream.set_nodelay(true).map_err(ConnError::Connect)?;
            handshake(&mut stream, target).await?;
            Ok::<_, ConnError>(stream)
        };
        let stream = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| ConnError::ConnectTimeout)??;
        let (r, w) = stream.into_split();
        let (jobs_tx, jobs_rx) = mpsc::channel(QUEUE);
        let (pending_tx, pending_rx) = mpsc::unbounded_channel();
        let closed = Closing::default();
        let inflight = Arc::new(AtomicUsize::new(0));
        tokio::spawn(write_loop(
            w,
            jobs_rx,
            pending_tx,
            closed.clone(),
            inflight.clone(),
        ));
        tokio::spawn(read_loop(r, pending_rx, closed.clone(), inflight.clone()));
        Ok(Arc::new(Conn {
            jobs: jobs_tx,
            closed,
            inflight,
        }))
    }

    /// Requests sent on it and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_closed()
    }

    /// Sends RESP-encoded commands producing `replies` replies (at least 1)
    /// and returns those replies in order. On `Closed` the payload is handed
    /// back so the caller can retry elsewhere.
    pub async fn send(
        &self,
        payload: Vec<u8>,
        replies: usize,
    ) -> Result<Vec<Value>, (ConnError, Option<Vec<u8>>)> {
        debug_assert!(replies > 0);
        let (done, wait) = oneshot::channel();
        if self.is_closed() {
            return Err((ConnError::Closed, Some(payload)));
        }
        let job = Job {
            payload,
            replies,
            done,
        };
        self.inflight.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.jobs.send(job).await {
            self.inflight.fetch_sub(1, Ordering::Relaxed);
            return Err((ConnError::Closed, Some(e.0.payload)));
        }
        wait.await.map_err(|_| (ConnError::Lost, None))
    }
}

/// AUTH and SELECT from the URL, sent before the connection is shared.
async fn handshake(stream: &mut TcpStream, target: &Target) -> Result<(), ConnError> {
    let mut cmds: Vec<Vec<Vec<u8>>> = vec![];
    if let Some(pass) = &target.password {
        let mut c = vec![b"AUTH".to_vec()];
        if let Some(user) = &target.username {
            c.push(user.clone().into_bytes());
        }
        c.push(pass.clone().into_bytes());
        cmds.push(c);
    }
    if target.db != 0 {
        cmds.push(vec![b"SELECT".to_vec(), target.db.to_string().into_bytes()]);
    }
    if cmds.is_empty() {
        return Ok(());
    }
    let mut out = vec![];
    for c in &cmds {
        resp::encode_command(&mut out, c);
    }
    stream.write_all(&out).await.map_err(ConnError::Connect)?;
    let mut buf = BytesMut::with_capacity(512);
    let mut got = 0;
    while got < cmds.len() {
        match resp::parse(&mut buf) {
            Ok(Some(v)) => {
                if let Some(e) = v.error_text() {
                    return Err(ConnError::Handshake(e));
                }
                got += 1;
            }
            Ok(None) => {
                let n = stream
                    .read_buf(&mut buf)
                    .await
                    .map_err(ConnError::Connect)?;
                if n == 0 {
                    return Err(ConnError::Handshake("connection closed".into()));
                }
            }
            Err(e) => return Err(ConnError::Handshake(e.to_string())),
        }
    }
    Ok(())
}

async fn write_loop(
    mut w: OwnedWriteHalf,
    mut jobs: mpsc::Receiver<Job>,
    pending: mpsc::UnboundedSender<Pending>,
    closed: Closing,
    inflight: Arc<AtomicUsize>,
) {
    let mut buf = Vec::with_capacity(16 * 1024);
    let stop = closed.closed();
    tokio::pin!(stop);
    // Jobs come first (`biased`), so the flag is what ends the loop while
    // jobs keep arriving.
    while !closed.is_closed() {
        let first = tokio::select! {
            biased;
            j = jobs.recv() => j,
            () = &mut stop => None,
        };
        let Some(mut job) = first else { break };
        // Under load, let request tasks that are ready right now enqueue
        // their jobs too, so they share this write and Redis reads them in
        // one go. A lone request is written at once.
        if inflight.load(Ordering::Relaxed) > 1 {
            tokio::task::yield_now().await;
        }
        buf.clear();
        loop {
            buf.extend_from_slice(&job.payload);
            // Registered before the bytes hit the socket so the reader always
            // knows whom a reply belongs to.
            let p = Pending {
                replies: job.replies,
                done: job.done,
            };
            if pending.send(p).is_err() {
                break;
            }
            if buf.len() >= MAX_BATCH {
                break;
            }
            match jobs.try_recv() {
                Ok(j) => job = j,
                Err(_) => break,
            }
        }
        let res = tokio::select! {
            biased;
            r = w.write_all(&buf) => r,
            () = &mut stop => break,
        };
        if let Err(e) = res {
            tracing::warn!(error = %e, "redis write failed; dropping connection");
            break;
        }
    }
    closed.close();
}

async fn read_loop(
    mut r: OwnedReadHalf,
    mut pending: mpsc::UnboundedReceiver<Pending>,
    closed: Closing,
    inflight: Arc<AtomicUsize>,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let stop = closed.closed();
    tokio::pin!(stop);
    let mut current: Option<(Pending, Vec<Value>)> = None;
    'outer: loop {
        loop {
            let v = match resp::parse(&mut buf) {
                Ok(Some(v)) => v,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "dropping redis connection");
                    break 'outer;
                }
            };
            if current.is_none() {
                match pending.try_recv() {
                    Ok(p) => {
                        let cap = p.replies.min(1024);
                        current = Some((p, Vec::with_capacity(cap)));
                    }
                    Err(_) => {
                        // A reply nobody asked for: the stream is out of sync.
                        tracing::warn!("unexpected reply from redis; dropping connection");
                        break 'outer;
                    }
                }
            }
            let Some((p, vals)) = current.as_mut() else {
                break 'outer;
            };
            vals.push(v);
            if vals.len() >= p.replies {
                if let Some((p, vals)) = current.take() {
                    inflight.fetch_sub(1, Ordering::Relaxed);
                    // The caller may have given up (timeout); that is fine.
                    let _ = p.done.send(vals);
                }
            }
        }
        let max = MAX_REPLY_BYTES.load(Ordering::Relaxed);
        if buf.len() > max {
            // The reply in progress is past the cap: its request gets an
            // error, and the stream (which cannot be resynchronised without
            // reading the rest) is dropped.
            let job = match current.take() {
                Some(job) => Some(job),
                None => pending.try_recv().ok().map(|p| (p, Vec::new())),
            };
            if let Some((p, mut vals)) = job {
                let error = format!("ERR reply larger than {max} bytes (--max-reply-bytes)");
                vals.resize(p.replies, Value::Error(error.into()));
                inflight.fetch_sub(1, Ordering::Relaxed);
                let _ = p.done.send(vals);
            }
            tracing::warn!(
                max,
                "a reply past --max-reply-bytes; dropping the redis connection"
            );
            break 'outer;
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        let n = tokio::select! {
            biased;
            n = r.read_buf(&mut buf) => n,
            () = &mut stop => break,
        };
        match n {
            Ok(0) => {
                tracing::warn!("redis closed the connection");
                break;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "redis read failed; dropping connection");
                break;
            }
        }
    }
    closed.close();
}
