//! The domain abstraction: read-side guards, retirement with a monomorphised destructor,
//! and waiting for a grace period.

use core::fmt;

use crate::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// How a retired pointer is destroyed once its grace period has passed.
///
/// Implementations are zero-sized strategy types; the domain stores `R::reclaim` as a plain
/// function pointer, so retiring never allocates per object for the destructor.
///
/// # Safety
///
/// An implementation must be sound to call on every pointer its users retire with it, given
/// the guarantees listed on [`Reclaim::reclaim`]. It may retire further objects on the
/// domain that calls it (they get a grace period of their own and are destroyed later, at the
/// latest when the domain is dropped), but it must not synchronize or drop that domain.
///
/// It may panic: the domain catches the panic, finishes the other destructors, and re-raises
/// it from the `retire`, `flush`, `synchronize` or `drop` call that was running it (see the
/// crate's liveness guarantees). The panicking object counts as destroyed and is never
/// reclaimed again.
pub unsafe trait Reclaim<T> {
    /// Destroy `ptr`.
    ///
    /// # Safety
    ///
    /// Called at most once per retired pointer, after its grace period: no read-side section
    /// that could have loaded `ptr` is still running, and `ptr` is whatever the retiring code
    /// promised it would be (e.g. from `Box::into_raw` for [`DropBox`]).
    unsafe fn reclaim(ptr: *mut T);
}

/// Reclaim by `drop(Box::from_raw(ptr))`.
///
/// ```
/// use rcu::{Domain, DropBox, Seize};
///
/// let domain = Seize::default();
/// let p = Box::into_raw(Box::new(String::from("old")));
/// // SAFETY: `p` was never shared, comes from `Box::into_raw` and is retired once.
/// unsafe { domain.retire::<String, DropBox>(p) };
/// domain.synchronize();
/// assert_eq!(domain.pending(), 0);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct DropBox;

