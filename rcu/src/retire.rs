//! Per-domain retire buffers, block ids, the ready queue and panic-safe destruction, shared
//! by every backend (the loom stand-in too, so its models check this code).
//!
//! Retired objects are first collected in a small number of per-domain shards (one short
//! spin lock each, picked by a per-thread index). A full shard is handed to the backend as a
//! *block*. Keeping the partial blocks in the domain (instead of in the backend's
//! thread-locals) is what lets [`Domain::synchronize`](crate::Domain::synchronize) and
//! `Drop` reach objects retired by other threads, including threads that have exited.
//!
//! # Block ids and `synchronize`
//!
//! Every block gets a sequence number (its id) **while the locks of every shard its objects
//! came from are still held** ([`Buffers::push`] holds one, [`Buffers::drain`] holds all of
//! them). Backends may finish blocks in any order, so `synchronize` drains, snapshots the
//! next id and waits until every block below it has finished ([`Shared::done_below`]). An
//! object retired before the `synchronize` call sits in a shard that the call's `drain`
//! locks afterwards: either the drain takes it (its block gets an id below the snapshot), or
//! another thread took it earlier, and took its id before unlocking that shard, so that id
//! is below the snapshot too. (Taking the id after unlocking, as an earlier version did, let
//! a `synchronize` racing a `flush` return before the flushed block was destroyed.)
//!
//! # Who runs destructors
//!
//! A backend's grace-period callback (a seize reclaimer, a crossbeam deferred closure) never
//! runs user code: it only pushes the finished block onto the domain's *ready queue*
//! ([`Shared::push_ready`]). The queue is run by the domain's own writer-side entry points
//! (`retire`, `flush`, `synchronize`, `Drop`) through [`Shared::run_ready`], which catches a
//! panicking destructor, finishes the block, and hands the first panic back to the caller
//! to re-raise ([`resume`]) once the domain's bookkeeping is consistent. So a panic never
//! unwinds through seize or crossbeam internals, never surfaces in a reader's guard drop,
//! and never leaves a block half-destroyed.

use core::ptr;
use std::collections::BTreeSet;

use crossbeam_utils::CachePadded;

use crate::domain::Retired;
use crate::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use crate::sync::{Arc, Mutex, UnsafeCell};

/// Objects per block handed to a backend (at least; see `Buffers::push`).
pub(crate) const BATCH: usize = 64;

/// A panic payload caught from a destructor.
pub(crate) type Payload = Box<dyn core::any::Any + Send + 'static>;

/// Keep the first caught panic of a call, drop later ones.
pub(crate) fn keep_first(first: &mut Option<Payload>, next: Option<Payload>) {
    if first.is_none() {
        *first = next;
    }
}

/// Re-raise a panic caught from a destructor, now that the domain is consistent again.
///
/// If this thread is already unwinding (the domain call runs inside a `Drop` during a
/// panic), re-raising would abort the process, so the payload is dropped instead.
pub(crate) fn resume(payload: Option<Payload>) {
    if let Some(p) = payload {
        if !std::thread::panicking() {
            std::panic::resume_unwind(p);
        }
    }
}

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
        // Relaxed pre-check avoids bouncing the line on a busy shard. Acquire on success
        // makes the previous holder's vector writes (and block-id RMWs) visible to us. A
        // compare-exchange rather than a swap: a failed attempt writes nothing (a swap would
        // store `true` again into a lock it does not own, which loom's modification-order
        // exploration then lets the owner's unlock be ordered before).
        !self.locked.load(Ordering::Relaxed)
            && self
                .locked
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Lock, spinning if needed.
    fn lock(&self) {
        // As `try_lock`, without the pre-check: a relaxed load may keep returning a stale
        // `true`, while the compare-exchange (an RMW) reads the latest value.
        while self
            .locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            crate::sync::spin_loop();
        }
    }

    #[inline]
    fn unlock(&self) {
        // Release: publish our vector writes (and the block id we took) to the next holder.
        self.locked.store(false, Ordering::Release);
    }
}

/// Shard count: twice the CPU count, a power of two in `4..=64` (2 under loom, to keep
/// the models small).
fn shard_count() -> usize {
    #[cfg(loom)]
    {
        2
    }
    #[cfg(not(loom))]
    {
        static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *N.get_or_init(|| {
            let cpus = std::thread::available_parallelism().map_or(4, usize::from);
            (cpus * 2).next_power_of_two().clamp(4, 64)
        })
    }
}

/// A small per-thread number used to pick a shard (all loom threads share one OS thread,
/// so under loom they all start at the same shard: the models then exercise contention).
#[inline]
fn thread_index() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    std::thread_local! {
        // Relaxed: only uniqueness matters, not ordering with other memory.
        static INDEX: usize = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    INDEX.try_with(|i| *i).unwrap_or(0)
}

