//! The maple tree: an RCU-safe B-tree of ranges over `0..=usize::MAX`, with gap search.
//!
//! A [`MapleTree`] maps every index to an entry or to nothing. Ranges are stored whole
//! (`store_range(10..20, x)` is one slot, not ten), readers never lock and never store to
//! shared memory, and allocation trees ([`MapleTree::new_alloc`]) find free gaps in
//! O(height). It is a user-space Rust rendering of the Linux kernel's maple tree, the
//! structure behind every process's VMA set.
//!
//! ```
//! use maple::{MapleTree, Value};
//!
//! let tree: MapleTree<Box<&str>> = MapleTree::new();
//! {
//!     let w = tree.lock(); // the one writer
//!     w.store_range(0x1000..0x5000, Box::new("text")).unwrap();
//!     w.store_range(0x8000..=0x8fff, Box::new("heap")).unwrap();
//!     w.punch(0x2000..0x3000).unwrap(); // leaves "text" on both sides
//! }
//! let r = tree.read(); // lock-free; can run on many threads at once
//! assert_eq!(r.load(0x1234).copied(), Some("text"));
//! assert_eq!(r.walk(0x2abc).0, 0x2000..=0x2fff); // the maximal empty range
//! assert_eq!(r.iter().count(), 3);
//! assert_eq!(r.find(0x5000..).map(|(k, _)| k), Some(0x8000..=0x8fff));
//! drop(r);
//!
//! let slots: MapleTree<Value> = MapleTree::new_alloc();
//! let w = slots.lock();
//! let at = w.alloc_range(16, Value::new(7).unwrap(), 100..=1000).unwrap();
//! assert_eq!(at, 100);
//! assert_eq!(w.empty_area_rev(..=1000, 8), Ok(993));
//! ```
//!
//! # Entries
//! A slot holds one machine word: an owned thin pointer ([`Box<T>`], [`Arc<T>`](std::sync::Arc))
//! or a small integer ([`Value`]). Readers get `&T` (or the `Value`) borrowed from their
//! guard. A store into the middle of a range leaves the same value on both sides, as in the
//! kernel; the tree counts such shared values and drops one only with its last range.
//!
//! # Guarantees
//! - **Consistency.** A point read ([`ReadGuard::load`], [`ReadGuard::walk`]) sees the tree
//!   as it was before or after each write, never a mix: every write is published with one
//!   atomic store. An exact overwrite of one whole range swaps its slot; an append inside
//!   a plain tree's last range of a leaf prepares the unused words past the leaf's end and
//!   publishes them with one pivot store; every other write builds new nodes privately
//!   and publishes them with one pointer store. A range widened on both sides at once is never seen widened on
//!   one side only; a range replaced by pieces covering the same indices never shows a
//!   hole.
//! - **Iteration.** [`ReadGuard::range`] and [`ReadGuard::iter`] take no snapshot: each
//!   step reads the tree as it is then, so they see writes that land ahead of them. Under
//!   any concurrent writes, items from the front strictly increase, items from the back
//!   strictly decrease, and no index is in two items; every index of the range that
//!   holds an entry for the whole iteration is yielded exactly once; every item's value
//!   was stored over the item's whole range at one moment during the iteration. An item
//!   is the whole stored range except where a concurrent write made it overlap what was
//!   already yielded: it is then clipped to the part not yet yielded (rule and example
//!   at [`ReadGuard::range`]). A loop of [`ReadGuard::find`] calls skips nothing either,
//!   but returns whole ranges that may overlap the previous result.
//! - **Progress.** Readers are lock-free: they never wait for the writer; a reader that
//!   reaches a node the writer has just replaced (marked dead) restarts from the root.
//!   Writers are serialised by a mutex ([`MapleTree::lock`]) and never wait for readers.
//! - **Memory.** Replaced nodes and overwritten values are retired through the tree's
//!   reclamation domain `D` ([`rcu::Seize`] by default, or [`rcu::Epoch`]) and destroyed
//!   once every read section that could see them has ended. Dropping the tree frees every
//!   node and value; retired ones are freed by the domain.
//! - **Errors, not panics.** Empty or inverted ranges, impossible gap requests and
//!   allocations on plain trees return errors that hand the value back.
//!
//! # Layout
//! Nodes are 256 bytes and 256-byte aligned: leaves and plain internal nodes have 16 slots
//! and 15 pivots; allocation-tree internal nodes have 10 slots, 9 pivots and 10 gaps (the
//! largest free run below each child). Minimum occupancy is 6 (4 for arange nodes), except
//! at the root and the right-most node of each level. [`MapleTree::validate`] checks every
//! invariant; [`MapleTree::dump`] and [`MapleTree::to_dot`] show the nodes.
//!
//! ```
//! # use maple::{MapleTree, Value};
//! # let tree: MapleTree<Value> = MapleTree::new_alloc();
//! // Render with `dot -Grankdir=LR -Tsvg tree.dot > tree.svg` (graphviz).
//! let dot: String = tree.to_dot();
//! # assert!(dot.starts_with("digraph maple"));
//! ```
//!
//! Here is an allocation tree holding ten ranges (`v0` to `v9`) with holes between
//! them: the root (`arange_64`) records for each child its index range and the largest
//! free run below it (`gap`); each leaf slot holds a range and its entry, or `-` for
//! empty. The tree is built in `tests/doc_picture.rs`, which checks that this picture is
//! what `to_dot` prints today.
//!
#![doc = include_str!("../docs/to_dot.svg")]
//!
//! Writes are classified before they run into a [`StoreKind`] (exact fit, slot store,
//! append, node store, split, rebalance, spanning store, new root, ...), one code path
//! each, as in the kernel. With the `stats` feature the tree counts which kinds ran
//! (`MapleTree::last_store_kind`, `MapleTree::store_kind_counts`; the crate's own tests
//! turn it on); without it writes pay nothing for statistics. The tree grows and shrinks
//! where the kernel's does: a write that leaves a node other than the root with at most 6
//! slots (4 in allocation trees' internal nodes) rebalances it with a neighbour.
//!
//! # Allocating address space
//! Beyond `empty_area` and `alloc_range`, an allocator gets exact aligned search
//! ([`ReadGuard::empty_area_aligned`], [`ReadGuard::empty_area_rev_aligned`]: the lowest /
//! highest start `s ≡ offset (mod align)` whose run is free, never missing a hole of exactly
//! the size), aligned allocation ([`WriteGuard::alloc_range_aligned`],
//! [`WriteGuard::alloc_rrange_aligned`]) and a `free` that removes a range only if it is
//! exactly the one stored ([`WriteGuard::remove_exact`]).
//!
//! # Gap search on plain trees
//! [`ReadGuard::empty_area`] and [`ReadGuard::empty_area_rev`] also work on plain trees, by a
//! scan of the window (no gap metadata); the `alloc_*` methods need an allocation tree.
//!
//! # Features
//! This release has no Cargo features: the crate needs `std`, and both reclamation
//! backends of [`rcu`] are always available (`MapleTree<E, rcu::Epoch>` or any other
//! [`rcu::Domain`]; `examples/custom_domain.rs` plugs in a domain of its own).

mod entry;
mod error;
mod raw;
mod tree;

// White-box tests use std atomics semantics outside any loom model.
#[cfg(all(test, not(loom)))]
mod tests;

pub use entry::{Entry, Value};
pub use error::{
    AllocError, AllocErrorKind, GapError, InsertError, InsertErrorKind, InvalidRange, StoreError,
    ValidateError,
};
pub use error::{AreaAllocError, AreaError, RemoveError};
pub use raw::StoreKind;
pub use tree::{IntoIter, Iter, MapleTree, ReadGuard, WriteGuard};

// The README's examples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
