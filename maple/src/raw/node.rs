//! Node layout: 256-byte, 256-aligned nodes whose every reader-visible word is an atomic.
//!
//! ```text
//!  word  0        1 ..= 15          16 ..= 31            (leaf_64 / range_64)
//!       +--------+-----------------+--------------------+
//!       | parent | pivot[0..15]    | slot[0..16]        |
//!       +--------+-----------------+--------------------+
//!
//!  word  0        1 ..= 9       10 ..= 19     20 ..= 29    30, 31   (arange_64)
//!       +--------+-------------+-------------+-----------+--------+
//!       | parent | pivot[0..9] | slot[0..10] | gap[0..10]| unused |
//!       +--------+-------------+-------------+-----------+--------+
//! ```
//!
//! Slot `i` covers `[pivot[i-1] + 1, pivot[i]]`; slot 0 starts at the node's minimum and the
//! last used slot ends at the node's maximum (both known only from the parent). Pivots past
//! the last used slot hold the node's maximum, so "the first pivot `>= index`" is the slot
//! of `index` without a separate length field, and the last used slot is the first one whose
//! pivot equals the maximum (or the final slot when every pivot is below it).
//!
//! A node pointer ([`NodePtr`]) is the node's address with its [`NodeType`] in the low bits,
//! which are free because nodes are 256-byte aligned. The parent word holds the parent's
//! encoded pointer, 0 at the root, and the node's own address once the node is dead
//! (unlinked and waiting for its grace period).

use rcu::sync::atomic::{AtomicUsize, Ordering};

/// Number of words after the parent word.
pub(crate) const BODY_WORDS: usize = 31;
/// The largest slot count of any node type.
pub(crate) const MAX_SLOTS: usize = 16;
/// Deepest tree the engine supports: non-right-most internal nodes have at least 4
/// children and leaves at least 6 slots, and 6 * 4^31 > 2^64 indices: at most 32 levels.
pub(crate) const MAX_HEIGHT: usize = 32;

/// The three node formats of the design.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeType {
    /// `leaf_64`: 16 slots holding entry words (0 = empty), 15 pivots.
    Leaf = 0,
    /// `range_64`: internal node of a plain tree, 16 child pointers, 15 pivots.
    Range = 1,
    /// `arange_64`: internal node of an allocation tree, 10 children, 9 pivots, 10 gaps.
    ARange = 2,
}

impl NodeType {
    /// Slot count.
    #[inline(always)]
    pub(crate) const fn slots(self) -> usize {
        match self {
            NodeType::Leaf | NodeType::Range => 16,
            NodeType::ARange => 10,
        }
    }

    /// Pivot count (one less than the slot count: the last slot ends at the node maximum).
    #[inline(always)]
    pub(crate) const fn pivots(self) -> usize {
        self.slots() - 1
    }

    /// Minimum number of used slots of a node that is neither the root nor right-most.
    #[inline(always)]
    pub(crate) const fn min_occupancy(self) -> usize {
        match self {
            NodeType::Leaf | NodeType::Range => 6,
            NodeType::ARange => 4,
        }
    }

    /// Index into [`Node::body`] of slot 0.
    #[inline(always)]
    pub(crate) const fn slot_base(self) -> usize {
        self.pivots()
    }

    /// Index into [`Node::body`] of gap 0 (arange only).
    #[inline(always)]
    pub(crate) const fn gap_base(self) -> usize {
        self.pivots() + self.slots()
    }

    /// Whether this is a leaf.
    #[inline(always)]
    pub(crate) const fn is_leaf(self) -> bool {
        matches!(self, NodeType::Leaf)
    }

    /// Short name used by dumps.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            NodeType::Leaf => "leaf_64",
            NodeType::Range => "range_64",
            NodeType::ARange => "arange_64",
        }
    }
}

/// One tree node. See the module docs for the word layout.
///
/// # Invariants
/// While a node is reachable from the root, its pivots never change (in RCU mode) and
/// its slots change only by single-word stores that keep every reader correct; all writes
/// come from the one writer.
#[repr(C, align(256))] // 256-byte alignment frees the low 8 bits of a node address for tags
pub(crate) struct Node {
    /// Parent's encoded pointer, 0 at the root, the node's own address once dead.
    pub(crate) parent: AtomicUsize,
    /// Pivots, slots and gaps; see the layout picture.
    pub(crate) body: [AtomicUsize; BODY_WORDS],
}