/// Domain-wide retire buffers plus the state behind `pending()` and `synchronize`.
pub(crate) struct Buffers {
    shards: Box<[CachePadded<Shard>]>,
    /// Objects handed to the backend so far.
    handed: CachePadded<AtomicUsize>,
    /// Id of the next block handed to the backend.
    next_block: CachePadded<AtomicU64>,
    /// Finished blocks, destroyed-object count and the ready queue (shared with in-flight
    /// blocks' callbacks).
    shared: Arc<Shared>,
}

/// A block of retired objects leaving the shards, with its sequence number.
pub(crate) struct Handed {
    /// Sequence number; every id is handed out once and must be completed once.
    pub(crate) id: u64,
    /// The objects, never empty.
    pub(crate) items: Vec<Retired>,
}

/// A handed block whose grace period is over, on the ready queue (an intrusive stack).
/// (The loom stand-in runs its blocks directly and does not use the queue.)
#[cfg_attr(loom, allow(dead_code))]
pub(crate) struct Block {
    pub(crate) handed: Handed,
    /// Next block on the ready queue.
    next: *mut Block,
    /// The domain state this block belongs to (used by backends whose callbacks only get a
    /// pointer to the block; valid while any of the domain's callbacks can run).
    pub(crate) owner: *const Shared,
}

#[cfg_attr(loom, allow(dead_code))]
impl Block {
    /// Box `handed` for the ready queue of `owner`.
    pub(crate) fn new(handed: Handed, owner: &Shared) -> Box<Self> {
        Box::new(Self {
            handed,
            next: ptr::null_mut(),
            owner,
        })
    }
}

/// What in-flight blocks report to: finished ids, destroyed objects, blocks ready to run.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Objects destroyed so far (for `pending()`).
    reclaimed: AtomicUsize,
    /// Which blocks have finished.
    done: Mutex<DoneSet>,
    /// Blocks past their grace period, waiting for a writer-side call to run them.
    ready: CachePadded<AtomicPtr<Block>>,
}

// SAFETY: the raw pointers in the ready queue are owned boxes handed over by atomic
// operations (push with Release, take with Acquire); the blocks' contents are `Send`.
unsafe impl Send for Shared {}
// SAFETY: as above: every shared access goes through atomics or the `done` mutex.
unsafe impl Sync for Shared {}

/// Finished block ids: all ids below `low` are finished, plus those in `above`.
#[derive(Debug, Default)]
struct DoneSet {
    /// Lowest unfinished block id.
    low: u64,
    /// Finished ids greater than `low` (blocks that finished out of order).
    above: BTreeSet<u64>,
}

impl Shared {
    fn done(&self) -> crate::sync::MutexGuard<'_, DoneSet> {
        // Nothing panics while holding the lock (destructors run outside it), but tolerate
        // poisoning anyway.
        self.done.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record that block `id`, holding `n` objects, has been destroyed entirely.
    fn complete(&self, id: u64, n: usize) {
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

    /// Queue a block whose grace period is over. Runs no user code (safe to call from a
    /// backend's reclamation callback).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn push_ready(&self, block: Box<Block>) {
        let block = Box::into_raw(block);
        // Relaxed: the CAS below publishes `next` and the block.
        let mut head = self.ready.load(Ordering::Relaxed);
        loop {
            // SAFETY: `block` is ours until the CAS below succeeds.
            unsafe { (*block).next = head };
            // Release: the block's contents (and our `next` write) happen-before the
            // Acquire swap in `take_ready` that takes it.
            match self.ready.compare_exchange_weak(
                head,
                block,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Whether blocks may be waiting to run (a hint, for the fast path of `retire`).
    #[inline]
    pub(crate) fn has_ready(&self) -> bool {
        // Relaxed: a hint only; `take_ready` synchronizes.
        !self.ready.load(Ordering::Relaxed).is_null()
    }

    /// Take every queued block (to run them or to leak them).
    fn take_ready(&self) -> *mut Block {
        if !self.has_ready() {
            return ptr::null_mut();
        }
        // Acquire: pairs with the Release CAS in `push_ready`.
        self.ready.swap(ptr::null_mut(), Ordering::Acquire)
    }

    /// Run every block on the ready queue. Returns the first destructor panic, if any (the
    /// caller re-raises it with [`resume`] once it is done with the domain); every block is
    /// finished and accounted either way. Returns whether anything ran, too.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn run_ready(&self) -> (bool, Option<Payload>) {
        let mut list = self.take_ready();
        let ran = !list.is_null();
        let mut first = None;
        while !list.is_null() {
            // SAFETY: blocks on the queue are boxes pushed by `push_ready`; the swap in
            // `take_ready` gave us exclusive ownership of the whole list.
            let block = unsafe { Box::from_raw(list) };
            list = block.next;
            // SAFETY: a block reaches the ready queue only once its grace period is over,
            // and taking it off the queue makes this its only run.
            keep_first(&mut first, unsafe { self.run(block.handed) });
        }
        (ran, first)
    }

    /// Run a block's destructors and record it as finished, catching panics: a panicking
    /// destructor does not stop the others, the block is completed either way, and the
    /// first panic is returned.
    ///
    /// # Safety
    ///
    /// The grace period of every object in `block` has passed (or no guard of the domain
    /// can exist) and none was destroyed before.
    pub(crate) unsafe fn run(&self, block: Handed) -> Option<Payload> {
        let n = block.items.len();
        let mut first = None;
        for item in block.items {
            // AssertUnwindSafe: nothing of ours is observed after a panic but the payload;
            // the item is consumed either way, so it is never run twice.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // SAFETY: forwarded to the caller.
                unsafe { item.run() }
            }));
            if let Err(p) = r {
                keep_first(&mut first, Some(p));
            }
        }
        self.complete(block.id, n);
        first
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Blocks still queued when the last owner goes (only possible if a backend callback
        // ran after the domain's `Drop` had drained the queue): leak their objects rather
        // than run user code from an arbitrary drop; free only the queue nodes.
        let mut list = self.take_ready();
        while !list.is_null() {
            // SAFETY: as in `run_ready`.
            let block = unsafe { Box::from_raw(list) };
            list = block.next;
            core::mem::forget(block.handed.items);
        }
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
            shared: Arc::default(),
        }
    }
}