// SAFETY: the contract of `Domain::retire::<T, DropBox>` requires pointers from
// `Box::into_raw`, and `reclaim` runs at most once per pointer, so the `Box` is rebuilt once.
unsafe impl<T> Reclaim<T> for DropBox {
    unsafe fn reclaim(ptr: *mut T) {
        // SAFETY: the caller passes a pointer from `Box::into_raw` exactly once, after every
        // reader that could see it has finished.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

/// A reclamation domain: read-side sections ([`Domain::enter`]) plus deferred destruction of
/// retired objects ([`Domain::retire`]).
///
/// Every instance is independent: objects retired on one domain wait only for guards of
/// that domain, and dropping a domain destroys everything still retired on it (no guard can
/// exist then, because guards borrow the domain). A data structure owns one.
///
/// Both backends, [`Seize`](crate::Seize) (default) and [`Epoch`](crate::Epoch), are always
/// compiled and may be used side by side.
///
/// ```
/// use rcu::sync::atomic::{AtomicPtr, Ordering};
/// use rcu::{Domain, DropBox, Guard, Seize};
///
/// let domain = Seize::default();
/// let slot = AtomicPtr::new(Box::into_raw(Box::new(1u64)));
///
/// // Reader.
/// {
///     let guard = domain.enter();
///     let p = guard.protect(&slot, Ordering::Acquire);
///     // SAFETY: `p` was loaded through `guard` and stays valid until the guard is dropped.
///     assert_eq!(unsafe { *p }, 1);
/// }
///
/// // Writer: unlink, then retire.
/// let old = slot.swap(Box::into_raw(Box::new(2u64)), Ordering::AcqRel);
/// // SAFETY: `old` is unreachable for new readers, came from a Box, and is retired once.
/// unsafe { domain.retire::<u64, DropBox>(old) };
/// domain.synchronize();
/// assert_eq!(domain.pending(), 0);
/// # let last = slot.load(Ordering::Relaxed);
/// # // SAFETY: `last` was boxed, is unlinked by the test's end, and is retired once.
/// # unsafe { domain.retire::<u64, DropBox>(last) };
/// ```
///
/// # Safety
///
/// Data structures (such as `maple`'s tree) trust an implementation to keep the grace-period
/// promise, and read memory on the strength of it. An implementation must guarantee that:
///
/// - [`retire`](Domain::retire) never runs `R::reclaim(ptr)` while a guard of this domain
///   that was live at the time of the call is still live, and runs it at most once;
/// - guards returned by [`enter`](Domain::enter) satisfy the [`Guard`] contract.
///
/// Only [`Seize`](crate::Seize) and [`Epoch`](crate::Epoch) are provided; implement it
/// yourself only if you can prove both points.
pub unsafe trait Domain: Default + Send + Sync + fmt::Debug + 'static {
    /// A read-side section. `!Send`; ends when dropped. Guards may nest.
    type Guard<'d>: Guard
    where
        Self: 'd;

    /// `"seize"` or `"epoch"`, for benchmark tables.
    const NAME: &'static str;

    /// Enter a read-side section.
    fn enter(&self) -> Self::Guard<'_>;

    /// Defer `R::reclaim(ptr)` until every section that may have seen `ptr` has ended.
    ///
    /// May be called with or without a guard held; the object is never destroyed while any
    /// guard of this domain that was live at the time of this call is still live. Never
    /// waits for other threads. May run the destructors of objects retired earlier whose
    /// grace period is over; if one of them panics, the panic is re-raised from this call
    /// after the others have run (`ptr` itself is retired either way).
    ///
    /// # Safety
    ///
    /// - `ptr` is already unreachable for sections entered after this call;
    /// - `ptr` is retired once (on one domain);
    /// - `R::reclaim(ptr)` is sound once that grace period has passed, on any thread
    ///   (so the object must be `Send`-like in practice).
    unsafe fn retire<T, R: Reclaim<T>>(&self, ptr: *mut T);

    /// Best effort, non-blocking: push pending retirements toward reclamation, and run the
    /// destructors whose grace period is over (re-raising a destructor's panic, as
    /// [`retire`](Domain::retire) does).
    fn flush(&self);

    /// Block until every object retired on this domain before the call has been destroyed.
    ///
    /// Terminates as long as every guard of this domain that is live during the call is
    /// eventually dropped. Must not be called while the calling thread holds a guard of this
    /// domain: that guard would block it forever, so debug builds panic instead (release
    /// builds of the real backends cannot detect it and spin). The same holds for an
    /// [`Epoch`](crate::Epoch) domain called while the thread is pinned by any
    /// crossbeam-epoch guard, and for a call from inside a [`Reclaim`] destructor.
    /// Objects retired during the call (including by destructors it runs) are not waited
    /// for. Never returns before every object retired before the call, by any thread, has
    /// been destroyed, however the call races other threads' `retire`, `flush` or
    /// `synchronize`. A destructor that panics is re-raised from this call once the wait is
    /// over and every other destructor has run.
    fn synchronize(&self);

    /// Number of objects retired on this domain but not yet destroyed (tests, leak checks).
    fn pending(&self) -> usize;
}

/// A live read-side section of some [`Domain`].
///
/// Pointers loaded through a guard stay valid (not reclaimed) while the guard lives, provided
/// they were reachable when loaded.
///
/// # Safety
///
/// [`protect`](Guard::protect) and [`protect_word`](Guard::protect_word) must return the
/// value they loaded from `src` (with at least the requested ordering), and that value must
/// stay protected from reclamation by the guard's domain until the guard is dropped.
/// Readers dereference what these methods return.
pub unsafe trait Guard {
    /// Load a pointer that may be retired, protected for this guard's lifetime.
    ///
    /// `order` is what the caller needs (usually `Acquire`); the backend strengthens it as
    /// it requires (seize: `SeqCst`). A store ordering (`Release`) is weakened to the
    /// matching load ordering (`Relaxed`), `AcqRel` to `Acquire`.
    fn protect<T>(&self, src: &AtomicPtr<T>, order: Ordering) -> *mut T;

    /// Same as [`Guard::protect`] for a tagged word (pointer plus low tag bits) stored in an
    /// `AtomicUsize`.
    fn protect_word(&self, src: &AtomicUsize, order: Ordering) -> usize;

    /// Best-effort flush of pending retirements toward reclamation.
    fn flush(&self);

