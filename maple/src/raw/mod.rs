//! The raw engine: node layout, reader walks, the write paths, gap search, validation,
//! dumps and bulk construction. Everything here works on words; `tree.rs` wraps it in the
//! typed, safe API.

pub(crate) mod build;
pub(crate) mod dump;
pub(crate) mod gap;
pub(crate) mod node;
pub(crate) mod pool;
pub(crate) mod stack;
pub(crate) mod validate;
pub(crate) mod walk;
pub(crate) mod write;

use rcu::sync::atomic::{AtomicUsize, Ordering};

pub use write::StoreKind;

/// The shared state of one tree: the root word and the writer-maintained counters.
///
/// # Invariants
/// `root` is 0 (empty tree) or an encoded pointer to a live root node whose parent word is
/// 0. Only the writer (holding the tree's lock, or `&mut`) stores to any of these fields or
/// to any node reachable from `root`.
pub(crate) struct RawTree {
    /// Encoded root node pointer, 0 when the tree is empty.
    pub(crate) root: AtomicUsize,
    /// Number of non-empty ranges.
    pub(crate) len: AtomicUsize,
    /// Levels (0 empty, 1 a single leaf).
    pub(crate) height: AtomicUsize,
    /// Allocation tree: internal nodes are arange_64 with gaps.
    pub(crate) alloc: bool,
    /// 1 + the last [`StoreKind`] run, 0 before any write.
    pub(crate) last_kind: AtomicUsize,
    /// How many times each [`StoreKind`] ran.
    pub(crate) kind_counts: [AtomicUsize; StoreKind::COUNT],
}

impl RawTree {
    pub(crate) fn new(alloc: bool) -> RawTree {
        RawTree {
            root: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            height: AtomicUsize::new(0),
            alloc,
            last_kind: AtomicUsize::new(0),
            kind_counts: core::array::from_fn(|_| AtomicUsize::new(0)),
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

    /// Record that `kind` ran.
    pub(crate) fn note_kind(&self, kind: StoreKind) {
        // Relaxed: statistics for tests, read after the write returned on the same thread
        // or under the lock.
        self.last_kind.store(kind as usize + 1, Ordering::Relaxed);
        // Relaxed: as above.
        self.kind_counts[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The last store kind run, if any.
    pub(crate) fn last_kind(&self) -> Option<StoreKind> {
        // Relaxed: see `note_kind`.
        let k = self.last_kind.load(Ordering::Relaxed);
        StoreKind::ALL.get(k.wrapping_sub(1)).copied()
    }
}
