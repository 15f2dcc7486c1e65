//! The [`Seize`] backend: a `seize::Collector` per domain.

use core::fmt;
use core::ptr::NonNull;

use seize::Guard as _;

use crate::domain::{Domain, Guard, Reclaim, Retired};
use crate::retire::{run_batch, Buffers, Counters, Handed, BATCH};
use crate::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use crate::sync::Arc;

/// Reclamation domain over the [`seize`] crate (the default backend).
///
/// Each instance owns its own `seize::Collector`, so its grace periods only wait for its own
/// guards. Entering a section marks the thread active in that collector (reentrant);
/// [`Guard::protect`] loads with `SeqCst`, the ordering seize's protocol requires.
/// Retired objects are buffered per domain (see [`Domain::synchronize`]) and handed to seize
/// 64 at a time.
///
/// Limit: seize only starts a grace period for a thread's batch once it holds at least as
/// many entries as there are threads inside guards of the domain. This backend keeps every
/// thread's seize batch a multiple of 64 entries long (padding with no-op entries), which
/// works as long as fewer than 64 threads are inside guards of one domain at the same time.
/// With more, entries can stay in the batch of a thread that then exits, and
/// [`Domain::synchronize`] may wait until those threads retire again (or forever); dropping
/// the domain still destroys everything.
///
/// ```
/// use rcu::{Domain, Seize};
/// let d = Seize::default();
/// let g = d.enter();
/// drop(g);
/// assert_eq!(<Seize as Domain>::NAME, "seize");
/// ```
pub struct Seize {
    collector: seize::Collector,
    buffers: Buffers,
}

impl Default for Seize {
    fn default() -> Self {
        Self {
            // One seize batch = one of our blocks, so a full block starts its grace period
            // on its last entry (see `hand_off`).
            collector: seize::Collector::new().batch_size(BATCH),
            buffers: Buffers::default(),
        }
    }
}

impl fmt::Debug for Seize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seize")
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

/// A batch of retired objects handed to seize: one seize entry per object (so seize's
/// batches always hold enough entries to be retired), all pointing back at this block.
struct Block {
    counters: Arc<Counters>,
    /// The block id from `Buffers` (see `Counters::complete`).
    id: u64,
    /// Nodes whose destructor has not run yet; the last one frees the block.
    remaining: AtomicUsize,
    nodes: Box<[Node]>,
}

struct Node {
    item: Retired,
    block: *const Block,
}

/// seize's reclaim function for one node.
///
/// # Safety
///
/// `node` points into a live `Block` handed to seize by `Seize::hand_off`, its grace period
/// has passed and seize calls this once per node.
unsafe fn reclaim_node(node: *mut Node, _: &seize::Collector) {
    // SAFETY: the node is alive until the last node of its block is done, which is at the
    // earliest this call.
    let (ptr, reclaim, block) = unsafe { ((*node).item.ptr, (*node).item.reclaim, (*node).block) };
    // SAFETY: seize calls us after the grace period of the node, which began after the
    // object was unlinked; `reclaim` is the object's destructor.
    unsafe { Retired { ptr, reclaim }.run() };
    // SAFETY: the block outlives all its nodes' reclaim calls (freed by the last one below).
    let b = unsafe { &*block };
    // AcqRel: Release publishes our node reads to the thread freeing the block; Acquire on
    // the last decrement makes every other node's reads happen-before the free.
    if b.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
        b.counters.complete(b.id, b.nodes.len());
        // SAFETY: every node of the block is done; the block came from `Box::into_raw`.
        drop(unsafe { Box::from_raw(block.cast_mut()) });
    }
}

/// A placeholder entry used to fill seize's batch; does nothing.
unsafe fn reclaim_nothing(_: *mut u8, _: &seize::Collector) {}

/// Add `n` no-op entries to the current thread's seize batch.
fn pad(guard: &seize::LocalGuard<'_>, n: usize) {
    for _ in 0..n {
        // SAFETY: a dangling, never-dereferenced pointer with a no-op reclaimer.
        unsafe { guard.defer_retire(NonNull::<u8>::dangling().as_ptr(), reclaim_nothing) };
    }
}

impl Seize {
    fn addr(&self) -> usize {
        self as *const Self as usize
    }

    /// Hand `batch` to seize through the live `guard`, starting its grace period.
    ///
    /// seize collects retired entries in a per-thread batch and only starts a grace period
    /// once that batch holds `batch_size` (= `BATCH`) entries *and* at least as many
    /// entries as there are threads inside guards at that moment. Entries left below that
    /// threshold stay in the thread's batch, and if the thread then exits they are stranded
    /// until the domain is dropped, which would make `synchronize` wait forever. So a
    /// partial block is padded with no-op entries up to a multiple of `BATCH`: the thread's
    /// batch starts and ends empty, as long as fewer than `BATCH` threads are inside guards
    /// of this domain at the time. Everything else that adds to this collector's batches
    /// (`synchronize`) also adds multiples of `BATCH`, so the batch does start empty.
    fn hand_off(&self, block: Handed, guard: &seize::LocalGuard<'_>) {
        let Handed { id, items: batch } = block;
        let n = batch.len();
        let nodes: Box<[Node]> = batch
            .into_iter()
            .map(|item| Node {
                item,
                block: core::ptr::null(),
            })
            .collect();
        let block = Box::into_raw(Box::new(Block {
            counters: self.buffers.counters().clone(),
            id,
            remaining: AtomicUsize::new(n),
            nodes,
        }));
        // SAFETY: `block` is freshly allocated and not shared yet; the node pointers are
        // derived from the raw block pointer, so they stay valid for the block's lifetime.
        let first: *mut Node = unsafe { (*block).nodes.as_mut_ptr() };
        for i in 0..n {
            // SAFETY: `i < n` = the slice length; still unshared.
            unsafe { (*first.add(i)).block = block };
        }
        for i in 0..n {
            // SAFETY: the objects were unlinked before they were retired on this domain, and
            // seize's grace period for the node starts now (later is always safe). The node
            // is only reclaimed by `reclaim_node`, once.
            unsafe { guard.defer_retire(first.add(i), reclaim_node) };
        }
        pad(guard, (BATCH - n % BATCH) % BATCH);
    }

