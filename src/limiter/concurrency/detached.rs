//! Finishing work nobody waits for: a permit's release when it is dropped.

use std::future::Future;
use std::task::{Context, Waker};

/// Runs `work` to its end without the caller waiting: at once when it never
/// pends (the memory and blocking stores answer at once), else on the
/// current tokio runtime. Without one, the work is dropped: a lease then
/// expires on its own.
pub(super) fn finish<W>(work: W)
where
    W: Future<Output = ()> + Send + 'static,
{
    let mut work = Box::pin(work);
    let mut context = Context::from_waker(Waker::noop());
    if work.as_mut().poll(&mut context).is_pending() {
        #[cfg(not(target_arch = "wasm32"))]
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(work);
        }
    }
}
