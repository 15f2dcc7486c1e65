//! The [`Seize`] backend: a `seize::Collector` per domain.
//!
//! # How a block is handed to seize
//!
//! seize (Hyaline-1) retires a thread-local *seize batch* only if it holds at least one
//! entry per thread that is inside a guard of the collector at that moment: each such
//! thread gets one of the entries linked into its reservation list. Entries left in a
//! batch that was too short stay in that thread's seize batch, invisible to every other
//! thread; an earlier version padded every batch to a multiple of 64 entries and therefore
//! stranded objects (and hung `synchronize`) once 64 threads were inside guards.
//!
//! Now every hand-off ([`Seize::hand_off`]) adds **one** entry for the whole block (the
//! block itself, so the cost per object no longer includes a seize entry) followed by
//! `bound` no-op entries, and asks seize to retire the batch at once (`flush`). `bound`
//! is [`BOUND`]: one more than the largest seize thread id of any thread that ever entered
//! a `Seize` domain. A collector's reservations are indexed by seize thread id and only
//! threads that entered through this module have one, so at most `bound` threads can be
//! inside guards: the retire cannot come up short, the calling thread's seize batch is
//! empty afterwards, and nothing is ever stranded, whatever the number of threads.
//!
//! Registration ([`register`]) raises `BOUND` *before* the thread's first guard (a `SeqCst`
//! RMW followed by a `SeqCst` fence). If a new thread registers while a hand-off is
//! running, the hand-off may have read a `bound` that is too small; but then its retire
//! scan saw that thread's reservation active, whose activation store follows the fence, so
//! the hand-off's own Acquire fence after the scan makes the raised `BOUND` visible: it
//! re-reads `BOUND`, and if it grew, adds that many more no-op entries and retries. Each
//! retry is triggered by a registration, so the loop ends.
//!
//! seize may also try to retire the batch on its own, whenever it reaches the collector's
//! batch size ([`SEIZE_BATCH`]); such an early retire takes every entry added so far,
//! including the block. Whatever was added after it is part of the `bound` no-op entries
//! that follow the block, so the final flush either retires a batch of at least `bound`
//! entries (success) or holds only no-op entries (harmless, freed later).
//!
//! With at most `SEIZE_BATCH - 1` registered thread ids a hand-off is one seize retire;
//! with more, seize retries on every added entry once the batch reaches `SEIZE_BATCH` and
//! fails while more threads than entries are inside guards, so a hand-off costs up to one
//! retire attempt (a process-wide memory barrier and a scan of the reservations) per
//! thread inside a guard: correct, slower. Blocks then also grow to `bound` objects
//! (`Seize::retire`), which keeps the no-op entries at most one per object.

