//! Waiters of one limiter, per key, in arrival order: a release through the
//! limiter wakes the first at once, instead of leaving it to its next poll.
//! Waiters in other processes (a shared Redis store) still learn of a
//! release by polling.

use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};
use std::time::Duration;

#[derive(Default)]
pub(super) struct Waiters {
    queues: Mutex<HashMap<Box<str>, VecDeque<Arc<Waiter>>>>,
}

#[derive(Default)]
struct Waiter {
    state: Mutex<WaiterState>,
    woken_up: Condvar,
}

#[derive(Default)]
struct WaiterState {
    woken: bool,
    waker: Option<Waker>,
}

/// A place in the queue of a key; leaving it (drop) takes it out of the
/// queue, passing on a wake it received but did not use.
pub(super) struct Ticket<'a> {
    waiters: &'a Waiters,
    key: Box<str>,
    waiter: Arc<Waiter>,
    /// Set once the waiter has the slot: a wake it got was used.
    granted: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update leaves the queues consistent: a panic elsewhere does not
    // stop the others from waiting.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Waiters {
    /// Joins the end of `key`'s queue.
    pub(super) fn enqueue(&self, key: &str) -> Ticket<'_> {
        let waiter = Arc::new(Waiter::default());
        lock(&self.queues)
            .entry(key.into())
            .or_default()
            .push_back(Arc::clone(&waiter));
        Ticket {
            waiters: self,
            key: key.into(),
            waiter,
            granted: false,
        }
    }

    /// Wakes every waiter of `key`: all its slots were freed here.
    pub(super) fn wake_all(&self, key: &str) {
        let queue = lock(&self.queues).remove(key);
        for waiter in queue.into_iter().flatten() {
            waiter.wake();
        }
    }

    /// Wakes the first waiter of `key`, if any: a slot was released here.
    pub(super) fn wake_first(&self, key: &str) {
        let first = {
            let mut queues = lock(&self.queues);
            let Some(queue) = queues.get_mut(key) else {
                return;
            };
            let first = queue.pop_front();
            if queue.is_empty() {
                queues.remove(key);
            }
            first
        };
        if let Some(waiter) = first {
            waiter.wake();
        }
    }
}

impl Waiter {
    fn wake(&self) {
        let waker = {
            let mut state = lock(&self.state);
            state.woken = true;
            state.waker.take()
        };
        self.woken_up.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Ticket<'_> {
    /// Whether a release woke this waiter (it then left the queue).
    pub(super) fn woken(&self) -> bool {
        lock(&self.waiter.state).woken
    }

    /// Back at the head of the queue, after a wake that found the slot
    /// taken (by a caller that did not wait): first in line it stays.
    pub(super) fn requeue_first(&self) {
        lock(&self.waiter.state).woken = false;
        lock(&self.waiters.queues)
            .entry(self.key.clone())
            .or_default()
            .push_front(Arc::clone(&self.waiter));
    }

    /// The waiter got the slot: leaving does not pass its wake on.
    pub(super) fn granted(mut self) {
        self.granted = true;
    }

    /// Blocks the thread for `duration` (real time), or until woken.
    pub(super) fn wait_blocking(&self, duration: Duration) {
        let state = lock(&self.waiter.state);
        let _unused = self
            .waiter
            .woken_up
            .wait_timeout_while(state, duration, |state| !state.woken)
            .unwrap_or_else(PoisonError::into_inner);
    }

    /// Runs `sleep` to its end, or until woken, whichever comes first.
    pub(super) async fn sleep_or_wake<F: Future<Output = ()>>(&self, sleep: F) {
        let mut sleep = pin!(sleep);
        poll_fn(|context| {
            {
                let mut state = lock(&self.waiter.state);
                if state.woken {
                    return Poll::Ready(());
                }
                state.waker = Some(context.waker().clone());
            }
            sleep.as_mut().poll(context)
        })
        .await;
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut queues = lock(&self.waiters.queues);
        if let Some(queue) = queues.get_mut(&*self.key) {
            queue.retain(|waiter| !Arc::ptr_eq(waiter, &self.waiter));
            if queue.is_empty() {
                queues.remove(&*self.key);
            }
        }
        drop(queues);
        // Woken but leaving without the slot (it was taken before this
        // waiter came back for it, or its deadline passed): the next one
        // may get it.
        if self.woken() && !self.granted {
            self.waiters.wake_first(&self.key);
        }
    }
}
