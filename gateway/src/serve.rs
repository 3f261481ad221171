//! Accepting and keeping HTTP connections, with bounds no client can get
//! around: a request's head must arrive within `header_timeout` of its first
//! byte (slowloris), a kept-alive connection may idle `idle_timeout`, and at
//! most `max_connections` are open, idle ones closed first to make room.
//! Without them a few hundred idle sockets lock every real client out.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::poll_fn;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use axum::response::Response;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::metrics::Metrics;
use crate::workers::Workers;

/// How long connections may take and how many may be open.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From a request's first byte to the end of its head.
    pub header_timeout: Duration,
    /// A kept-alive (or new) connection with no request.
    pub idle_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
}

/// `configured`, lowered to fit the process's descriptor limit (when it can
/// be read) with room for Redis connections and the rest: past the limit,
/// accepting fails and silent sockets would hold every slot.
pub fn connection_cap(configured: usize, pool_size: usize) -> usize {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        });
    let cap = match limit {
        Some(limit) => configured.min(limit.saturating_sub(32 + 2 * pool_size)),
        None => configured,
    };
    if cap < configured {
        tracing::warn!(
            configured,
            cap,
            "max connections lowered to the descriptor limit"
        );
    }
    cap.max(1)
}

/// What the server knows of one connection.
struct Conn {
    /// Requests being answered.
    in_flight: AtomicUsize,
    /// When the last response was sent or the connection opened (ms since
    /// the server started).
    idle_since_ms: AtomicU64,
    /// When the first byte of a request not yet answered arrived (0: none).
    head_started_ms: AtomicU64,
    /// Closes it.
    close: CloseSignal,
    /// When the server started (what the times above count from).
    started: Instant,
}

impl Conn {
    fn now_ms(&self) -> u64 {
        now_ms(self.started)
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started_ms.load(Ordering::Acquire) == 0
    }
}

/// Closing a connection from outside its task (the reaper, the cap,
/// shutdown). The task checks it on every wake-up, a few times per request:
/// a flag and a waker answer without the lock a `CancellationToken` takes.
#[derive(Default)]
struct CloseSignal {
    closed: AtomicBool,
    waker: AtomicWaker,
}

