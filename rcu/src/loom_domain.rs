//! The loom stand-in for both backends.
//!
//! seize and crossbeam-epoch keep per-thread state in OS thread-locals, and loom runs all of
//! a model's threads on one OS thread, so neither can track loom's threads. Under
//! `cfg(loom)` the names [`Seize`] and [`Epoch`] therefore keep their API but are backed by
//! this simple domain, whose orderings loom *can* check:
//!
//! - `enter` increments an active-guard counter, then issues a `SeqCst` fence;
//! - `retire` only records the object: nothing is freed during a model run unless a thread
//!   calls `synchronize()`, or the domain is dropped;
//! - `synchronize` takes the list of retired objects, issues a `SeqCst` fence, waits for the
//!   active-guard counter to reach zero, then runs the destructors. Calls are serialized by
//!   a mutex, so a `synchronize` never returns while another one still runs destructors of
//!   objects retired before it started.
//!
//! The two fences are the classic store-buffering pair: either the retiring thread's fence
//! comes first in the single total order of `SeqCst` fences, and the reader's loads after
//! its fence see the unlinking store; or the reader's fence comes first, and the retiring
//! thread sees the reader counted as active and waits for it.

use core::fmt;
use core::marker::PhantomData;

use crate::domain::{load_order, Domain, Guard, Reclaim, Retired};
use crate::sync::atomic::{fence, AtomicPtr, AtomicUsize, Ordering};
use crate::sync::Mutex;

/// State shared by the loom [`Seize`] and [`Epoch`].
struct Inner {
    active: AtomicUsize,
    retired: Mutex<Vec<Retired>>,
    pending: AtomicUsize,
    /// Held for the whole of `synchronize`.
    syncing: Mutex<()>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            active: AtomicUsize::new(0),
            retired: Mutex::new(Vec::new()),
            pending: AtomicUsize::new(0),
            syncing: Mutex::new(()),
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

    fn retire(&self, item: Retired) {
        self.retired.lock().unwrap().push(item);
        // Relaxed: a statistic; `synchronize`/`Drop` order themselves through the mutex.
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    fn synchronize(&self) {
        // Serialize with other `synchronize` calls: one that took an empty list must not
        // return while another is still running destructors of objects retired earlier.
        let _syncing = self.syncing.lock().unwrap();
        let batch = core::mem::take(&mut *self.retired.lock().unwrap());
        // SeqCst fence: pairs with the fence in `enter` (module docs).
        fence(Ordering::SeqCst);
        // Acquire: pairs with the Release decrement in `leave`.
        while self.active.load(Ordering::Acquire) != 0 {
            crate::sync::spin_loop();
        }
        self.run(batch);
    }

    fn run(&self, batch: Vec<Retired>) {
        let n = batch.len();
        for item in batch {
            // SAFETY: every guard that was live when the objects were retired has ended
            // (synchronize) or none exists (drop); each item is run once (taken from the
            // list).
            unsafe { item.run() };
        }
        // Relaxed: a statistic.
        self.pending.fetch_sub(n, Ordering::Relaxed);
    }

    fn pending(&self) -> usize {
        // Relaxed: a statistic.
        self.pending.load(Ordering::Relaxed)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        loop {
            let batch = core::mem::take(&mut *self.retired.lock().unwrap());
            if batch.is_empty() {
                break;
            }
            self.run(batch);
        }
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

            fn flush(&self) {}

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

            fn flush(&self) {}
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
