//! The [`Epoch`] backend: crossbeam-epoch's global collector with per-domain accounting.

use core::fmt;
use std::collections::HashMap;

use crate::domain::{load_order, Domain, Guard, Reclaim, Retired};
use crate::retire::{keep_first, resume, Block, Buffers, Handed, Payload, Shared, BATCH};
use crate::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use crate::sync::{Arc, Mutex};

/// Reclamation domain over [`crossbeam_epoch`]'s global collector.
///
/// Entering pins the current thread in the global epoch (a `SeqCst` fence in crossbeam),
/// so [`Guard::protect`] is a plain load with the caller's ordering. Retired objects are
/// buffered per domain and deferred to crossbeam 64 at a time; the domain keeps track of
/// every block in flight so that dropping it runs all remaining destructors at once.
///
/// Why the global collector: pinning it goes through crossbeam's thread-local handle, the
/// fastest path crossbeam has. A collector per domain would need a per-thread map from
/// domain to `LocalHandle` and a lookup on every `enter`.
///
/// # Liveness
///
/// - **Foreign pins.** The collector is shared with every other crossbeam-epoch user in the
///   process, so a pin held by *any* of them (a guard of another `Epoch` domain, a
///   crossbeam data structure's guard, a bare `crossbeam_epoch::pin()`) delays this
///   domain's grace periods: [`Domain::synchronize`] waits until that pin is released, and
///   returns once it is (tested). It must therefore not be called while the calling
///   thread itself is pinned by any crossbeam guard: that pin could never be released, so
///   debug builds panic instead of hanging. `retire`, `flush` and `Drop` never wait for
///   pins.
/// - Grace periods complete whatever the number of threads pinned.
/// - Destructors run on the thread calling [`Domain::retire`], [`Domain::flush`],
///   [`Domain::synchronize`] or dropping the domain, once their grace period is over;
///   never inside crossbeam (whose deferred functions run on whichever thread pins or
///   flushes, possibly another crate's). A panicking destructor is caught; the rest of its
///   block (and every other ready block) is still destroyed and accounted, then the first
///   panic is re-raised from that call (dropped instead if the thread is already
///   panicking).
/// - A guard that is never dropped (`mem::forget`) pins the thread forever: from then on
///   no `Epoch` domain (and no other crossbeam user) reclaims anything and `synchronize`
///   never returns. Dropping the domain still returns and destroys **everything** retired
///   on it: it owns every block in flight, and `&mut self` proves no guard of it can be
///   used any more. Nothing is leaked but crossbeam's own bookkeeping.
///
/// ```
/// use rcu::{Domain, Epoch};
/// let d = Epoch::default();
/// drop(d.enter());
/// assert_eq!(<Epoch as Domain>::NAME, "epoch");
/// ```
pub struct Epoch {
    buffers: Buffers,
    inflight: Arc<Inflight>,
}

/// Blocks deferred to crossbeam whose grace period has not ended yet.
struct Inflight {
    shared: Arc<Shared>,
    batches: Mutex<HashMap<u64, Vec<Retired>>>,
}

impl Inflight {
    fn lock(&self) -> crate::sync::MutexGuard<'_, HashMap<u64, Vec<Retired>>> {
        // Nothing panics while holding the lock (no user code runs under it), but tolerate
        // poisoning anyway.
        self.batches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// crossbeam's callback for block `id`: its grace period is over; queue it as ready
    /// unless `Drop` of the domain already took it. Runs no user code.
    fn complete(&self, id: u64) {
        let mut m = self.lock();
        if let Some(items) = m.remove(&id) {
            // Pushed while holding the map lock, so a `Drop` that empties the map afterwards
            // also finds this block on the ready queue.
            self.shared
                .push_ready(Block::new(Handed { id, items }, &self.shared));
        }
    }
}

