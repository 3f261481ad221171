//! Threads that serve connections, one single-threaded runtime each.
//!
//! A connection, once accepted, lives on one of them: its HTTP task, the
//! tasks of the Redis connection its thread sends on (see `pool.rs`), and
//! every wake-up between them stay on that thread. A work-stealing runtime
//! moves them between threads, and every move is a cross-thread wake-up (a
//! futex call, and in a virtual machine an interrupt between cores): with
//! the work-stealing runtime these threads replaced, the gateway used a
//! third more CPU per request than on one thread at one request at a time,
//! and 16 µs against 13 µs at 100 (`bench/gateway/run.sh`'s CPU column, 2
//! cores). Connections are dealt to the thread serving the fewest.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The serving threads; dropping it stops them (what runs there is dropped).
pub struct Workers {
    threads: Vec<Worker>,
}

struct Worker {
    handle: Handle,
    /// Connections it serves now.
    serving: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Workers {
    /// Starts `n` threads (at least one), each running a runtime.
    pub fn start(n: usize) -> io::Result<Workers> {
        let mut threads = Vec::with_capacity(n.max(1));
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = rt.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("edgelimit-gateway-{i}"))
                .spawn(move || {
                    crate::pool::number_this_thread(i);
                    let _ = rt.block_on(stopped);
                })?;
            threads.push(Worker {
                handle,
                serving: Arc::default(),
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(Workers { threads })
    }

    /// Runs `serve(stream)` for an accepted connection on the thread serving
    /// the fewest, its socket moved to that thread's runtime.
    pub fn spawn<F, Fut>(&self, tcp: TcpStream, serve: F) -> io::Result<()>
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let worker = self
            .threads
            .iter()
            .min_by_key(|w| w.serving.load(Ordering::Relaxed))
            .expect("at least one worker");
        let tcp = tcp.into_std()?;
        let serving = Serving::new(worker.serving.clone());
        worker.handle.spawn(async move {
            let _serving = serving;
            // Registered with this thread's reactor from here on.
            if let Ok(tcp) = TcpStream::from_std(tcp) {
                serve(tcp).await;
            }
        });
        Ok(())
    }
}

/// One connection counted on its thread for as long as it is served.
struct Serving(Arc<AtomicUsize>);

impl Serving {
    fn new(count: Arc<AtomicUsize>) -> Serving {
        count.fetch_add(1, Ordering::Relaxed);
        Serving(count)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for w in &mut self.threads {
            if let Some(stop) = w.stop.take() {
                let _ = stop.send(());
            }
        }
        for w in &mut self.threads {
            if let Some(thread) = w.thread.take() {
                let _ = thread.join();
            }
        }
    }
}
