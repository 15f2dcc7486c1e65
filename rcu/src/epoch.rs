//! The [`Epoch`] backend: crossbeam-epoch's global collector with per-domain accounting.

use core::fmt;
use std::collections::HashMap;

use crate::domain::{load_order, Domain, Guard, Reclaim, Retired};
use crate::retire::{run_batch, Buffers, Counters, Handed};
use crate::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use crate::sync::{Arc, Mutex};

/// Reclamation domain over [`crossbeam_epoch`]'s global collector.
///
/// Entering pins the current thread in the global epoch (a `SeqCst` fence in crossbeam),
/// so [`Guard::protect`] is a plain load with the caller's ordering. Retired objects are
/// buffered per domain and deferred to crossbeam 64 at a time; the domain keeps track of
/// every batch in flight so that dropping it runs all remaining destructors at once.
///
/// Why the global collector: pinning it goes through crossbeam's thread-local handle, the
/// fastest path crossbeam has. A collector per domain would need a per-thread map from
/// domain to `LocalHandle` and a lookup on every `enter`. The cost of sharing is that a
/// thread pinned for a long time by *any* crossbeam user delays grace periods (and hence
/// [`Domain::synchronize`]) of every `Epoch` domain; `Drop` never waits for it. For the same
/// reason [`Domain::synchronize`] must not be called while the calling thread is pinned by
/// any crossbeam-epoch guard (of this or another `Epoch` domain, a crossbeam data structure,
/// ...): the global epoch cannot advance past that pin, so it would wait forever. Debug
/// builds panic instead.
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

/// Batches deferred to crossbeam whose destructors have not run yet.
struct Inflight {
    counters: Arc<Counters>,
    batches: Mutex<InflightMap>,
    /// Batches taken out of the map by `complete` whose destructors are still running.
    running: AtomicUsize,
}

/// In-flight batches by block id (the id `Buffers` gave them).
#[derive(Default)]
struct InflightMap {
    map: HashMap<u64, Vec<Retired>>,
}

impl Inflight {
    fn lock(&self) -> crate::sync::MutexGuard<'_, InflightMap> {
        // A panicking destructor never runs with the lock held, but tolerate poisoning.
        self.batches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run batch `id` unless `Drop` of the domain already did.
    fn complete(&self, id: u64) {
        let batch = {
            let mut m = self.lock();
            let batch = m.map.remove(&id);
            if batch.is_some() {
                // Relaxed: the map lock orders this with `Drop`'s check of the map; `Drop`
                // waits for the decrement below with Acquire.
                self.running.fetch_add(1, Ordering::Relaxed);
            }
            batch
        };
        if let Some(items) = batch {
            // SAFETY: crossbeam runs this after the grace period of the batch, which began
            // after every object in it was retired; `remove` makes this the only run.
            unsafe { run_batch(Handed { id, items }, &self.counters) };
            // Release: the destructors happen-before `Drop` of the domain returns.
            self.running.fetch_sub(1, Ordering::Release);
        }
    }
}

impl Default for Epoch {
    fn default() -> Self {
        let buffers = Buffers::default();
        let inflight = Arc::new(Inflight {
            counters: buffers.counters().clone(),
            batches: Mutex::new(InflightMap::default()),
            running: AtomicUsize::new(0),
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

    /// Defer `block` to crossbeam through `guard` and push it to the global queue.
    fn hand_off(&self, block: Handed, guard: &crossbeam_epoch::Guard) {
        let Handed { id, items } = block;
        self.inflight.lock().map.insert(id, items);
        let inflight = self.inflight.clone();
        // SAFETY: the closure owns everything it touches (an `Arc`), and running it after
        // the grace period is exactly what the batch needs.
        unsafe { guard.defer_unchecked(move || inflight.complete(id)) };
        guard.flush();
    }

    fn drain_and_hand_off(&self, guard: &crossbeam_epoch::Guard) {
        if let Some(block) = self.buffers.drain() {
            self.hand_off(block, guard);
        }
    }
}

// SAFETY: `retire` hands objects to the backend, which runs them only after every
// guard live at the time has been dropped (see the backend notes above); at most once.
unsafe impl Domain for Epoch {
    type Guard<'d> = EpochGuard<'d>;

    const NAME: &'static str = "epoch";

    #[inline]
    fn enter(&self) -> EpochGuard<'_> {
        crate::held::enter(self.addr());
        EpochGuard {
            inner: crossbeam_epoch::pin(),
            domain: self,
        }
    }

    #[inline]
    unsafe fn retire<T, R: Reclaim<T>>(&self, ptr: *mut T) {
        if let Some(batch) = self.buffers.push(Retired::new::<T, R>(ptr)) {
            let guard = crossbeam_epoch::pin();
            self.hand_off(batch, &guard);
        }
    }

    fn flush(&self) {
        let guard = crossbeam_epoch::pin();
        self.drain_and_hand_off(&guard);
        guard.flush();
    }

    fn synchronize(&self) {
        crate::held::assert_not_held(self.addr(), "Epoch::synchronize");
        // Pinned by anyone (another `Epoch` domain, a crossbeam data structure): the global
        // epoch cannot advance far enough for our batches, so waiting would never end.
        debug_assert!(
            !crossbeam_epoch::is_pinned(),
            "Epoch::synchronize: called while this thread is pinned by a crossbeam-epoch \
             guard (would deadlock)"
        );
        {
            let guard = crossbeam_epoch::pin();
            self.drain_and_hand_off(&guard);
        }
        // Every block retired before the call has an id below `target` (see
        // `Seize::synchronize`); crossbeam may run them in any order (bags are collected by
        // whichever thread gets there), so wait for all of them, not for a count.
        let target = self.buffers.next_block();
        let counters = self.buffers.counters();
        let mut rounds = 0u32;
        while !counters.done_below(target) {
            // Each flush tries to advance the global epoch and runs expired batches.
            crossbeam_epoch::pin().flush();
            rounds += 1;
            crate::seize::backoff(rounds);
        }
    }

    fn pending(&self) -> usize {
        self.buffers.pending()
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        // `&mut self`: no guard of this domain exists, so every object retired on it is
        // past its grace period, whether still buffered or deferred to crossbeam. Run them
        // all now; the deferred closures will find their batch gone. Destructors may retire
        // more objects on this domain, so loop until nothing is left.
        loop {
            let mut rest: Vec<Handed> = self.buffers.drain().into_iter().collect();
            rest.extend(
                self.inflight
                    .lock()
                    .map
                    .drain()
                    .map(|(id, items)| Handed { id, items }),
            );
            if rest.is_empty() {
                // Wait for batches that crossbeam is running right now on other threads, so
                // every destructor has finished when `drop` returns. Acquire: pairs with the
                // Release decrement in `complete`.
                while self.inflight.running.load(Ordering::Acquire) != 0 {
                    crate::sync::yield_now();
                }
                if self.buffers.buffered() == 0 && self.inflight.lock().map.is_empty() {
                    break;
                }
                continue;
            }
            for block in rest {
                // SAFETY: no guard of this domain exists, and taking the batches out of the
                // shards and the in-flight map makes this their only run.
                unsafe { run_batch(block, self.buffers.counters()) };
            }
        }
    }
}

/// A read-side section of an [`Epoch`] domain (a crossbeam pin). `!Send`.
pub struct EpochGuard<'d> {
    inner: crossbeam_epoch::Guard,
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
        self.domain.drain_and_hand_off(&self.inner);
        self.inner.flush();
    }
}
