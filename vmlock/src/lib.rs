//! A user-space address space in the shape of Linux's `mm_struct`: VMAs in an alloc maple
//! tree, an `mmap_lock`, per-VMA read locks taken under RCU, and store-free speculation.
//!
//! ```
//! use vmlock::{Access, Backing, FaultPath, MapFlags, MapRequest, Mm, MmConfig, Prot, Speculation};
//!
//! let mm = Mm::new(MmConfig::default());
//! let req = MapRequest { addr: None, len: 8 * 4096, prot: Prot::READ | Prot::WRITE,
//!                        flags: MapFlags::PRIVATE, backing: Backing::Anonymous };
//! let a = mm.mmap(&req).unwrap();
//! mm.mprotect(a, 4096, Prot::READ).unwrap();          // splits the VMA
//! assert_eq!(mm.vmas().len(), 2);
//! assert_eq!(mm.fault(a + 4096, Access::Write), Ok(FaultPath::VmaLock));
//! assert!(matches!(mm.lookup_speculative(a), Speculation::Found(v) if v.prot == Prot::READ));
//! let child = mm.fork();
//! assert_eq!(child.vmas(), mm.vmas());
//! ```
//!
//! # Read paths and their guarantees
//!
//! - [`Mm::lock_vma_under_rcu`]: walk the tree under RCU, take the VMA's reference count
//!   (its read lock) unless it is detached, excluded or write-locked, re-validate owner,
//!   lock and range (VMAs are type-stable and may have been reused). While the returned
//!   guard lives, no writer changes or removes that VMA; writers of other VMAs proceed.
//!   `None` means "fall back to [`Mm::mmap_read_lock`]".
//! - [`Mm::lookup_speculative`]: copy the VMA under RCU and validate with `mm_lock_seq`;
//!   no atomic read-modify-write, no lock and no store to memory another thread reads
//!   (one read section: the tree and the VMA cache share one reclamation domain). `Retry`
//!   whenever a writer was active or finished meanwhile. [`Mm::lookup`] adds its fallback
//!   and counts outcomes in per-thread counters, so it stays store-free too.
//! - [`Mm::vmas_rcu`]: the address-space listing without the `mmap_lock` (as Linux reads
//!   `/proc/pid/maps` since 6.17): one VMA per step, each step exact by speculation or
//!   confirmed under the VMA's read lock with a point walk; sorted, no overlap, no hole where
//!   memory stays mapped, only complete VMAs. [`Mm::vmas`] is the listing under the lock.
//! - [`Mm::mmap_read_lock`]: the classic path; excludes every writer.
//!
//! A reader never sees a VMA that does not contain its address, a freed VMA, another
//! address space's VMA, or a state that was not the complete result of some operation
//! (`tests/stress.rs`, `tests/listing.rs`, `tests/loom.rs`).
//!
//! # Semantics
//!
//! `mmap`, `munmap`, `mprotect`, `mremap` (including `old_len == 0` on shared mappings) and
//! `madvise(MADV_DONTFORK / MADV_DOFORK)` return what Linux returns, also for bad
//! arguments (unaligned, zero, wrapping, beyond `TASK_SIZE`, at `usize::MAX`), and leave the
//! layout Linux leaves, including merges of adjacent compatible VMAs and the flags that
//! decide them ([`Mm::smaps`]); [`Mm::fork`] leaves out `MADV_DONTFORK` ranges like the
//! kernel's `fork`. Placement without `MAP_FIXED` is top-down below
//! [`MmConfig::mmap_base`], falling back to bottom-up when nothing fits there, as the
//! kernel does. [`Mm::fault`] checks permissions as x86-64 does. `tests/kernel_diff.rs` and
//! `tests/kernel_fault.rs` check all of this against the kernel of the machine they run
//! on. See [`model`] for the reference implementation and the documented modelling
//! choices.
//!
//! # Progress and memory
//!
//! Writers are serialised by the `mmap_lock` and wait only for readers of the VMAs they
//! change (per-VMA read locks are short); listings with [`Mm::vmas_rcu`] do not hold them
//! up. VMAs live in a process-wide type-stable cache: freed VMAs are reused at once and
//! their memory is returned only after a grace period, by [`shrink_vma_cache`].
//!
//! # Features
//!
//! - `vma-align-128` (off by default): align each VMA's cache lines to 128 bytes (an
//!   adjacent-line prefetch pair) instead of 64, so that readers of a VMA's first line and
//!   writers of its reference count never share a pair. `BENCHMARKS.md` found no
//!   measurable difference on a 2-vCPU VM.

mod domain;
mod layout;
mod mm;
pub mod model;
mod refcount;
mod stats;
mod tree;
mod types;
mod vma;

pub(crate) use rcu::sync;

pub use mm::{shrink_vma_cache, Mm, MmapReadGuard, VmaReadGuard};
pub use types::{
    Access, Advice, Backing, Errno, FaultPath, FileId, LockStats, MapFlags, MapRequest, MmConfig,
    Prot, RemapFlags, Speculation, VmFlags, VmaInfo, PAGE_SHIFT, PAGE_SIZE,
};

/// The raw per-VMA machinery, for loom models, benchmarks and the curious.
pub mod raw {
    pub use crate::refcount::{RefState, Refused, VmRefcnt, EXCLUDE, REF_LIMIT};
    pub use crate::vma::Vma;
}

// The README's examples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