impl Default for Epoch {
    fn default() -> Self {
        let buffers = Buffers::default();
        let inflight = Arc::new(Inflight {
            shared: buffers.shared().clone(),
            batches: Mutex::new(HashMap::new()),
        });
        Self { buffers, inflight }
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Epoch")
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

impl Epoch {
    fn addr(&self) -> usize {
        self as *const Self as usize
    }

    /// Defer `block` to crossbeam and push it to the global queue.
    fn hand_off(&self, block: Handed) {
        let guard = crossbeam_epoch::pin();
        let Handed { id, items } = block;
        self.inflight.lock().insert(id, items);
        let inflight = self.inflight.clone();
        // SAFETY: the closure owns everything it touches (an `Arc`), and running it after
        // the grace period is exactly what the block needs.
        unsafe { guard.defer_unchecked(move || inflight.complete(id)) };
        guard.flush();
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

// SAFETY: `retire` hands objects to crossbeam, whose deferred function runs only after every
// pin live at the hand-off (itself after the `retire` call) has been released; destructors
// then run from the ready queue (or from `Drop`, when no guard can be used), each block once.
unsafe impl Domain for Epoch {
    type Guard<'d> = EpochGuard<'d>;

    const NAME: &'static str = "epoch";

    #[inline]
    fn enter(&self) -> EpochGuard<'_> {
        crate::held::enter(self.addr());
        EpochGuard {
            _pin: crossbeam_epoch::pin(),
            domain: self,
        }
    }

    #[inline]
    unsafe fn retire<T, R: Reclaim<T>>(&self, ptr: *mut T) {
        if let Some(batch) = self.buffers.push(Retired::new::<T, R>(ptr), BATCH) {
            self.hand_off(batch);
        }
        if self.buffers.shared().has_ready() {
            resume(self.run_ready());
        }
    }

    fn flush(&self) {
        self.drain_and_hand_off();
        crossbeam_epoch::pin().flush();
        resume(self.run_ready());
    }

    fn synchronize(&self) {
        crate::held::assert_not_held(self.addr(), "Epoch::synchronize");
        // Pinned by anyone (another `Epoch` domain, a crossbeam data structure): the global
        // epoch cannot advance far enough for our blocks, so waiting would never end.
        debug_assert!(
            !crossbeam_epoch::is_pinned(),
            "Epoch::synchronize: called while this thread is pinned by a crossbeam-epoch \
             guard (would deadlock)"
        );
        self.drain_and_hand_off();
        // Every block retired before the call has an id below `target` (see `retire.rs`);
        // crossbeam may run them in any order (bags are collected by whichever thread gets
        // there), so wait for all of them, not for a count.
        let target = self.buffers.next_block();
        let shared = self.buffers.shared();
        let mut first = None;
        let mut rounds = 0u32;
        loop {
            keep_first(&mut first, self.run_ready());
            if shared.done_below(target) {
                break;
            }
            // Each flush tries to advance the global epoch and runs expired deferred
            // functions (which only queue our blocks as ready).
            crossbeam_epoch::pin().flush();
            rounds += 1;
            crate::seize::backoff(rounds);
        }
        resume(first);
    }

    fn pending(&self) -> usize {
        self.buffers.pending()
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        // `&mut self`: no guard of this domain can be used any more, so every object retired
        // on it is past its grace period, whether still buffered, deferred to crossbeam or
        // ready. Run them all now; the deferred functions will find their block gone.
        // Destructors may retire more objects on this domain, so repeat while anything ran.
        // Nothing here waits for another thread.
        let shared = self.buffers.shared().clone();
        let mut first = None;
        loop {
            let mut rest: Vec<Handed> = self.buffers.drain().into_iter().collect();
            rest.extend(
                self.inflight
                    .lock()
                    .drain()
                    .map(|(id, items)| Handed { id, items }),
            );
            let ran = !rest.is_empty();
            for block in rest {
                // SAFETY: no guard of this domain can be used, and taking the blocks out of
                // the shards and the in-flight map makes this their only run.
                keep_first(&mut first, unsafe { shared.run(block) });
            }
            // After the map: a deferred function that removed its block before we locked
            // the map queued it before unlocking, so it is on the ready queue now.
            let (r, p) = shared.run_ready();
            keep_first(&mut first, p);
            if !(ran | r) {
                break;
            }
        }
        resume(first);
    }
}

/// A read-side section of an [`Epoch`] domain (a crossbeam pin). `!Send`.
pub struct EpochGuard<'d> {
    /// Held for its effect: the thread stays pinned while the guard lives.
    _pin: crossbeam_epoch::Guard,
    domain: &'d Epoch,
}

impl fmt::Debug for EpochGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochGuard").finish_non_exhaustive()
    }
}

impl Drop for EpochGuard<'_> {
    fn drop(&mut self) {
        crate::held::leave(self.domain.addr());
    }
}

// SAFETY: both `protect` methods return exactly the loaded value, and this guard keeps
// the domain's reclamation from running destructors for it until it is dropped.
unsafe impl Guard for EpochGuard<'_> {
    #[inline]
    fn protect<T>(&self, src: &AtomicPtr<T>, order: Ordering) -> *mut T {
        // The caller's ordering (made valid for a load) suffices: pinning already issued the
        // SeqCst fence that orders this section against epoch advancement.
        src.load(load_order(order))
    }

    #[inline]
    fn protect_word(&self, src: &AtomicUsize, order: Ordering) -> usize {
        // As in `protect`.
        src.load(load_order(order))
    }

    fn flush(&self) {
        self.domain.flush();
    }
}
