//! Waiters of one limiter, per key, in arrival order: a release through the
//! limiter wakes the first at once, instead of leaving it to its next poll.
//! Only the first waiter of a key polls the store (for releases elsewhere and
//! expiries); the others sleep until woken or out of time, and each waiter
//! leaving the head of the queue (granted or giving up) wakes the next, who
//! then polls in its turn. So any number of waiters costs one poller per key.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};
use std::time::Duration;

#[derive(Default)]
pub(super) struct Waiters {
    queues: Mutex<HashMap<Box<str>, VecDeque<Arc<Waiter>>>>,
    /// The numbers the store's queue gave the waiters of each key: the
    /// lowest is where this limiter stands in it.
    numbers: Mutex<HashMap<Box<str>, BTreeSet<u64>>>,
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
    /// Its number in the store's queue, or 0.
    number: AtomicU64,
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
            number: AtomicU64::new(0),
        }
    }

    /// How many callers wait for `key` here.
    pub(super) fn len(&self, key: &str) -> usize {
        lock(&self.queues).get(key).map_or(0, VecDeque::len)
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
            // Marked under the queues' lock: out of the queue and woken
            // are one step for a waiter looking at both.
            first.map(|waiter| {
                let waker = waiter.mark_woken();
                (waiter, waker)
            })
        };
        if let Some((waiter, waker)) = first {
            waiter.notify(waker);
        }
    }

    /// Wakes every waiter of `key`: all its slots were freed here.
    pub(super) fn wake_all(&self, key: &str) {
        let woken: Vec<_> = {
            let mut queues = lock(&self.queues);
            let queue = queues.remove(key).unwrap_or_default();
            queue
                .into_iter()
                .map(|waiter| {
                    let waker = waiter.mark_woken();
                    (waiter, waker)
                })
                .collect()
        };
        for (waiter, waker) in woken {
            waiter.notify(waker);
        }
    }
}

impl Waiter {
    /// Marks it woken; the waker to call once no lock is held.
    fn mark_woken(&self) -> Option<Waker> {
        let mut state = lock(&self.state);
        state.woken = true;
        state.waker.take()
    }

    fn notify(&self, waker: Option<Waker>) {
        self.woken_up.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Ticket<'_> {
    /// Records this waiter's number in the store's queue (its first).
    pub(super) fn numbered(&self, number: u64) {
        if number == 0 || self.number.load(Ordering::Relaxed) != 0 {
            return;
        }
        self.number.store(number, Ordering::Relaxed);
        lock(&self.waiters.numbers)
            .entry(self.key.clone())
            .or_default()
            .insert(number);
    }

    /// This waiter's number, the lowest of this key's waiters here, and
    /// the lowest of the others (0: none).
    pub(super) fn numbers(&self) -> (u64, u64, u64) {
        let own = self.number.load(Ordering::Relaxed);
        let numbers = lock(&self.waiters.numbers);
        let Some(set) = numbers.get(&*self.key) else {
            return (own, 0, 0);
        };
        let oldest = set.first().copied().unwrap_or(0);
        let next = set.iter().copied().find(|&n| n != own).unwrap_or(0);
        (own, oldest, next)
    }

    /// Whether a release woke this waiter (it then left the queue).
    pub(super) fn woken(&self) -> bool {
        lock(&self.waiter.state).woken
    }

    /// Whether this waiter is the one to poll the store: the first in the
    /// queue, or woken (and so about to try).
    pub(super) fn polls(&self) -> bool {
        self.woken()
            || lock(&self.waiters.queues)
                .get(&*self.key)
                .and_then(VecDeque::front)
                .is_some_and(|first| Arc::ptr_eq(first, &self.waiter))
    }

    /// Back at the head of the queue, after a wake that found the slot
    /// taken (by a caller that did not wait): first in line it stays.
    pub(super) fn requeue_first(&self) {
        let mut queues = lock(&self.waiters.queues);
        lock(&self.waiter.state).woken = false;
        queues
            .entry(self.key.clone())
            .or_default()
            .push_front(Arc::clone(&self.waiter));
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
        let number = self.number.load(Ordering::Relaxed);
        if number != 0 {
            let mut numbers = lock(&self.waiters.numbers);
            if let Some(set) = numbers.get_mut(&*self.key) {
                set.remove(&number);
                if set.is_empty() {
                    numbers.remove(&*self.key);
                }
            }
        }
        let mut queues = lock(&self.waiters.queues);
        // Read under the queues' lock, where a wake sets it.
        let woken = self.woken();
        let mut was_first = false;
        if let Some(queue) = queues.get_mut(&*self.key) {
            was_first = queue.front().is_some_and(|w| Arc::ptr_eq(w, &self.waiter));
            if was_first {
                queue.pop_front();
            } else if !woken {
                // Out of time in the middle of the queue: the one slow case.
                queue.retain(|waiter| !Arc::ptr_eq(waiter, &self.waiter));
            }
            if queue.is_empty() {
                queues.remove(&*self.key);
            }
        }
        drop(queues);
        // Leaving the head of the queue (or woken, which took this waiter
        // out of it): the next waiter tries now and polls from then on. It
        // gets a slot this one was woken for but did not take (taken first
        // by a caller that did not wait, or its deadline passed), or one
        // more than this one took.
        if was_first || woken {
            self.waiters.wake_first(&self.key);
        }
    }
}
