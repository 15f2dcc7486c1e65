//! Per-domain retire buffers shared by the real backends.
//!
//! Retired objects are first collected in a small number of per-domain shards (one short
//! spin lock each, picked by a per-thread index). A full shard is handed to the backend as a
//! batch. Keeping the partial batches in the domain (instead of in the backend's
//! thread-locals) is what lets [`Domain::synchronize`](crate::Domain::synchronize) and
//! `Drop` reach objects retired by other threads, including threads that have exited.
//!
//! Every batch handed to a backend gets a sequence number (a block id) when it leaves its
//! shard. Backends may finish blocks in any order (seize walks a leaving reader's list
//! newest-first, crossbeam bags run on whichever thread collects), so `synchronize` does not
//! wait for an object count: it snapshots the next block id and waits until every block
//! below it has finished ([`Counters::done_below`]).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use crossbeam_utils::CachePadded;

use crate::domain::Retired;
use crate::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::sync::{Arc, Mutex, UnsafeCell};

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
    /// Id of the next block handed to the backend.
    next_block: CachePadded<AtomicU64>,
    /// Objects destroyed so far and finished blocks (shared with in-flight batches).
    counters: Arc<Counters>,
}

/// A block of retired objects leaving the shards, with its sequence number.
pub(crate) struct Handed {
    /// Sequence number; every id is handed out once and must be completed once.
    pub(crate) id: u64,
    /// The objects, never empty.
    pub(crate) items: Vec<Retired>,
}

/// Counters that in-flight batches update after running destructors.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Objects destroyed so far (for `pending()`).
    reclaimed: AtomicUsize,
    /// Which blocks have finished.
    done: Mutex<DoneSet>,
}

/// Finished block ids: all ids below `low` are finished, plus those in `above`.
#[derive(Debug, Default)]
struct DoneSet {
    /// Lowest unfinished block id.
    low: u64,
    /// Finished ids greater than `low` (blocks that finished out of order).
    above: BTreeSet<u64>,
}

impl Counters {
    fn done(&self) -> crate::sync::MutexGuard<'_, DoneSet> {
        // Nothing panics while holding the lock, but tolerate poisoning anyway.
        self.done.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record that block `id`, holding `n` objects, has been destroyed entirely.
    pub(crate) fn complete(&self, id: u64, n: usize) {
        // Release: pairs with the Acquire load in `reclaimed()` (a statistic). The
        // destructors' effects reach `synchronize` through the `done` mutex below.
        self.reclaimed.fetch_add(n, Ordering::Release);
        let mut guard = self.done();
        let d = &mut *guard;
        if id == d.low {
            d.low += 1;
            while d.above.remove(&d.low) {
                d.low += 1;
            }
        } else {
            debug_assert!(id > d.low, "block {id} completed twice");
            d.above.insert(id);
        }
    }

    /// Whether every block with an id below `target` has been destroyed. When this returns
    /// `true`, the destructors of those blocks happen-before the return (mutex).
    pub(crate) fn done_below(&self, target: u64) -> bool {
        self.done().low >= target
    }

    /// Objects destroyed so far.
    pub(crate) fn reclaimed(&self) -> usize {
        // Acquire: pairs with the Release increment in `complete`.
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
            next_block: CachePadded::new(AtomicU64::new(0)),
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
    pub(crate) fn push(&self, item: Retired) -> Option<Handed> {
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
        // Counted and numbered before unlocking, so `pending()` never misses these objects
        // and a `synchronize` that drains this shard afterwards sees the id as taken.
        let full = full.map(|items| self.note_handed(items));
        shard.unlock();
        full
    }

    /// Take every buffered object (all shards) as one block, if there is any; the caller
    /// hands it to the backend.
    pub(crate) fn drain(&self) -> Option<Handed> {
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
            self.count_handed(taken);
            shard.unlock();
        }
        if out.is_empty() {
            return None;
        }
        // The objects were already counted shard by shard.
        let id = self.take_id();
        Some(Handed { id, items: out })
    }

    /// Count `items` as handed and give them a block id.
    fn note_handed(&self, items: Vec<Retired>) -> Handed {
        self.count_handed(items.len());
        Handed {
            id: self.take_id(),
            items,
        }
    }

    fn count_handed(&self, n: usize) {
        // Relaxed: a statistic for `pending()`; the shard locks order it with the pushes.
        self.handed.fetch_add(n, Ordering::Relaxed);
    }

    fn take_id(&self) -> u64 {
        // Relaxed: only the RMW's place in the modification order matters. An id taken
        // under a shard lock happens-before a later `synchronize` that locks that shard in
        // `drain` and then reads `next_block`, so that read returns a larger value.
        self.next_block.fetch_add(1, Ordering::Relaxed)
    }

    /// The id the next handed block will get: every block handed before this call (in
    /// happens-before order) has a smaller id.
    pub(crate) fn next_block(&self) -> u64 {
        // Relaxed: see `take_id`; the ordering comes from the shard locks taken by `drain`
        // on the same thread just before.
        self.next_block.load(Ordering::Relaxed)
    }

    /// Objects handed to the backend so far.
    pub(crate) fn handed(&self) -> usize {
        // Relaxed: a statistic (`pending()`); `buffered()` took every shard lock just
        // before, which orders the counts of the pushes it saw.
        self.handed.load(Ordering::Relaxed)
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

/// Run a block's destructors and record it as finished.
///
/// # Safety
///
/// The grace period of every object in `block` has passed and none was destroyed before.
pub(crate) unsafe fn run_batch(block: Handed, counters: &Counters) {
    let n = block.items.len();
    for item in block.items {
        // SAFETY: forwarded to the caller.
        unsafe { item.run() };
    }
    counters.complete(block.id, n);
}
