//! Concurrent calls of the async store sharing HTTP requests: a queue of
//! calls, at most `max_in_flight` requests out at once, and each request
//! carrying every call waiting when it leaves.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{oneshot, Semaphore};

use super::batch::{Batch, GroupingState};
use super::exchange::Part;
use super::options::Batching;
use super::protocol::Reply;
use crate::StoreError;

/// Where a batch goes: one HTTP POST to `path`, answering the status and
/// body, or why there is none.
pub(crate) trait Post: Send + Sync + 'static {
    /// Sends `body` to `path`.
    fn post(
        &self,
        path: &'static str,
        body: String,
    ) -> impl Future<Output = Result<(u16, String), StoreError>> + Send;
}

/// The queue and the in-flight limit of one store.
pub(crate) struct Batcher {
    settings: Batching,
    grouping: GroupingState,
    queue: Mutex<Queue>,
    in_flight: Arc<Semaphore>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    /// Whether a flush is on its way to send `waiting`.
    flushing: bool,
}

struct Waiting {
    part: Part,
    reply: oneshot::Sender<Reply>,
}

impl Batcher {
    pub(crate) fn new(settings: Batching) -> Self {
        let settings = Batching {
            max_in_flight: settings.max_in_flight.clamp(1, Semaphore::MAX_PERMITS),
            max_calls: settings.max_calls.max(1),
            ..settings
        };
        Self {
            settings,
            grouping: GroupingState::new(settings.grouping),
            queue: Mutex::default(),
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
        }
    }

    /// Sends `part` with whatever else is waiting, and answers its own
    /// reply. The request is made by a task of its own, so a caller that
    /// stops waiting (a cancelled handler) never loses the others' replies.
    pub(crate) async fn send<P: Post>(self: &Arc<Self>, transport: &Arc<P>, part: Part) -> Reply {
        let (reply, answer) = oneshot::channel();
        let start_flush = {
            let mut queue = self.lock();
            queue.waiting.push(Waiting { part, reply });
            !std::mem::replace(&mut queue.flushing, true)
        };
        if start_flush {
            tokio::spawn(Arc::clone(self).flush(Arc::clone(transport)));
        }
        answer.await.unwrap_or_else(|_| {
            // Only a runtime shutting down drops a flush midway.
            Reply::Failed(StoreError::Unavailable("the request was dropped".into()))
        })
    }

    /// Waits for `window` and a free request slot, then sends everything
    /// waiting (up to `max_calls`; the rest gets a flush of its own).
    /// Boxed: a flush may spawn another.
    fn flush<P: Post>(
        self: Arc<Self>,
        transport: Arc<P>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(self.flush_now(transport))
    }

    async fn flush_now<P: Post>(self: Arc<Self>, transport: Arc<P>) {
        if self.settings.window.is_zero() {
            // Lets calls made in the same turn of the runtime join.
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(self.settings.window).await;
        }
        let Ok(slot) = Arc::clone(&self.in_flight).acquire_owned().await else {
            return; // never closed
        };
        let waiting: Vec<Waiting> = {
            let mut queue = self.lock();
            let take = queue.waiting.len().min(self.settings.max_calls);
            let waiting = queue.waiting.drain(..take).collect();
            if queue.waiting.is_empty() {
                queue.flushing = false;
            } else {
                tokio::spawn(Arc::clone(&self).flush(Arc::clone(&transport)));
            }
            waiting
        };
        let mut batch = Batch::new(self.grouping.get());
        for Waiting { part, .. } in &waiting {
            part.add_to(&mut batch);
        }
        let outcome = transport.post(batch.path(), batch.body()).await;
        drop(slot);
        let replies = self.grouping.replies(&batch, &outcome);
        for (waiting, reply) in waiting.into_iter().zip(replies) {
            // A caller that stopped waiting no longer needs its reply.
            let _ = waiting.reply.send(reply);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Every update leaves the queue consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
