//! Per-domain retire buffers shared by the real backends.
//!
//! Retired objects are first collected in a small number of per-domain shards (one short
//! spin lock each, picked by a per-thread index). A full shard is handed to the backend as a
//! batch. Keeping the partial batches in the domain (instead of in the backend's
//! thread-locals) is what lets [`Domain::synchronize`](crate::Domain::synchronize) and
//! `Drop` reach objects retired by other threads, including threads that have exited.

use std::sync::OnceLock;

use crossbeam_utils::CachePadded;

use crate::domain::Retired;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::{Arc, UnsafeCell};

/// Objects per batch handed to a backend.
pub(crate) const BATCH: usize = 64;

/// One shard: a tiny try-lock around a vector of retired objects.
struct Shard {
    locked: AtomicBool,
    items: UnsafeCell<Vec<Retired>>,
}

impl Shard {
    fn new() -> Self {
        Self {
            locked: AtomicBool::new(false),
            items: UnsafeCell::new(Vec::new()),
        }
    }

    /// Lock without waiting; `true` on success.
    #[inline]
    fn try_lock(&self) -> bool {
        // Relaxed pre-check avoids bouncing the line on a busy shard; Acquire on the swap
        // makes the previous holder's vector writes visible to us.
        !self.locked.load(Ordering::Relaxed) && !self.locked.swap(true, Ordering::Acquire)
    }

    /// Lock, spinning if needed.
    fn lock(&self) {
        while !self.try_lock() {
            crate::sync::spin_loop();
        }
    }

    #[inline]
    fn unlock(&self) {
        // Release: publish our vector writes to the next holder.
        self.locked.store(false, Ordering::Release);
    }
}

/// Shard count: twice the CPU count, a power of two in `4..=64`.
fn shard_count() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(4, usize::from);
        (cpus * 2).next_power_of_two().clamp(4, 64)
    })
}

/// A small per-thread number used to pick a shard.
#[inline]
fn thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        // Relaxed: only uniqueness matters, not ordering with other memory.
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.try_with(|i| *i).unwrap_or(0)
}

/// Domain-wide retire buffers plus the counters behind `pending()`.
pub(crate) struct Buffers {
    shards: Box<[CachePadded<Shard>]>,
    /// Objects handed to the backend so far.
    handed: CachePadded<AtomicUsize>,
    /// Objects destroyed so far (shared with in-flight batches via `Counters`).
    counters: Arc<Counters>,
}

/// Counters that in-flight batches update after running destructors.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Objects destroyed so far.
    pub(crate) reclaimed: AtomicUsize,
}

impl Counters {
    /// Record that `n` objects have been destroyed.
    pub(crate) fn add_reclaimed(&self, n: usize) {
        // Release: a thread that sees the new count (Acquire in `reclaimed()`) also sees
        // the destructors' effects, which is what `synchronize` promises.
        self.reclaimed.fetch_add(n, Ordering::Release);
    }

    /// Objects destroyed so far.
    pub(crate) fn reclaimed(&self) -> usize {
        // Acquire: pairs with `add_reclaimed`.
        self.reclaimed.load(Ordering::Acquire)
    }
}

// SAFETY: every access to a shard's vector happens while holding that shard's lock, and the
// retired objects inside are `Send` (see `Retired`).
unsafe impl Sync for Buffers {}
// SAFETY: as above; the vectors own only `Send` items.
unsafe impl Send for Buffers {}

impl Default for Buffers {
    fn default() -> Self {
        Self {
            shards: (0..shard_count())
                .map(|_| CachePadded::new(Shard::new()))
                .collect(),
            handed: CachePadded::new(AtomicUsize::new(0)),
            counters: Arc::default(),
        }
    }
}

impl Buffers {
    /// The counters shared with in-flight batches.
    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Buffer `item`; returns a full batch that the caller must hand to the backend.
    #[inline]
    pub(crate) fn push(&self, item: Retired) -> Option<Vec<Retired>> {
        let n = self.shards.len();
        let start = thread_index();
        // Try our own shard first, then the others without waiting; if all are busy, wait
        // on our own.
        let shard = (0..n)
            .map(|k| &self.shards[(start + k) & (n - 1)])
            .find(|s| s.try_lock())
            .unwrap_or_else(|| {
                let s = &self.shards[start & (n - 1)];
                s.lock();
                s
            });
        let full = shard.items.with_mut(|v| {
            // SAFETY: we hold `shard`'s lock, so this is the only access to its vector.
            let v = unsafe { &mut *v };
            if v.capacity() == 0 {
                v.reserve_exact(BATCH);
            }
            v.push(item);
            (v.len() >= BATCH).then(|| core::mem::replace(v, Vec::with_capacity(BATCH)))
        });
        if let Some(batch) = &full {
            // Counted before unlocking, so `pending()` never misses these objects.
            self.note_handed(batch.len());
        }
        shard.unlock();
        full
    }

    /// Take every buffered object (all shards); the caller hands them to the backend.
    pub(crate) fn drain(&self) -> Vec<Retired> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            shard.lock();
            let taken = shard.items.with_mut(|v| {
                // SAFETY: we hold `shard`'s lock, so this is the only access to its vector.
                let v = unsafe { &mut *v };
                let n = v.len();
                out.append(v);
                n
            });
            // Counted before unlocking, so `pending()` never misses these objects.
            self.note_handed(taken);
            shard.unlock();
        }
        out
    }

    fn note_handed(&self, n: usize) {
        // Relaxed: a statistic; `synchronize` reads it after draining on the same thread
        // or after the shard locks ordered the pushes it has to cover.
        self.handed.fetch_add(n, Ordering::Relaxed);
    }

    /// Objects handed to the backend so far.
    pub(crate) fn handed(&self) -> usize {
        // Acquire: pairs with the shard locks; exactness only matters in `synchronize`,
        // which reads this on the thread that just drained.
        self.handed.load(Ordering::Acquire)
    }

    /// Objects still sitting in shards.
    pub(crate) fn buffered(&self) -> usize {
        let mut total = 0;
        for shard in self.shards.iter() {
            shard.lock();
            // SAFETY: we hold `shard`'s lock.
            total += shard.items.with(|v| unsafe { (*v).len() });
            shard.unlock();
        }
        total
    }

    /// Retired but not yet destroyed.
    pub(crate) fn pending(&self) -> usize {
        // Read `reclaimed` last: it never exceeds `handed`, so the difference never wraps
        // even when other threads race us.
        let buffered = self.buffered();
        let handed = self.handed();
        let reclaimed = self.counters.reclaimed();
        buffered + handed.saturating_sub(reclaimed)
    }
}

/// Run `batch`'s destructors and count them.
///
/// # Safety
///
/// The grace period of every object in `batch` has passed and none was destroyed before.
pub(crate) unsafe fn run_batch(batch: Vec<Retired>, counters: &Counters) {
    let n = batch.len();
    for item in batch {
        // SAFETY: forwarded to the caller.
        unsafe { item.run() };
    }
    counters.add_reclaimed(n);
}