impl Buffers {
    /// The state shared with in-flight blocks.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Buffer `item`; returns a block of `block_len` objects (at least one) that the caller
    /// must hand to the backend when the shard it went to is that full.
    #[inline]
    pub(crate) fn push(&self, item: Retired, block_len: usize) -> Option<Handed> {
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
                v.reserve_exact(block_len.min(BATCH));
            }
            v.push(item);
            (v.len() >= block_len).then(|| core::mem::take(v))
        });
        // Counted and numbered before unlocking, so `pending()` never misses these objects
        // and a `synchronize` that drains this shard afterwards sees the id as taken.
        let full = full.map(|items| {
            self.count_handed(items.len());
            Handed {
                id: self.take_id(),
                items,
            }
        });
        shard.unlock();
        full
    }

    /// Take every buffered object (all shards) as one block, if there is any; the caller
    /// hands it to the backend.
    ///
    /// Locks every shard (in index order, so two drains cannot deadlock, and `push` never
    /// waits while holding a shard) and takes the block id **before** unlocking any of
    /// them: a `synchronize` that locks one of these shards after us then reads a
    /// `next_block` above our id (see the module docs).
    pub(crate) fn drain(&self) -> Option<Handed> {
        for shard in self.shards.iter() {
            shard.lock();
        }
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            shard.items.with_mut(|v| {
                // SAFETY: we hold every shard's lock, so this is the only access.
                let v = unsafe { &mut *v };
                if out.is_empty() {
                    out = core::mem::take(v);
                } else {
                    out.append(v);
                }
            });
        }
        let block = (!out.is_empty()).then(|| {
            self.count_handed(out.len());
            Handed {
                id: self.take_id(),
                items: out,
            }
        });
        for shard in self.shards.iter() {
            shard.unlock();
        }
        block
    }

    fn count_handed(&self, n: usize) {
        // Relaxed: a statistic for `pending()`; the shard locks order it with the pushes.
        self.handed.fetch_add(n, Ordering::Relaxed);
    }

    fn take_id(&self) -> u64 {
        // Relaxed: only the RMW's place in the modification order matters. It happens under
        // the lock of every shard the block's objects came from, so it happens-before a
        // later `drain` that locks one of those shards and then reads `next_block`, which
        // therefore returns a larger value (read-read coherence after the lock's Acquire).
        self.next_block.fetch_add(1, Ordering::Relaxed)
    }

    /// The id the next handed block will get: every block that left a shard before the
    /// calling thread last locked that shard has a smaller id.
    pub(crate) fn next_block(&self) -> u64 {
        // Relaxed: see `take_id`; the ordering comes from the shard locks taken by `drain`
        // on the same thread just before.
        self.next_block.load(Ordering::Relaxed)
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

    /// Retired but not yet destroyed (including objects leaked behind a forgotten guard).
    pub(crate) fn pending(&self) -> usize {
        // Read `reclaimed` last: it never exceeds `handed`, so the difference never wraps
        // even when other threads race us.
        let buffered = self.buffered();
        // Relaxed: a statistic; `buffered()` took every shard lock just before, which
        // orders the counts of the pushes it saw.
        let handed = self.handed.load(Ordering::Relaxed);
        let reclaimed = self.shared.reclaimed();
        buffered + handed.saturating_sub(reclaimed)
    }
}
