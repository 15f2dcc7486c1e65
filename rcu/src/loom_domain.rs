//! The loom stand-in for both backends.
//!
//! seize and crossbeam-epoch keep per-thread state in OS thread-locals, and loom runs all of
//! a model's threads on one OS thread, so neither can track loom's threads. Under
//! `cfg(loom)` the names [`Seize`] and [`Epoch`] therefore keep their API but are backed by
//! this simple domain, whose orderings loom *can* check. It shares the real backends'
//! retire path (`retire.rs`: shards, block ids taken under the shard locks, finished-block
//! set, panic-safe destruction), so the models check that code too; only the grace period
//! is simpler:
//!
//! - `enter` increments an active-guard counter, then issues a `SeqCst` fence;
//! - `retire` buffers the object; a full shard (2 objects) becomes a block that is queued
//!   for the next `synchronize`; `flush` queues the partial blocks. Nothing is freed during
//!   a model run unless a thread calls `synchronize()`, or the domain is dropped;
//! - `synchronize` drains the shards, snapshots the next block id, then repeatedly takes the
//!   queued blocks, issues a `SeqCst` fence, waits for the active-guard counter to reach
//!   zero and runs them, until every block below the snapshot has finished (another
//!   `synchronize` may be running some of them).
//!
//! The two fences are the classic store-buffering pair: either the retiring thread's fence
//! comes first in the single total order of `SeqCst` fences, and the reader's loads after
//! its fence see the unlinking store; or the reader's fence comes first, and the retiring
//! thread sees the reader counted as active and waits for it.

use core::fmt;
use core::marker::PhantomData;

use crate::domain::{load_order, Domain, Guard, Reclaim, Retired};
use crate::retire::{keep_first, resume, Buffers, Handed};
use crate::sync::atomic::{fence, AtomicPtr, AtomicUsize, Ordering};
use crate::sync::Mutex;

/// Objects per block in the loom build (small, so models reach full blocks).
const LOOM_BATCH: usize = 2;

/// State shared by the loom [`Seize`] and [`Epoch`].
struct Inner {
    active: AtomicUsize,
    buffers: Buffers,
    /// Blocks handed over and waiting for a `synchronize`.
    queued: Mutex<Vec<Handed>>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            active: AtomicUsize::new(0),
            buffers: Buffers::default(),
            queued: Mutex::new(Vec::new()),
        }
    }
}

impl Inner {
    fn enter(&self) {
        // Relaxed RMW + SeqCst fence: the fence orders the increment before every load in
        // the section and takes part in the fence total order (see the module docs).
        self.active.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    fn leave(&self) {
        // Release: every access in the section happens-before a `synchronize` that reads
        // the decremented count (Acquire) and frees.
        self.active.fetch_sub(1, Ordering::Release);
    }

    fn queue(&self, block: Option<Handed>) {
        if let Some(b) = block {
            self.queued.lock().unwrap().push(b);
        }
    }

    fn retire(&self, item: Retired) {
        self.queue(self.buffers.push(item, LOOM_BATCH));
    }

    fn flush(&self) {
        self.queue(self.buffers.drain());
    }

    fn synchronize(&self) {
        self.flush();
        let target = self.buffers.next_block();
        let shared = self.buffers.shared();
        let mut first = None;
        loop {
            let batch = core::mem::take(&mut *self.queued.lock().unwrap());
            if !batch.is_empty() {
                // SeqCst fence: pairs with the fence in `enter` (module docs).
                fence(Ordering::SeqCst);
                // Acquire: pairs with the Release decrement in `leave`.
                while self.active.load(Ordering::Acquire) != 0 {
                    crate::sync::spin_loop();
                }
                for block in batch {
                    // SAFETY: every guard that was live when the objects were retired has
                    // ended; each block is run once (taken from the queue).
                    keep_first(&mut first, unsafe { shared.run(block) });
                }
            }
            if shared.done_below(target) {
                break;
            }
            // Another thread holds blocks below `target` (queued or running them).
            crate::sync::spin_loop();
        }
        resume(first);
    }

    fn pending(&self) -> usize {
        self.buffers.pending()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let shared = self.buffers.shared().clone();
        let mut first = None;
        loop {
            self.flush();
            let batch = core::mem::take(&mut *self.queued.lock().unwrap());
            if batch.is_empty() {
                break;
            }
            for block in batch {
                // SAFETY: no guard exists (`&mut self`); each block is run once.
                keep_first(&mut first, unsafe { shared.run(block) });
            }
        }
        resume(first);
    }
}

macro_rules! loom_backend {
    ($(#[$m:meta])* $name:ident, $guard:ident, $label:literal, $order:expr) => {
        $(#[$m])*
        #[derive(Default)]
        pub struct $name {
            inner: Inner,
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("pending", &self.inner.pending())
                    .finish_non_exhaustive()
            }
        }

        impl $name {
            fn addr(&self) -> usize {
                self as *const Self as usize
            }
        }

        // SAFETY: `retire` hands objects to the backend, which runs them only after every
        // guard live at the time has been dropped (see the backend notes above); at most once.
        unsafe impl Domain for $name {
            type Guard<'d> = $guard<'d>;
            const NAME: &'static str = $label;

            fn enter(&self) -> $guard<'_> {
                crate::held::enter(self.addr());
                self.inner.enter();
                $guard {
                    domain: self,
                    _not_send: PhantomData,
                }
            }

            unsafe fn retire<T, R: Reclaim<T>>(&self, ptr: *mut T) {
                self.inner.retire(Retired::new::<T, R>(ptr));
            }

            fn flush(&self) {
                self.inner.flush();
            }

            fn synchronize(&self) {
                crate::held::assert_not_held(
                    self.addr(),
                    concat!(stringify!($name), "::synchronize"),
                );
                self.inner.synchronize();
            }

            fn pending(&self) -> usize {
                self.inner.pending()
            }
        }

        /// A read-side section (loom build). `!Send`.
        pub struct $guard<'d> {
            domain: &'d $name,
            _not_send: PhantomData<*mut ()>,
        }

        impl fmt::Debug for $guard<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($guard)).finish_non_exhaustive()
            }
        }

        impl Drop for $guard<'_> {
            fn drop(&mut self) {
                self.domain.inner.leave();
                crate::held::leave(self.domain.addr());
            }
        }

        // SAFETY: both `protect` methods return exactly the loaded value, and this guard keeps
        // the domain's reclamation from running destructors for it until it is dropped.
        unsafe impl Guard for $guard<'_> {
            fn protect<T>(&self, src: &AtomicPtr<T>, order: Ordering) -> *mut T {
                // Backend-specific strengthening, as in the real backend.
                src.load($order(order))
            }

            fn protect_word(&self, src: &AtomicUsize, order: Ordering) -> usize {
                // As in `protect`.
                src.load($order(order))
            }

            fn flush(&self) {
                self.domain.inner.flush();
            }
        }
    };
}

/// seize's protect ordering.
fn seqcst(_: Ordering) -> Ordering {
    Ordering::SeqCst
}

loom_backend!(
    /// Loom build of the seize backend (see the module docs of `loom_domain`).
    Seize,
    SeizeGuard,
    "seize",
    seqcst
);
loom_backend!(
    /// Loom build of the epoch backend (see the module docs of `loom_domain`).
    Epoch,
    EpochGuard,
    "epoch",
    load_order
);
