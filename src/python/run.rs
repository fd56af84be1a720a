//! The one way to run long work from Python.
//!
//! The work runs on a scoped thread while the calling thread releases the GIL and wakes every
//! 100 ms to check for Ctrl-C (cancelling the work at its next chunk) and to report progress to
//! an optional Python callback. Errors come back through the single `Error -> PyErr` mapping.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use pyo3::prelude::*;

use crate::error::Result;
use crate::parallel::RunControl;

const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Run `work` off the GIL. `progress`, if given, is called as `progress(rows_done, rows_total)`.
pub(crate) fn run_blocking<T, F>(
    py: Python<'_>,
    control: &RunControl,
    progress: Option<&Bound<'_, PyAny>>,
    work: F,
) -> PyResult<T>
where
    T: Send,
    F: FnOnce(&RunControl) -> Result<T> + Send,
{
    let finished = (Mutex::new(false), Condvar::new());
    let mut interrupt: Option<PyErr> = None;
    let outcome = std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            // Signals completion on drop, so a panicking worker still wakes the caller.
            struct Finished<'a>(&'a (Mutex<bool>, Condvar));
            impl Drop for Finished<'_> {
                fn drop(&mut self) {
                    let (lock, signal) = self.0;
                    *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
                    signal.notify_all();
                }
            }
            let _finished = Finished(&finished);
            work(control)
        });
        loop {
            let done = py.detach(|| {
                let (lock, signal) = &finished;
                let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
                let (guard, _) = signal
                    .wait_timeout_while(guard, POLL_INTERVAL, |done| !*done)
                    .unwrap_or_else(|p| p.into_inner());
                *guard
            });
            if let Some(callback) = progress {
                if let Err(err) = callback.call1((control.rows_done(), control.rows_total())) {
                    control.cancel();
                    interrupt.get_or_insert(err);
                }
            }
            if done {
                break;
            }
            if let Err(err) = py.check_signals() {
                control.cancel();
                interrupt.get_or_insert(err);
            }
        }
        worker.join()
    });
    if let Some(err) = interrupt {
        return Err(err);
    }
    match outcome {
        Ok(result) => result.map_err(PyErr::from),
        Err(_) => Err(pyo3::exceptions::PyRuntimeError::new_err(
            "amlguard worker thread panicked",
        )),
    }
}
