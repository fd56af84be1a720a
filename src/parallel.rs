//! Thread pools, cancellation and progress for long-running work.
//!
//! Work runs on a rayon pool owned by amlguard, created on first use and created anew in a
//! forked child (a pool's threads do not survive `fork`, which Spark and multiprocessing do).
//! A [`RunControl`] lets the caller cancel work between chunks and read progress counters
//! from another thread without locks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// Cancellation flag and progress counters shared with whoever started the work.
#[derive(Debug, Default)]
pub struct RunControl {
    cancelled: AtomicBool,
    rows_done: AtomicU64,
    rows_total: AtomicU64,
}

impl RunControl {
    /// A fresh control: not cancelled, nothing done.
    pub fn new() -> Self {
        Self::default()
    }
    /// Ask the work to stop at the next chunk boundary.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
    /// `Err(Cancelled)` once [`RunControl::cancel`] was called.
    pub fn check(&self) -> Result<()> {
        if self.cancelled.load(Ordering::Relaxed) {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
    /// Record `rows` more rows done.
    pub fn add_rows_done(&self, rows: u64) {
        self.rows_done.fetch_add(rows, Ordering::Relaxed);
    }
    /// Rows done so far.
    pub fn rows_done(&self) -> u64 {
        self.rows_done.load(Ordering::Relaxed)
    }
    /// Announce the total number of rows, when known.
    pub fn set_rows_total(&self, rows: u64) {
        self.rows_total.store(rows, Ordering::Relaxed);
    }
    /// Total rows announced (0 when unknown).
    pub fn rows_total(&self) -> u64 {
        self.rows_total.load(Ordering::Relaxed)
    }
}

struct PoolSlot {
    pid: u32,
    threads: usize,
    pool: Arc<rayon::ThreadPool>,
}

static POOL: Mutex<Option<PoolSlot>> = Mutex::new(None);

/// The pool for `threads` workers (`None`: one per CPU). Reused across calls in one process.
pub fn pool(threads: Option<usize>) -> Result<Arc<rayon::ThreadPool>> {
    let threads = threads
        .filter(|t| *t > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pid = std::process::id();
    let mut slot = POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(existing) = slot.as_ref() {
        if existing.pid == pid && existing.threads == threads {
            return Ok(Arc::clone(&existing.pool));
        }
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("amlguard-{i}"))
        .build()
        .map_err(|e| Error::invalid_data(None, format!("cannot start worker threads: {e}")))?;
    let pool = Arc::new(pool);
    *slot = Some(PoolSlot {
        pid,
        threads,
        pool: Arc::clone(&pool),
    });
    Ok(pool)
}

struct RuntimeSlot {
    pid: u32,
    runtime: Arc<tokio::runtime::Runtime>,
}

static RUNTIME: Mutex<Option<RuntimeSlot>> = Mutex::new(None);

/// The async runtime that cloud I/O (Key Vault, Blob Storage) runs on: created on first use,
/// and anew in a forked child, like the pool. Two worker threads suffice: the work is waiting
/// on the network, and callers block on it from their own threads.
pub(crate) fn runtime() -> Result<Arc<tokio::runtime::Runtime>> {
    let pid = std::process::id();
    let mut slot = RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(existing) = slot.as_ref() {
        if existing.pid == pid {
            return Ok(Arc::clone(&existing.runtime));
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("amlguard-io")
        .enable_all()
        .build()
        .map_err(|e| Error::invalid_data(None, format!("cannot start the I/O runtime: {e}")))?;
    let runtime = Arc::new(runtime);
    *slot = Some(RuntimeSlot {
        pid,
        runtime: Arc::clone(&runtime),
    });
    Ok(runtime)
}

/// Run `future` to completion from synchronous code (never from inside the runtime itself).
pub(crate) fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    Ok(runtime()?.block_on(future))
}