#[cfg(not(loom))]
const _: () = {
    assert!(core::mem::size_of::<Node>() == 256);
    assert!(core::mem::align_of::<Node>() == 256);
    // leaf/range: 15 pivots + 16 slots fill the body exactly.
    assert!(NodeType::Leaf.pivots() + NodeType::Leaf.slots() == BODY_WORDS);
    // arange: 9 pivots + 10 slots + 10 gaps fit.
    assert!(NodeType::ARange.gap_base() + NodeType::ARange.slots() <= BODY_WORDS);
};

impl Node {
    /// A node with the given parent and body words.
    fn with_words(parent: usize, words: &[usize; BODY_WORDS]) -> Node {
        Node {
            parent: AtomicUsize::new(parent),
            body: core::array::from_fn(|i| AtomicUsize::new(words[i])),
        }
    }

    /// Pivot `i`.
    #[inline(always)]
    pub(crate) fn pivot(&self, _ty: NodeType, i: usize) -> &AtomicUsize {
        &self.body[i]
    }

    /// Slot `i`.
    #[inline(always)]
    pub(crate) fn slot(&self, ty: NodeType, i: usize) -> &AtomicUsize {
        &self.body[ty.slot_base() + i]
    }

    /// Gap `i` (arange only).
    #[inline(always)]
    pub(crate) fn gap(&self, ty: NodeType, i: usize) -> &AtomicUsize {
        debug_assert!(ty == NodeType::ARange);
        &self.body[ty.gap_base() + i]
    }
}

/// An encoded node pointer: address | type.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub(crate) struct NodePtr(pub(crate) usize);

const TYPE_MASK: usize = 0xff;

impl NodePtr {
    /// Allocate a node of type `ty` with the given parent and body words (constructing
    /// the atomics with their values: no stores, which also keeps loom models small).
    pub(crate) fn alloc_with(ty: NodeType, parent: usize, words: &[usize; BODY_WORDS]) -> NodePtr {
        let addr = Box::into_raw(Box::new(Node::with_words(parent, words))) as usize;
        debug_assert_eq!(addr & TYPE_MASK, 0);
        NodePtr(addr | ty as usize)
    }

    /// The node's type.
    #[inline(always)]
    pub(crate) fn ty(self) -> NodeType {
        match self.0 & TYPE_MASK {
            0 => NodeType::Leaf,
            1 => NodeType::Range,
            _ => NodeType::ARange,
        }
    }

    /// Whether the node is a leaf (from the tag bits alone).
    #[inline(always)]
    pub(crate) fn is_leaf(self) -> bool {
        self.0 & TYPE_MASK == NodeType::Leaf as usize
    }

    /// The node's pivot count (from the tag bits alone; slots follow the pivots).
    #[inline(always)]
    pub(crate) fn pivot_count(self) -> usize {
        if self.0 & TYPE_MASK == NodeType::ARange as usize {
            NodeType::ARange.pivots()
        } else {
            NodeType::Leaf.pivots()
        }
    }

    /// The node's address.
    #[inline(always)]
    pub(crate) fn addr(self) -> usize {
        self.0 & !TYPE_MASK
    }

    /// Borrow the node.
    ///
    /// # Safety
    /// The node must not have been freed, and must stay allocated for `'a` (the caller is
    /// the writer that owns it, or a reader inside a section that reached it).
    #[inline(always)]
    pub(crate) unsafe fn node<'a>(self) -> &'a Node {
        // SAFETY: the caller guarantees the allocation is live for 'a; the address came
        // from `Box<Node>` so it is aligned and points to an initialised Node.
        unsafe { &*(self.addr() as *const Node) }
    }

    /// Free the node immediately.
    ///
    /// # Safety
    /// No reader or writer may use the node afterwards, and it must not be freed twice.
    pub(crate) unsafe fn free(self) {
        // SAFETY: the address came from Box::into_raw in `alloc` and the caller guarantees
        // it is freed once and never used again.
        drop(unsafe { Box::from_raw(self.addr() as *mut Node) });
    }