use core::cell::Cell;
use core::fmt;
use core::ptr::NonNull;
use std::sync::atomic::{fence, AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
use std::sync::OnceLock;

use seize::Guard as _;

use crate::domain::{Domain, Guard, Reclaim, Retired};
use crate::retire::{keep_first, resume, Block, Buffers, Handed, Payload, BATCH};
use crate::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// seize's batch size for our collectors. A hand-off flushes explicitly; this only decides
/// when seize also tries on its own (and how much seize allocates per batch: 32 bytes per
/// entry of capacity).
const SEIZE_BATCH: usize = 64;

/// One more than the largest seize thread id of any thread that ever entered (or handed a
/// block to) a `Seize` domain: an upper bound on the number of threads inside guards of
/// any one of our collectors. Only grows; seize reuses the ids of exited threads, lowest
/// first, so it stays near the peak number of threads alive at once.
static BOUND: StdAtomicUsize = StdAtomicUsize::new(0);

std::thread_local! {
    /// Whether this thread's seize id is covered by `BOUND`. No destructor, so the check is
    /// one thread-local load that works even while the thread is exiting.
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Make sure `BOUND` covers this thread. Must run before every `collector.enter()`.
#[inline]
fn register() {
    if !REGISTERED.with(Cell::get) {
        register_slow();
    }
}

#[cold]
#[inline(never)]
fn register_slow() {
    // seize thread ids are process-wide (shared by all collectors); any collector tells us
    // ours. This one is never retired on.
    static PROBE: OnceLock<seize::Collector> = OnceLock::new();
    let id = PROBE.get_or_init(seize::Collector::new).enter().thread_id();
    // SeqCst RMW, then a SeqCst fence before this thread's first activation in any of our
    // collectors: the fence acts as a release fence for that later (relaxed) activation
    // store, so a hand-off whose retire scan sees us active and then issues an Acquire
    // fence also sees the raised bound (see the module docs).
    BOUND.fetch_max(id + 1, StdOrdering::SeqCst);
    fence(StdOrdering::SeqCst);
    REGISTERED.with(|r| r.set(true));
}

/// The current bound (see [`BOUND`]).
#[inline]
fn bound() -> usize {
    // Relaxed: a hint for sizing blocks; `hand_off` orders its reads with fences.
    BOUND.load(StdOrdering::Relaxed)
}

/// Reclamation domain over the [`seize`] crate (the default backend).
///
/// Each instance owns its own `seize::Collector`, so its grace periods only wait for its own
/// guards. Entering a section marks the thread active in that collector (reentrant);
/// [`Guard::protect`] loads with `SeqCst`, the ordering seize's protocol requires.
/// Retired objects are buffered per domain and handed to seize as blocks of 64 (or, with
/// more than 64 threads, as many as there are thread slots), one seize entry per block.
///
/// # Liveness
///
/// - Grace periods complete with **any number of threads** inside guards: a block's retire
///   always carries enough seize entries (module `seize.rs` explains how), so nothing is
///   stranded in a thread's seize batch and [`Domain::synchronize`] returns once every
///   guard that was live when it was called has been dropped. Beyond about 60 threads
///   inside guards at once, handing a block to seize costs more (see the module docs).
/// - Destructors run on the thread calling [`Domain::retire`], [`Domain::flush`],
///   [`Domain::synchronize`] or dropping the domain, once their grace period is over;
///   never inside a reader's guard drop. A panicking destructor is caught; the rest of its
///   block (and every other ready block) is still destroyed and accounted, then the first
///   panic is re-raised from that call (dropped instead if the thread is already
///   panicking).
/// - A guard that is never dropped (`mem::forget`) is a reader that never leaves: nothing
///   retired on the domain after it was entered is destroyed while the domain lives,
///   `synchronize` never returns (on any thread), and `pending()` only grows. Dropping the
///   domain still returns, without waiting: it destroys everything still buffered in the
///   domain and everything whose grace period could complete, and **leaks** the blocks
///   that were handed to seize (a full block of 64, or by `flush`/`synchronize`) while the
///   forgotten guard was live: seize keeps them in the forgotten guard's reservation list,
///   out of reach. Their destructors never run; the leak is bounded by what was retired
///   while the guard was live.
///
/// ```
/// use rcu::{Domain, Seize};
/// let d = Seize::default();
/// let g = d.enter();
/// drop(g);
/// assert_eq!(<Seize as Domain>::NAME, "seize");
/// ```
pub struct Seize {
    // Declared first, so it drops before `buffers`: its last callbacks (during
    // `Collector::drop`) still find the ready queue alive.
    collector: seize::Collector,
    buffers: Buffers,
}

impl Default for Seize {
    fn default() -> Self {
        Self {
            collector: seize::Collector::new().batch_size(SEIZE_BATCH),
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

/// seize's reclaimer for a block: its grace period is over, queue it for a writer-side
/// call to run (no user code here, so nothing can unwind through seize).
///
/// # Safety
///
/// `block` came from `Box::into_raw` in `Seize::hand_off`, seize calls this once, and the
/// block's `owner` (the domain's `Shared`) is alive: seize calls reclaimers only while the
/// collector lives, and the collector drops before the domain's buffers.
unsafe fn reclaim_block(block: *mut Block, _: &seize::Collector) {
    // SAFETY: see the function's contract.
    let block = unsafe { Box::from_raw(block) };
    let owner = block.owner;
    // SAFETY: the owner outlives every callback of the collector (see above).
    unsafe { (*owner).push_ready(block) };
}

/// A no-op entry used to give seize enough entries; does nothing.
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

    /// Hand `handed` to seize: one entry for the block, then enough no-op entries that the
    /// retire cannot come up short, then an explicit retire (see the module docs).
    fn hand_off(&self, handed: Handed) {
        register();
        let guard = self.collector.enter();
        let block = Box::into_raw(Block::new(handed, self.buffers.shared()));
        // SAFETY: the objects were unlinked before they were retired on this domain and
        // seize's grace period for the entry starts now (later is always safe); the block
        // is reclaimed only by `reclaim_block`, once.
        unsafe { guard.defer_retire(block, reclaim_block) };
        // SeqCst: ordered after our own registration and the entry above.
        let mut bound = BOUND.load(StdOrdering::SeqCst);
        loop {
            pad(&guard, bound);
            guard.flush();
            // Acquire: if the scan inside `flush` saw a thread active whose registration we
            // missed, its SeqCst fence (before activating) synchronizes with this fence and
            // the reload below sees its raised bound.
            fence(StdOrdering::Acquire);
            let now = BOUND.load(StdOrdering::Relaxed);
            if now <= bound {
                break;
            }
            bound = now;
        }
        // Leaving releases the block from our own reservation list (if this is the
        // outermost guard); the last reader to leave queues it as ready.
    }

    fn drain_and_hand_off(&self) {
        if let Some(block) = self.buffers.drain() {
            self.hand_off(block);
        }
    }

    /// Run the ready queue; the first destructor panic is returned.
    fn run_ready(&self) -> Option<Payload> {
        self.buffers.shared().run_ready().1
    }
}

// SAFETY: `retire` hands objects to seize, which calls `reclaim_block` only after every
// guard live at the time of the hand-off (itself after the `retire` call) has been dropped;
// destructors run from the ready queue, each block once.
unsafe impl Domain for Seize {
    type Guard<'d> = SeizeGuard<'d>;

    const NAME: &'static str = "seize";

    #[inline]
    fn enter(&self) -> SeizeGuard<'_> {
        register();
        crate::held::enter(self.addr());
        SeizeGuard {
            inner: self.collector.enter(),
            domain: self,
        }
    }

    #[inline]
    unsafe fn retire<T, R: Reclaim<T>>(&self, ptr: *mut T) {
        let len = BATCH.max(bound());
        if let Some(block) = self.buffers.push(Retired::new::<T, R>(ptr), len) {
            self.hand_off(block);
        }
        if self.buffers.shared().has_ready() {
            resume(self.run_ready());
        }
    }

    fn flush(&self) {
        self.drain_and_hand_off();
        resume(self.run_ready());
    }

    fn synchronize(&self) {
        crate::held::assert_not_held(self.addr(), "Seize::synchronize");
        self.drain_and_hand_off();
        // Everything retired before the call has a block id below `target` by now (see
        // `retire.rs`). Blocks finish in any order, so wait for all ids below `target`, not
        // for a count of objects. Readers only queue finished blocks; we run them.
        let target = self.buffers.next_block();
        let shared = self.buffers.shared();
        let mut first = None;
        let mut rounds = 0u32;
        loop {
            keep_first(&mut first, self.run_ready());
            if shared.done_below(target) {
                break;
            }
            rounds += 1;
            backoff(rounds);
        }
        resume(first);
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
        // `&mut self`: no guard of this domain can be used any more, so everything still
        // buffered or already retired into a seize batch can be destroyed. Blocks linked
        // into the reservation list of a forgotten guard cannot be reached (seize frees a
        // retired batch only when its readers leave): they are leaked. Destructors may
        // retire more objects on this domain, so repeat while anything ran; never wait.
        let shared = self.buffers.shared().clone();
        let mut first = None;
        loop {
            let mut ran = false;
            if let Some(rest) = self.buffers.drain() {
                ran = true;
                // SAFETY: no guard of this domain can be used, so no reader can hold these
                // objects; `drain` took them out of the shards, so this is their only run.
                keep_first(&mut first, unsafe { shared.run(rest) });
            }
            // SAFETY: no thread can use a guard of this collector any more (a forgotten
            // guard never touches it again). This frees only the thread-local seize batches
            // not yet retired (no-op entries, or blocks of a hand-off cut short), each
            // through its reclaimer: blocks go to the ready queue.
            unsafe { self.collector.reclaim_all() };
            let (r, p) = shared.run_ready();
            keep_first(&mut first, p);
            if !(ran | r) {
                break;
            }
        }
        resume(first);
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
        self.domain.flush();
    }
}
