//! Where the blocking store may block its thread. Outside an async runtime
//! and in a runtime's blocking threads (`spawn_blocking`) it just does; on a
//! multi-threaded tokio runtime's worker it goes through `block_in_place`,
//! which hands the worker's other tasks to another thread first; on a
//! current-thread runtime's task, where blocking would stall every task,
//! it refuses with [`StoreError::BlockingInAsyncRuntime`].

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use crate::StoreError;

/// Runs `work`, which blocks the thread, where that is allowed.
pub(crate) fn blocking<R>(work: impl FnOnce() -> R) -> Result<R, StoreError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Ok(work());
    }
    // tokio answers "not here" only by panicking, before running `work`;
    // that panic is caught, and kept off the panic hook's output.
    quietly(|| tokio::task::block_in_place(work)).ok_or(StoreError::BlockingInAsyncRuntime)
}

thread_local! {
    /// Whether this thread's panics are expected and caught (see `quietly`).
    static EXPECTED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, answering `None` if it panics, without the panic hook
/// reporting that panic. The hook is wrapped once; every other panic still
/// reaches the hook that was installed.
fn quietly<R>(f: impl FnOnce() -> R) -> Option<R> {
    static WRAP_HOOK: Once = Once::new();
    WRAP_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !EXPECTED.with(Cell::get) {
                previous(info);
            }
        }));
    });
    EXPECTED.with(|expected| expected.set(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    EXPECTED.with(|expected| expected.set(false));
    result.ok()
}