    /// Whether the node has been marked dead (reader-side check).
    ///
    /// # Safety
    /// As for [`NodePtr::node`].
    #[inline(always)]
    pub(crate) unsafe fn is_dead(self) -> bool {
        // SAFETY: forwarded from the caller.
        let n = unsafe { self.node() };
        // Acquire: pairs with `mark_dead`'s Release, which the writer issues after it
        // published the replacement (new root or parent slot). A reader that sees the mark
        // and restarts is thus guaranteed to see the replacement, so it cannot meet this
        // dead node again (the progress argument). It does NOT order the reader's earlier
        // slot load before this check (an Acquire load only orders later accesses): that
        // load stays safe because the node's memory lives for the whole read section.
        n.parent.load(Ordering::Acquire) == self.addr()
    }

    /// Mark the node dead so readers that reach it restart.
    ///
    /// # Safety
    /// The node must already be unreachable from the root for new readers.
    pub(crate) unsafe fn mark_dead(self) {
        // SAFETY: forwarded from the caller (the node is still allocated).
        let n = unsafe { self.node() };
        // Release: pairs with the reader's Acquire in `is_dead`; published after the
        // replacement so a reader that sees the mark finds the new tree on restart.
        n.parent.store(self.addr(), Ordering::Release);
    }
}

/// One (pivot, slot, gap) triple of a decoded node or a big node.
///
/// `piv` is the last index the slot covers; `slot` is an entry word (leaves, 0 = empty) or
/// an encoded child pointer; `gap` is the child's largest free run (arange parents only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Item {
    pub(crate) piv: usize,
    pub(crate) slot: usize,
    pub(crate) gap: usize,
}

/// A writer-side copy of a node's used slots.
#[derive(Clone, Copy)]
pub(crate) struct Decoded {
    pub(crate) len: usize,
    pub(crate) items: [Item; MAX_SLOTS],
}

impl Decoded {
    /// The used items.
    #[inline]
    pub(crate) fn items(&self) -> &[Item] {
        &self.items[..self.len]
    }
}

/// Number of used slots of `node` whose maximum is `max` (Relaxed loads: writer side or a
/// reader that only needs a hint).
///
/// # Safety
/// `node` must be live.
#[inline]
pub(crate) unsafe fn node_end(node: NodePtr, max: usize) -> usize {
    let ty = node.ty();
    // SAFETY: forwarded.
    let n = unsafe { node.node() };
    for i in 0..ty.pivots() {
        // Relaxed: pivots of a reachable node are immutable once published.
        if n.pivot(ty, i).load(Ordering::Relaxed) >= max {
            return i + 1;
        }
    }
    ty.slots()
}

/// Decode `node` (maximum `max`) into items. Writer side: Relaxed loads (the writer is the
/// only thread that stores to nodes).
///
/// # Safety
/// `node` must be live.
pub(crate) unsafe fn decode(node: NodePtr, max: usize) -> Decoded {
    let ty = node.ty();
    // SAFETY: forwarded.
    let n = unsafe { node.node() };
    let mut d = Decoded {
        len: 0,
        items: [Item::default(); MAX_SLOTS],
    };
    for i in 0..ty.slots() {
        let piv = if i < ty.pivots() {
            // Relaxed: see above.
            n.pivot(ty, i).load(Ordering::Relaxed)
        } else {
            max
        };
        let piv = piv.min(max);
        // Relaxed: only the writer stores slots and gaps.
        let slot = n.slot(ty, i).load(Ordering::Relaxed);
        let gap = if ty == NodeType::ARange {
            // Relaxed: as above.
            n.gap(ty, i).load(Ordering::Relaxed)
        } else {
            0
        };
        d.items[i] = Item { piv, slot, gap };
        d.len = i + 1;
        if piv == max {
            break;
        }
    }
    d
}

/// Allocate and fill a node of type `ty` from `items` (the last item's pivot is the node's
/// maximum). Children of an internal node get their parent word pointed at the new node.
///
/// # Safety
/// Child pointers in `items` (internal types) must be live nodes owned by the writer.
pub(crate) unsafe fn build_node(ty: NodeType, items: &[Item]) -> NodePtr {
    // SAFETY: forwarded; an empty stash holds no addresses.
    unsafe { build_node_in(&mut Vec::new(), ty, items) }
}

