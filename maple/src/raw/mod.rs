//! The raw engine. Everything here works on words; `tree.rs` wraps it in the typed, safe
//! API.
//!
//! - [`node`]: the node layout, node pointers, the one decoder ([`node::Node::items`]) and
//!   encoder ([`node::NodeImage`]);
//! - [`pool`]: node memory (the writer's stash, the tree's shared pool, retire batches);
//! - [`walk`]: the one descent ([`walk::descend`]) and the readers built on it;
//! - [`write`]: the write paths: classify a store, then one function per kind;
//! - [`session`]: the writer's state between and around writes (garbage, the dead batch,
//!   spare nodes, counts of values shared by several ranges);
//! - [`gap`]: gap search; [`build`]: bulk construction, duplication, teardown;
//!   [`validate`], [`dump`].

pub(crate) mod build;
pub(crate) mod dump;
pub(crate) mod gap;
pub(crate) mod node;
pub(crate) mod pool;
pub(crate) mod session;
pub(crate) mod stack;
pub(crate) mod validate;
pub(crate) mod walk;
pub(crate) mod write;

use crossbeam_utils::CachePadded;
use rcu::sync::atomic::AtomicUsize;

pub use write::StoreKind;

/// The shared state of one tree: the root word and the writer-maintained counters.
///
/// `root`, which every reader loads, has a cache line of its own: the counters next to it
/// change with every write, and sharing its line would make every write cost every
/// reader a cache miss.
///
/// # Invariants
/// `root` is 0 (empty tree) or an encoded pointer to a live root node whose parent word is
/// 0. Only the writer (holding the tree's lock, or `&mut`) stores to any of these fields or
/// to any node reachable from `root`.
#[repr(C)] // `root` first, alone in its (padded) line
pub(crate) struct RawTree {
    /// Encoded root node pointer, 0 when the tree is empty.
    pub(crate) root: CachePadded<AtomicUsize>,
    /// Number of non-empty ranges.
    pub(crate) len: AtomicUsize,
    /// Levels (0 empty, 1 a single leaf).
    pub(crate) height: AtomicUsize,
    /// Allocation tree: internal nodes are arange_64 with gaps.
    pub(crate) alloc: bool,
    /// Recycled node memory: replaced nodes come back here after their grace period.
    pub(crate) pool: rcu::sync::Arc<pool::NodePool>,
    /// Which store kinds ran (tests and the `stats` feature only).
    #[cfg(any(test, feature = "stats"))]
    pub(crate) kinds: write::KindStats,
}

impl RawTree {
    pub(crate) fn new(alloc: bool) -> RawTree {
        RawTree {
            root: CachePadded::new(AtomicUsize::new(0)),
            len: AtomicUsize::new(0),
            height: AtomicUsize::new(0),
            alloc,
            pool: Default::default(),
            #[cfg(any(test, feature = "stats"))]
            kinds: Default::default(),
        }
    }

    /// The type of internal nodes of this tree.
    #[inline]
    pub(crate) fn internal_type(&self) -> node::NodeType {
        if self.alloc {
            node::NodeType::ARange
        } else {
            node::NodeType::Range
        }
    }
}