impl CloseSignal {
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Resolves once closed.
    async fn closed(&self) {
        poll_fn(|cx| {
            if self.is_closed() {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // Closed between the check and the registration: its wake-up
            // may have found no waker.
            if self.is_closed() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

/// Every open connection, by number.
struct Registry {
    started: Instant,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    closing: AtomicBool,
}

/// Milliseconds since `started`, never 0: 0 marks "no request started".
fn now_ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64 + 1
}

impl Registry {
    fn now_ms(&self) -> u64 {
        now_ms(self.started)
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes room for one more connection: closes the connection idle the
    /// longest when at `max`. False when every one is busy.
    fn admit(&self, max: usize) -> bool {
        let conns = self.conns();
        if conns.len() < max {
            return true;
        }
        let oldest_idle = conns
            .values()
            .filter(|c| c.is_idle() && !c.close.is_closed())
            .min_by_key(|c| c.idle_since_ms.load(Ordering::Acquire));
        match oldest_idle {
            Some(conn) => {
                conn.close.close();
                true
            }
            None => false,
        }
    }

    /// Closes what overstayed: heads too slow, idle connections too idle.
    fn reap(&self, limits: &Limits) {
        let now = self.now_ms();
        let header_ms = limits.header_timeout.as_millis() as u64;
        let idle_ms = limits.idle_timeout.as_millis() as u64;
        for conn in self.conns().values() {
            if conn.in_flight.load(Ordering::Acquire) > 0 {
                continue;
            }
            let started = conn.head_started_ms.load(Ordering::Acquire);
            let overdue = match started {
                0 => now.saturating_sub(conn.idle_since_ms.load(Ordering::Acquire)) > idle_ms,
                started => now.saturating_sub(started) > header_ms,
            };
            if overdue {
                conn.close.close();
            }
        }
    }
}

/// Serves `handler`'s answers on `listener` until `shutdown` resolves, then
/// lets the requests in flight finish. Connections are served on `workers`'
/// threads, or without them on the runtime this runs on.
pub async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    limits: Limits,
    metrics: Arc<Metrics>,
    workers: Option<&Workers>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let registry = Arc::new(Registry {
        started: Instant::now(),
        conns: Mutex::new(HashMap::new()),
        next: AtomicU64::new(0),
        closing: AtomicBool::new(false),
    });
    let reaper = tokio::spawn({
        let registry = registry.clone();
        async move {
            let tick = (limits.header_timeout.min(limits.idle_timeout) / 4)
                .clamp(Duration::from_millis(10), Duration::from_millis(250));
            let mut interval = tokio::time::interval(tick);
            loop {
                interval.tick().await;
                registry.reap(&limits);
            }
        }
    });
    let mut shutdown = pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of descriptors and the like: the connections still
                // open will close; try again shortly.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if !registry.admit(limits.max_connections) {
            tracing::warn!(
                max = limits.max_connections,
                "at the connection cap with every connection busy: refused one"
            );
            continue;
        }
        // Responses are written whole; never hold them back for Nagle.
        let _ = tcp.set_nodelay(true);
        spawn_connection(
            tcp,
            handler.clone(),
            registry.clone(),
            metrics.clone(),
            workers,
        );
    }
    reaper.abort();
    // Idle connections close now, busy ones after their response.
    registry.closing.store(true, Ordering::Release);
    let open: Vec<Arc<Conn>> = registry.conns().values().cloned().collect();
    for conn in &open {
        conn.close.close();
    }
    while !registry.conns().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

fn spawn_connection<H, F>(
    tcp: TcpStream,
    handler: H,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    workers: Option<&Workers>,
) where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let id = registry.next.fetch_add(1, Ordering::Relaxed);
    let conn = Arc::new(Conn {
        in_flight: AtomicUsize::new(0),
        idle_since_ms: AtomicU64::new(registry.now_ms()),
        head_started_ms: AtomicU64::new(0),
        close: CloseSignal::default(),
        started: registry.started,
    });
    registry.conns().insert(id, conn.clone());
    metrics.connections.fetch_add(1, Ordering::Relaxed);
    let registered = Registered {
        registry: registry.clone(),
        metrics,
        id,
    };
    let serve = move |tcp: TcpStream| async move {
        let _registered = registered;
        let io = TokioIo::new(Watched {
            inner: tcp,
            conn: conn.clone(),
            pending: Vec::new(),
        });
        // The handler called straight from hyper (no router, no boxed
        // future), counting the connection's requests in flight.
        let service = hyper::service::service_fn({
            let conn = conn.clone();
            move |request| {
                conn.in_flight.fetch_add(1, Ordering::AcqRel);
                conn.head_started_ms.store(0, Ordering::Release);
                let response = handler(request);
                let conn = conn.clone();
                async move {
                    let response = response.await;
                    conn.idle_since_ms.store(conn.now_ms(), Ordering::Release);
                    conn.in_flight.fetch_sub(1, Ordering::AcqRel);
                    Ok::<_, Infallible>(response)
                }
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.keep_alive(true);
        let connection = builder.serve_connection(io, service);
        let mut connection = pin!(connection);
        tokio::select! {
            _ = connection.as_mut() => {}
            () = conn.close.closed() => {
                if registry.closing.load(Ordering::Acquire) {
                    // Shutting down: finish what is in flight.
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
                // Otherwise it overstayed or was idle at the cap: dropped.
            }
        }
    };
    match workers {
        None => {
            tokio::spawn(serve(tcp));
        }
        Some(workers) => {
            if let Err(error) = workers.spawn(tcp, serve) {
                // The socket could not be handed over: closed (and, with
                // `serve`, its place in the registry given up).
                tracing::warn!(%error, "cannot hand a connection to a serving thread");
            }
        }
    }
}

/// A connection's place in the registry and in the gauge, given up when
/// dropped: when its task ends, or if it never ran (a socket that could not
/// be handed to a serving thread). Shutdown waits for every place to go.
struct Registered {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.conns().remove(&self.id);
        self.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connection's socket, noting when a request starts to arrive, and
/// giving the error replies hyper writes itself (a malformed request line,
/// a URI or head too large, a bad length: before any request reached the
/// handler) the JSON body every other error has.
struct Watched {
    inner: TcpStream,
    conn: Arc<Conn>,
    /// A rewritten error reply not yet fully written.
    pending: Vec<u8>,
}

impl Watched {
    /// Writes what is pending; ready once nothing is.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.pending) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.pending.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// An error reply with an empty body and no content type (hyper's own, for
/// requests it could not read) as one with a JSON body, or `None` for any
/// other write.
fn json_error_reply(head: &[u8]) -> Option<Vec<u8>> {
    if !head.starts_with(b"HTTP/1.1 4") && !head.starts_with(b"HTTP/1.1 5") {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let lower = head.to_ascii_lowercase();
    if !body.is_empty()
        || lower.contains("\r\ncontent-type:")
        || !lower.contains("\r\ncontent-length: 0")
    {
        return None;
    }
    let status_line = head.strip_prefix("HTTP/1.1 ")?.lines().next()?;
    let status: u16 = status_line.get(..3)?.parse().ok()?;
    let reason = status_line.get(4..).unwrap_or("").trim();
    let body = format!(r#"{{"error":"{status} {reason}: the request could not be read"}}"#);
    Some(
        format!(
            "HTTP/1.1 {status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before && self.conn.in_flight.load(Ordering::Acquire) == 0 {
            // Bytes with no request being answered: a head is on its way.
            let now = self.conn.now_ms();
            let _ = self.conn.head_started_ms.compare_exchange(
                0,
                now,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Err(e)) = self.drain(cx) {
            return Poll::Ready(Err(e));
        }
        if !self.pending.is_empty() {
            return Poll::Pending;
        }
        // An error reply with an empty body and no type is hyper's own:
        // sent with a JSON body instead.
        if let Some(reply) = json_error_reply(buf) {
            self.pending = reply;
            let _ = self.drain(cx);
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_shutdown(cx),
            other => other,
        }
    }
}