/// [`build_node`], taking the node's memory from `stash` (recycled nodes) when it has any.
///
/// # Safety
/// As for [`build_node`], and every address in `stash` is an unreferenced node allocation
/// (`Box<Node>` layout) owned by the caller.
pub(crate) unsafe fn build_node_in(
    stash: &mut Vec<usize>,
    ty: NodeType,
    items: &[Item],
) -> NodePtr {
    let len = items.len();
    debug_assert!(len > 0 && len <= ty.slots());
    let max = items[len - 1].piv;
    #[cfg(not(loom))]
    let p = {
        let raw = super::pool::raw_node(stash);
        debug_assert_eq!(raw as usize & TYPE_MASK, 0);
        let w = raw.cast::<usize>();
        // SAFETY: `raw` is an exclusively owned allocation of `Node`'s size; `AtomicUsize`
        // has the same in-memory representation as `usize`, so writing all 32 words
        // initialises the node. The node is private until it is published with a Release
        // store of its pointer, which orders this initialisation before any reader sees it.
        unsafe {
            w.write(0);
            let body = w.add(1);
            let np = ty.pivots();
            for (i, it) in items[..len.min(np)].iter().enumerate() {
                body.add(i).write(it.piv);
            }
            for i in len.min(np)..np {
                body.add(i).write(max);
            }
            let sb = body.add(ty.slot_base());
            for (i, it) in items.iter().enumerate() {
                sb.add(i).write(it.slot);
            }
            for i in len..ty.slots() {
                sb.add(i).write(0);
            }
            if ty == NodeType::ARange {
                let gb = body.add(ty.gap_base());
                for (i, it) in items.iter().enumerate() {
                    gb.add(i).write(it.gap);
                }
                for i in len..ty.slots() {
                    gb.add(i).write(0);
                }
                for i in ty.gap_base() + ty.slots()..BODY_WORDS {
                    body.add(i).write(0);
                }
            }
        }
        NodePtr(raw as usize | ty as usize)
    };
    #[cfg(loom)]
    let p = {
        // Loom atomics are not plain words: initialise the (recycled or fresh) memory with
        // a whole `Node` built through the atomics' constructors.
        let mut words = [0usize; BODY_WORDS];
        for (i, w) in words.iter_mut().enumerate().take(ty.pivots()) {
            *w = if i < len { items[i].piv } else { max };
        }
        for (i, it) in items.iter().enumerate() {
            words[ty.slot_base() + i] = it.slot;
            if ty == NodeType::ARange {
                words[ty.gap_base() + i] = it.gap;
            }
        }
        let raw = super::pool::raw_node(stash);
        debug_assert_eq!(raw as usize & TYPE_MASK, 0);
        // SAFETY: `raw` is an exclusively owned allocation with `Node`'s layout; writing a
        // whole `Node` initialises it (what it held before is plain memory: recycled nodes
        // are never dropped in place). Published later with a Release store.
        unsafe { raw.write(Node::with_words(0, &words)) };
        NodePtr(raw as usize | ty as usize)
    };
    if !ty.is_leaf() {
        for it in items {
            // SAFETY: the caller guarantees children are live writer-owned nodes.
            let c = unsafe { NodePtr(it.slot).node() };
            // Relaxed: readers only compare the parent word with the node's own address;
            // any non-self value reads as "live".
            c.parent.store(p.0, Ordering::Relaxed);
        }
    }
    p
}

/// Largest free run in a leaf's items, given the leaf's minimum. A run covering the whole
/// index space saturates at `usize::MAX`.
pub(crate) fn leaf_gap(items: &[Item], min: usize) -> usize {
    let mut start = min;
    let mut best = 0;
    for it in items {
        if it.slot == 0 {
            best = best.max((it.piv - start).saturating_add(1));
        }
        start = it.piv.wrapping_add(1);
    }
    best
}

/// Largest gap among an arange node's items.
pub(crate) fn internal_gap(items: &[Item]) -> usize {
    items.iter().map(|it| it.gap).max().unwrap_or(0)
}
