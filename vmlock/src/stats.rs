//! Read-path counters, kept per thread and summed when read.
//!
//! A counter that every reader adds to is a cache line that every CPU writes, which is
//! exactly what store-free speculation exists to avoid (the uprobe case: all threads in one
//! VMA). So each thread counts in a block of its own: the increment is a plain load and
//! store (no read-modify-write, no lock prefix) on a line that only this thread writes,
//! and [`Stats::snapshot`] sums every thread's block.
//!
//! ```text
//!  Mm ── Stats { id, blocks: Mutex<Vec<(thread, *Block)>> }         (one block per thread
//!                                                                     that ever counted)
//!  thread ── CACHE: [(stats id, *const Block); 4]                    (thread-local, most
//!                                                                     recent first)
//! ```
//!
//! The fast path finds this thread's block through a small thread-local cache keyed by the
//! `Stats`' id (ids are never reused, so an entry of a dropped `Mm` never matches again and
//! its dangling pointer is never followed). A miss registers or finds the block under the
//! `Stats`' mutex. Blocks live as long as their `Stats`, so the counts of threads that have
//! exited are kept.

use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::thread::ThreadId;

use crate::sync::atomic::{AtomicU64, Ordering};
use crate::types::LockStats;

/// What to count.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Counter {
    Success = 0,
    Abort,
    Miss,
    Retry,
    Fallback,
    SpecOk,
    SpecFailed,
    ListStep,
    ListRetry,
    ListFallback,
    ListRewind,
}

const COUNTERS: usize = 11;

/// One thread's counters for one `Stats`.
#[repr(align(128))] // two cache lines: no false sharing even with adjacent-line prefetch
struct Block {
    c: [AtomicU64; COUNTERS],
}

impl Block {
    fn new() -> Self {
        Block {
            c: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Entries of the thread-local cache.
const CACHED: usize = 4;

thread_local! {
    /// (stats id, that thread's block), most recently used first; id 0 = empty.
    static CACHE: [Cell<(usize, *const Block)>; CACHED] =
        const { [const { Cell::new((0, std::ptr::null())) }; CACHED] };
}

/// The counters of one `Mm`.
pub(crate) struct Stats {
    id: usize,
    /// Every thread's block, from `Box::leak`, freed only when the `Stats` drops. Raw
    /// pointers rather than `Box`es: thread-local caches and other threads hold pointers to
    /// the blocks, and a `Box` asserts unique ownership of its memory, which those
    /// accesses would violate (Miri, Tree Borrows).
    blocks: Mutex<Vec<(ThreadId, NonNull<Block>)>>,
}

impl Stats {
    /// Counters identified by `id`, which must be non-zero and never used by another
    /// `Stats` of this process (the owning `Mm`'s id).
    pub(crate) fn new(id: usize) -> Self {
        assert_ne!(id, 0, "Stats id 0 marks an empty cache entry");
        Stats {
            id,
            blocks: Mutex::new(Vec::new()),
        }
    }

    /// Count one event in this thread's block.
    #[inline]
    pub(crate) fn add(&self, c: Counter) {
        let block = match CACHE.try_with(|cache| cache[0].get()) {
            Ok((id, b)) if id == self.id => b,
            _ => self.block_slow(),
        };
        // SAFETY: the block belongs to this `Stats` (matching id; ids are unique) and lives
        // until the `Stats` is dropped, which cannot happen during this `&self` call.
        let counter = unsafe { &(*block).c[c as usize] };
        // Relaxed load and store, no read-modify-write: only this thread writes its block,
        // so no increment is lost; readers sum with Relaxed loads (a statistic, nothing is
        // ordered by it).
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// This thread's block, found in the cache's other entries or registered; moved to the
    /// front of the cache.
    #[cold]
    fn block_slow(&self) -> *const Block {
        let cached = CACHE
            .try_with(|cache| {
                cache
                    .iter()
                    .map(Cell::get)
                    .find(|&(id, _)| id == self.id)
                    .map(|(_, b)| b)
            })
            .ok()
            .flatten();
        let block = match cached {
            Some(b) => b,
            None => {
                let me = std::thread::current().id();
                let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
                match blocks.iter().find(|(t, _)| *t == me) {
                    Some((_, b)) => b.as_ptr().cast_const(),
                    None => {
                        let b = NonNull::from(Box::leak(Box::new(Block::new())));
                        blocks.push((me, b));
                        b.as_ptr().cast_const()
                    }
                }
            }
        };
        // Most recently used first; the last entry falls out. If the thread-local is gone
        // (thread exit), the next call takes this path again.
        let _ = CACHE.try_with(|cache| {
            let mut carry = (self.id, block);
            for slot in cache.iter() {
                let old = slot.replace(carry);
                if old.0 == self.id {
                    break;
                }
                carry = old;
            }
        });
        block
    }

    pub(crate) fn snapshot(&self) -> LockStats {
        let blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let sum = |c: Counter| -> u64 {
            // Relaxed: a statistic snapshot.
            blocks
                .iter()
                // SAFETY: blocks live until the `Stats` drops (see `blocks`).
                .map(|(_, b)| unsafe { b.as_ref() }.c[c as usize].load(Ordering::Relaxed))
                .sum()
        };
        LockStats {
            success: sum(Counter::Success),
            abort: sum(Counter::Abort),
            miss: sum(Counter::Miss),
            retry: sum(Counter::Retry),
            fallback: sum(Counter::Fallback),
            spec_ok: sum(Counter::SpecOk),
            spec_failed: sum(Counter::SpecFailed),
            list_steps: sum(Counter::ListStep),
            list_retry: sum(Counter::ListRetry),
            list_fallback: sum(Counter::ListFallback),
            list_rewind: sum(Counter::ListRewind),
        }
    }
}

// SAFETY: the raw block pointers are owned by the `Stats` (they came from `Box::into_raw`
// and are freed only in `drop`); a `Block` is only atomics, which any thread may access.
unsafe impl Send for Stats {}
// SAFETY: as above; the vector is behind a mutex and blocks are accessed through atomics.
unsafe impl Sync for Stats {}

impl Drop for Stats {
    fn drop(&mut self) {
        let blocks = self.blocks.get_mut().unwrap_or_else(|e| e.into_inner());
        for (_, b) in blocks.drain(..) {
            // SAFETY: from `Box::leak` in `block_slow`, freed once here; `&mut self` means
            // no `add` is running, and thread-local cache entries with this id are never
            // followed again (ids are never reused).
            drop(unsafe { Box::from_raw(b.as_ptr()) });
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn counts_per_thread_and_sums() {
        // Ids far above any `Mm` id this test binary makes.
        let next = std::sync::Mutex::new(1usize << 40);
        let fresh = || {
            let mut n = next.lock().unwrap();
            *n += 1;
            Stats::new(*n)
        };
        let a = fresh();
        let b = fresh();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..1000 {
                        a.add(Counter::SpecOk);
                        // Alternate between more `Stats` than the cache holds.
                        if i % 3 == 0 {
                            b.add(Counter::Fallback);
                            for _ in 0..CACHED {
                                fresh().add(Counter::Miss);
                            }
                        }
                    }
                });
            }
        });
        a.add(Counter::Abort);
        let sa = a.snapshot();
        assert_eq!((sa.spec_ok, sa.abort, sa.fallback), (4000, 1, 0));
        assert_eq!(b.snapshot().fallback, 4 * 334);
        // One block per thread that counted (the main thread's block for `abort`).
        assert_eq!(a.blocks.lock().unwrap().len(), 5);
    }
}
