//! The one reclamation domain behind every VMA tree and the VMA cache.
//!
//! A reader that walks a VMA tree and then reads the VMA it found needs two things
//! protected: the tree's nodes (retired by the tree's writer) and the VMA's memory (handed
//! back to the allocator by the cache's `shrink`). With a domain per tree and another for
//! the cache it would have to enter two read sections per lookup. Instead every
//! [`VmaTree`](crate::tree::VmaTree) and the VMA cache reclaim through [`VmDomain`], a
//! handle on one process-wide [`Seize`] collector (as the kernel has one RCU): a single
//! section of it protects both, so `lookup_speculative` and `lookup` enter one section per
//! call.
//!
//! The price is that grace periods are global: a reader of one address space delays the
//! reclamation of another's nodes (not their progress), and seize's limit of fewer than 64
//! threads inside sections at once (see [`Seize`]) applies to all address spaces together.

use std::sync::LazyLock;

use rcu::{Domain, Reclaim, Seize, SeizeGuard};

/// The process-wide collector.
static GLOBAL: LazyLock<Seize> = LazyLock::new(Seize::default);

/// A handle on the process-wide VMA reclamation domain (zero-sized; every handle is the same
/// domain).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct VmDomain;

// SAFETY: every method forwards to the one static `Seize`, which keeps the `Domain`
// contract; all handles name that same domain, so "a guard of this domain" means a guard of
// that collector whichever handle produced it, and the static is never dropped.
unsafe impl Domain for VmDomain {
    type Guard<'d> = SeizeGuard<'static>;

    const NAME: &'static str = "seize (process-wide)";

    #[inline]
    fn enter(&self) -> SeizeGuard<'static> {
        GLOBAL.enter()
    }

    unsafe fn retire<T, R: Reclaim<T>>(&self, ptr: *mut T) {
        // SAFETY: forwarded unchanged from our caller's contract.
        unsafe { GLOBAL.retire::<T, R>(ptr) }
    }

    fn flush(&self) {
        GLOBAL.flush()
    }

    fn synchronize(&self) {
        GLOBAL.synchronize()
    }

    fn pending(&self) -> usize {
        GLOBAL.pending()
    }
}