    /// Load a pointer through this guard and borrow its target for as long as the guard is
    /// borrowed: the reference cannot outlive the read-side section. `None` for null.
    ///
    /// ```
    /// use rcu::{Domain, DropBox, Guard, Seize};
    /// use rcu::sync::atomic::{AtomicPtr, Ordering};
    ///
    /// let domain = Seize::default();
    /// let slot = AtomicPtr::new(Box::into_raw(Box::new(7u32)));
    /// let guard = domain.enter();
    /// // SAFETY: `slot` only ever holds null or boxed u32s retired through `domain`.
    /// let seven: Option<&u32> = unsafe { guard.load(&slot, Ordering::Acquire) };
    /// assert_eq!(seven, Some(&7));
    /// drop(guard);
    /// # let last = slot.swap(std::ptr::null_mut(), Ordering::AcqRel);
    /// # // SAFETY: `last` was boxed, was just unlinked, and is retired once.
    /// # unsafe { domain.retire::<u32, DropBox>(last) };
    /// ```
    ///
    /// The borrow is tied to the guard, so keeping it past the section does not compile:
    ///
    /// ```compile_fail,E0505
    /// use rcu::{Domain, Guard, Seize};
    /// use rcu::sync::atomic::{AtomicPtr, Ordering};
    ///
    /// let domain = Seize::default();
    /// let slot = AtomicPtr::new(Box::into_raw(Box::new(7u32)));
    /// let guard = domain.enter();
    /// // SAFETY: `slot` only holds a boxed u32 (this example must fail to compile anyway).
    /// let r = unsafe { guard.load(&slot, Ordering::Acquire) };
    /// drop(guard);
    /// assert_eq!(r, Some(&7));
    /// ```
    ///
    /// # Safety
    ///
    /// Every non-null pointer that `src` holds while this guard lives points to a valid,
    /// initialised `T` that is destroyed only by retiring it on this guard's domain after it
    /// was unlinked, and nobody mutates the `T` except through shared-reference-safe means
    /// (atomics, locks).
    unsafe fn load<'g, T>(&'g self, src: &AtomicPtr<T>, order: Ordering) -> Option<&'g T> {
        let p = self.protect(src, order);
        // SAFETY: `protect` returned the loaded pointer (trait contract) and it stays
        // unreclaimed until this guard drops, which the `'g` borrow outlives no further; the
        // caller guarantees it is null or points to a valid `T` only shared-mutated.
        unsafe { p.as_ref() }
    }
}

/// Turn any ordering into one valid for a load, keeping its acquire half.
#[inline]
pub(crate) fn load_order(order: Ordering) -> Ordering {
    match order {
        Ordering::Release => Ordering::Relaxed,
        Ordering::AcqRel => Ordering::Acquire,
        other => other,
    }
}

/// Type-erased [`Reclaim::reclaim`] for `T`, `R`.
///
/// # Safety
///
/// Same as `R::reclaim(p.cast::<T>())`.
pub(crate) unsafe fn erased_reclaim<T, R: Reclaim<T>>(p: *mut ()) {
    // SAFETY: forwarded to the caller.
    unsafe { R::reclaim(p.cast::<T>()) }
}

/// A retired object with its erased destructor.
pub(crate) struct Retired {
    pub(crate) ptr: *mut (),
    pub(crate) reclaim: unsafe fn(*mut ()),
}

// SAFETY: a retired pointer is unreachable to everyone but the domain, and the
// `Domain::retire` contract makes running its destructor on any thread sound.
unsafe impl Send for Retired {}

impl Retired {
    /// Wrap `ptr` for `R`.
    pub(crate) fn new<T, R: Reclaim<T>>(ptr: *mut T) -> Self {
        Self {
            ptr: ptr.cast(),
            reclaim: erased_reclaim::<T, R>,
        }
    }

    /// Run the destructor.
    ///
    /// # Safety
    ///
    /// The grace period of `self.ptr` has passed, and this is the only call for it.
    pub(crate) unsafe fn run(self) {
        // SAFETY: forwarded to the caller; `reclaim` matches `ptr`'s type by construction.
        unsafe { (self.reclaim)(self.ptr) }
    }
}