    fn drain_and_hand_off(&self, guard: &seize::LocalGuard<'_>) {
        if let Some(block) = self.buffers.drain() {
            self.hand_off(block, guard);
        }
    }
}

// SAFETY: `retire` hands objects to the backend, which runs them only after every
// guard live at the time has been dropped (see the backend notes above); at most once.
unsafe impl Domain for Seize {
    type Guard<'d> = SeizeGuard<'d>;

    const NAME: &'static str = "seize";

    #[inline]
    fn enter(&self) -> SeizeGuard<'_> {
        crate::held::enter(self.addr());
        SeizeGuard {
            inner: self.collector.enter(),
            domain: self,
        }
    }

    #[inline]
    unsafe fn retire<T, R: Reclaim<T>>(&self, ptr: *mut T) {
        if let Some(batch) = self.buffers.push(Retired::new::<T, R>(ptr)) {
            let guard = self.collector.enter();
            self.hand_off(batch, &guard);
        }
    }

    fn flush(&self) {
        let guard = self.collector.enter();
        self.drain_and_hand_off(&guard);
        guard.flush();
    }

    fn synchronize(&self) {
        crate::held::assert_not_held(self.addr(), "Seize::synchronize");
        {
            let guard = self.collector.enter();
            self.drain_and_hand_off(&guard);
        }
        // Everything retired before the call has a block id below `target` by now (given
        // by us just above, or by the thread whose shard filled up, before it unlocked the
        // shard that `drain` then locked). Blocks finish in any order, so wait for all ids
        // below `target`, not for a count of objects.
        let target = self.buffers.next_block();
        let counters = self.buffers.counters();
        let mut rounds = 0u32;
        while !counters.done_below(target) {
            // If this thread's seize batch holds entries that could not be retired yet
            // (more threads were active than it had entries), push one more batch worth of
            // no-op entries so seize tries again. Exactly `BATCH` keeps the batch aligned
            // for later `hand_off`s (see there); a leftover would strand real entries.
            let guard = self.collector.enter();
            pad(&guard, BATCH);
            // Retries a batch still short of entries (only possible with `BATCH` or more
            // active threads); emptying it also restores the alignment.
            guard.flush();
            // Leaving runs the batches whose last reader we were.
            drop(guard);
            rounds += 1;
            backoff(rounds);
        }
    }

    fn pending(&self) -> usize {
        self.buffers.pending()
    }
}

/// Wait a little longer each round: spin, then yield, then sleep.
pub(crate) fn backoff(round: u32) {
    if round < 8 {
        for _ in 0..(1u32 << round) {
            crate::sync::spin_loop();
        }
    } else if round < 64 {
        crate::sync::yield_now();
    } else {
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
}

impl Drop for Seize {
    fn drop(&mut self) {
        // `&mut self`: no guard of this domain exists (guards borrow it), so every grace
        // period is over. Destructors may retire more objects on this domain; loop until
        // nothing is pending, i.e. every object handed to seize has been destroyed, even one
        // that a destructor handed to a seize batch during `reclaim_all`.
        loop {
            if let Some(rest) = self.buffers.drain() {
                // SAFETY: no guard of this domain exists, so no reader can hold these
                // objects; `drain` took them out of the shards, so this is their only run.
                unsafe { run_batch(rest, self.buffers.counters()) };
            }
            // SAFETY: as above, no thread is inside this collector or reading anything
            // retired on it; we have exclusive access.
            unsafe { self.collector.reclaim_all() };
            if self.buffers.pending() == 0 {
                break;
            }
        }
    }
}

/// A read-side section of a [`Seize`] domain. `!Send`.
pub struct SeizeGuard<'d> {
    inner: seize::LocalGuard<'d>,
    domain: &'d Seize,
}

impl fmt::Debug for SeizeGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeizeGuard").finish_non_exhaustive()
    }
}

impl Drop for SeizeGuard<'_> {
    fn drop(&mut self) {
        crate::held::leave(self.domain.addr());
    }
}

// SAFETY: both `protect` methods return exactly the loaded value, and this guard keeps
// the domain's reclamation from running destructors for it until it is dropped.
unsafe impl Guard for SeizeGuard<'_> {
    #[inline]
    fn protect<T>(&self, src: &AtomicPtr<T>, order: Ordering) -> *mut T {
        // seize strengthens every protected load to SeqCst: paired with the barrier in
        // `enter`, the load takes part in the total order that decides whether a concurrent
        // retirement saw this thread as active.
        let _ = order;
        self.inner.protect(src, Ordering::SeqCst)
    }

    #[inline]
    fn protect_word(&self, src: &AtomicUsize, order: Ordering) -> usize {
        // SeqCst: same reason as `protect` (seize's `Collector::protect` ordering).
        let _ = order;
        src.load(Ordering::SeqCst)
    }

    fn flush(&self) {
        self.domain.drain_and_hand_off(&self.inner);
        self.inner.flush();
    }
}
