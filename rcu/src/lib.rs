//! Read-side sections, deferred reclamation, [`SeqCount`] and a type-stable object cache:
//! the RCU toolbox the `maple` tree and `vmlock` are built on.
//!
//! # What is in here
//!
//! - [`Domain`]: a reclamation domain. Readers [`enter`](Domain::enter) a section (a
//!   [`Guard`]), load shared pointers with [`Guard::protect`], and leave by dropping the
//!   guard. Writers unlink an object and [`retire`](Domain::retire) it with a destructor
//!   strategy ([`Reclaim`], e.g. [`DropBox`]); the destructor runs once every section that
//!   might have seen the object has ended. [`synchronize`](Domain::synchronize) waits for
//!   that, [`pending`](Domain::pending) counts what is still waiting.
//! - Two backends, always compiled and usable side by side: [`Seize`] (default, over the
//!   `seize` crate, one collector per domain) and [`Epoch`] (over `crossbeam-epoch`'s global
//!   collector, with per-domain accounting).
//! - [`SeqCount`]: a sequence counter for readers that must not store to shared memory.
//! - [`TypeStableCache`]: the kernel's `SLAB_TYPESAFE_BY_RCU` — freed objects are reused at
//!   once, memory returns to the allocator only after a grace period.
//! - [`sync`]: the one module that picks `std` or `loom` primitives.
//!
//! # Example
//!
//! ```
//! use rcu::sync::atomic::{AtomicPtr, Ordering};
//! use rcu::{Domain, DropBox, Guard, Seize};
//!
//! struct Config {
//!     limit: u32,
//! }
//!
//! let domain = Seize::default();
//! let current = AtomicPtr::new(Box::into_raw(Box::new(Config { limit: 1 })));
//!
//! // A reader: the pointer is valid while `guard` lives.
//! let guard = domain.enter();
//! let cfg = guard.protect(&current, Ordering::Acquire);
//! // SAFETY: loaded through `guard`, which is still alive.
//! assert_eq!(unsafe { (*cfg).limit }, 1);
//!
//! // A writer publishes a new value and retires the old one. The old one is not destroyed
//! // while `guard` (which may still read it) lives.
//! let old = current.swap(Box::into_raw(Box::new(Config { limit: 2 })), Ordering::AcqRel);
//! // SAFETY: `old` is unreachable for new readers, came from a `Box`, and is retired once.
//! unsafe { domain.retire::<Config, DropBox>(old) };
//! assert_eq!(unsafe { (*cfg).limit }, 1); // still valid: the guard is alive
//! drop(guard);
//!
//! domain.synchronize(); // wait until `old` has been destroyed
//! assert_eq!(domain.pending(), 0);
//! # let last = current.load(Ordering::Relaxed);
//! # // SAFETY: `last` was boxed, is unlinked by the example's end, and is retired once.
//! # unsafe { domain.retire::<Config, DropBox>(last) };
//! ```
//!
//! # Guarantees
//!
//! Safety:
//!
//! - **Memory**: an object retired on a domain is destroyed at most once, and never while a
//!   guard of that domain that was alive when it was retired is still alive. Dropping a
//!   domain destroys everything still retired on it before `drop` returns (guards borrow
//!   the domain, so none can be used then), except what the liveness rules below say is
//!   leaked.
//!
//! Liveness (each point is a regression test that fails instead of hanging, in
//! `tests/liveness.rs`, `tests/many_threads.rs`, `tests/epoch_forgotten.rs`):
//!
//! - **What blocks**: only [`synchronize`](Domain::synchronize). It returns once every
//!   object retired before the call (by any thread) has been destroyed, which happens once
//!   every guard of the domain that was alive at the call has been dropped: it never
//!   returns early, and terminates whatever the number of threads inside guards. It blocks
//!   forever if such a guard is never dropped (`mem::forget`), if it is called while the
//!   calling thread holds a guard of the same domain (debug builds panic instead), or, for
//!   [`Epoch`], while the calling thread is pinned by any crossbeam-epoch guard (debug
//!   builds panic instead); an `Epoch` domain also waits for pins of other crossbeam users
//!   (see [`Epoch`]). Readers never block or wait: entering, protecting and leaving are a
//!   few atomic operations. `retire`, `flush` and dropping a domain never wait for a grace
//!   period or for another thread's guard (at most for a few-instruction spin lock).
//! - **Any number of threads**: grace periods complete whatever the number of threads
//!   inside guards (for [`Seize`], handing a block over costs more beyond about 60 threads
//!   inside guards at once; see its docs).
//! - **Who runs destructors**: the thread calling [`retire`](Domain::retire),
//!   [`flush`](Domain::flush), [`synchronize`](Domain::synchronize) or dropping the domain,
//!   for objects whose grace period is over. Never a reader leaving its guard, never code
//!   inside seize or crossbeam.
//! - **What panics**: a destructor that panics does not stop the others. The rest of its
//!   block and every other block that call was running are destroyed and accounted, then
//!   the first panic is re-raised from that call (and dropped if the thread is already
//!   unwinding, where re-raising would abort). The domain keeps reclaiming normally.
//!   Debug builds panic on the misuses of `synchronize` listed above.
//! - **What leaks**: nothing, unless a guard is forgotten. A forgotten guard is a reader
//!   that never leaves: nothing retired while it is live is destroyed while the domain
//!   lives. Dropping the domain still returns at once: [`Epoch`] destroys everything;
//!   [`Seize`] destroys what it still holds and leaks the blocks it had already handed to
//!   seize while the guard was live (bounded by what was retired meanwhile).
//! - **Guards** are `!Send` and tied to the domain's lifetime; pointers loaded through a
//!   guard must not be used after it is dropped (the data structures built on this crate
//!   tie the returned references to the guard's lifetime).
//! - **Loom**: under `--cfg loom` the same API is backed by a small model-checkable domain
//!   (see `loom_domain.rs`) because seize's and crossbeam's thread-locals cannot see loom's
//!   threads; the crate's own models live in `tests/loom.rs`.
//!
//! # Features
//!
//! This release has no Cargo features: the crate needs `std`, and both backends are always
//! compiled. `--cfg loom` (a compiler flag, not a feature) swaps in the model-checkable
//! domain described above. A kernel or runtime with its own RCU implements [`Domain`] and
//! [`Guard`] for it; `maple-tree`'s `examples/custom_domain.rs` shows one.

pub mod sync;

mod domain;
mod held;

#[cfg(not(loom))]
mod epoch;
mod retire;
#[cfg(not(loom))]
mod seize;

#[cfg(loom)]
mod loom_domain;

pub use domain::{Domain, DropBox, Guard, Reclaim};

#[cfg(not(loom))]
pub use crate::epoch::{Epoch, EpochGuard};
#[cfg(not(loom))]
pub use crate::seize::{Seize, SeizeGuard};

#[cfg(loom)]
pub use loom_domain::{Epoch, EpochGuard, Seize, SeizeGuard};

mod cache;
mod seqcount;

pub use cache::{CacheStats, TypeStableCache};
pub use seqcount::SeqCount;

// The README's examples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
