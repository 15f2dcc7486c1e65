//! The one place that chooses between `std` and `loom` synchronisation primitives.
//!
//! Everything in this workspace that needs an atomic, a fence, an `Arc` or a spin hint takes
//! it from here, so that building with `RUSTFLAGS="--cfg loom"` swaps every primitive for its
//! [loom](https://docs.rs/loom) model in one go. Outside `cfg(loom)` these are plain `std`
//! re-exports with no overhead.
//!
//! [`UnsafeCell`] has loom's closure API (`with` / `with_mut`) in both builds, so code that
//! touches non-atomic shared memory can be checked by loom for data races.

/// Atomic types, [`Ordering`](atomic::Ordering) and [`fence`](atomic::fence): `std`'s
/// normally, `loom`'s under `cfg(loom)`.
pub mod atomic {
    #[cfg(loom)]
    pub use loom::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };
    #[cfg(not(loom))]
    pub use std::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };
}

#[cfg(loom)]
pub use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(loom))]
pub use std::sync::{Arc, Mutex, MutexGuard};

/// Threads: `std::thread` normally, `loom::thread` under `cfg(loom)`.
pub mod thread {
    #[cfg(loom)]
    pub use loom::thread::{spawn, yield_now, JoinHandle};
    #[cfg(not(loom))]
    pub use std::thread::{spawn, yield_now, JoinHandle};
}

/// Hint that the caller is busy-waiting on a value another thread will change.
///
/// Under loom this yields to the model scheduler instead, which is what lets a loom model
/// make progress through a spin loop.
#[inline]
pub fn spin_loop() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}

/// Give up the rest of this time slice (loom: let another modelled thread run).
#[inline]
pub fn yield_now() {
    thread::yield_now();
}

/// A cell for non-atomic shared data with loom's closure API in both builds.
///
/// Under `cfg(loom)` every access is checked for data races by the model checker; otherwise
/// it is a zero-cost wrapper around [`core::cell::UnsafeCell`].
pub struct UnsafeCell<T: ?Sized> {
    #[cfg(loom)]
    inner: loom::cell::UnsafeCell<T>,
    #[cfg(not(loom))]
    inner: core::cell::UnsafeCell<T>,
}

impl<T: ?Sized> core::fmt::Debug for UnsafeCell<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("UnsafeCell { .. }")
    }
}

impl<T> UnsafeCell<T> {
    /// Wrap `value`.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Self {
            inner: core::cell::UnsafeCell::new(value),
        }
    }

    /// Wrap `value`.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Self {
            inner: loom::cell::UnsafeCell::new(value),
        }
    }

    /// Unwrap the value.
    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> UnsafeCell<T> {
    /// Run `f` with a shared raw pointer to the contents.
    ///
    /// Dereferencing the pointer is the caller's responsibility: no `&mut` access may run
    /// at the same time.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        #[cfg(loom)]
        return self.inner.with(f);
        #[cfg(not(loom))]
        f(self.inner.get())
    }

    /// Run `f` with an exclusive raw pointer to the contents.
    ///
    /// Dereferencing the pointer is the caller's responsibility: no other access may run at
    /// the same time.
    #[inline]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(loom)]
        return self.inner.with_mut(f);
        #[cfg(not(loom))]
        f(self.inner.get())
    }
}
