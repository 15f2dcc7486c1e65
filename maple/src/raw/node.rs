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
//!
//! This module reads and writes node words; it allocates nothing. New nodes are assembled
//! in a [`NodeImage`] and written into memory the caller supplies (the writer takes it from
//! its [`Stash`](super::pool::Stash)).
//!
//! # Provenance
//! Node pointers travel as words (in slots, in the root, in the parent word), so a node's
//! address is *exposed* once, when its memory is first written ([`NodeImage::write`]), and
//! recovered with [`core::ptr::with_exposed_provenance`] in the one place nodes are
//! dereferenced ([`NodePtr::node`]). Node memory comes from the global allocator and is
//! only ever returned to it (never reused as another type), so the exposed provenance of an
//! address is always that of the live allocation behind it.

use rcu::sync::atomic::{AtomicUsize, Ordering};

use super::stack::StackVec;

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

    /// The structural minimum [`MapleTree::validate`](crate::MapleTree::validate) checks:
    /// a node that is neither the root nor right-most holds at least this many slots.
    #[inline(always)]
    pub(crate) const fn min_occupancy(self) -> usize {
        match self {
            NodeType::Leaf | NodeType::Range => 6,
            NodeType::ARange => 4,
        }
    }

    /// A write that leaves a non-root node (right-most ones included) with fewer slots than
    /// this rebalances it with a neighbour, as the kernel does: its `mt_min_slots` (6 and 4)
    /// is compared with the index of the last slot, so a node of at most 6 (4) slots is
    /// rebalanced. Matching it is what makes the tree shrink where the kernel's does.
    #[inline(always)]
    pub(crate) const fn underflow_below(self) -> usize {
        self.min_occupancy() + 1
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

    /// Whether internal nodes of this type keep gaps.
    #[inline(always)]
    pub(crate) const fn has_gaps(self) -> bool {
        matches!(self, NodeType::ARange)
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
/// All writes come from the one writer. While a node is reachable from the root in RCU
/// mode, its gaps never change, its slots change only by single-word stores that keep
/// every reader correct (an exact-fit overwrite), and its pivots only by an in-place append
/// to a plain tree's leaf: words past the node's end are prepared first (unreachable: the
/// last used pivot holds the maximum), then the last used pivot moves down with one
/// Release store (readers load pivots with Acquire, see [`find_slot`]).
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
    // A node image is written over a node as plain words.
    assert!(core::mem::size_of::<[usize; 1 + BODY_WORDS]>() == 256);
    // leaf/range: 15 pivots + 16 slots fill the body exactly.
    assert!(NodeType::Leaf.pivots() + NodeType::Leaf.slots() == BODY_WORDS);
    // arange: 9 pivots + 10 slots + 10 gaps fit.
    assert!(NodeType::ARange.gap_base() + NodeType::ARange.slots() <= BODY_WORDS);
};

/// The slot of a node with `np` pivots that holds `index` (which lies inside the node's
/// range `[min, max]`), with that slot's bounds: `(off, lo, hi)`, where slot `off` is the
/// first one whose pivot is `>= index` (or the last slot). Narrows to a quarter of the
/// pivots with two probes, then scans at most four. The bounds come from the very loads
/// the search compared with, so they always contain `index`.
///
/// `order` is the pivot loads' ordering. The writer reads its own stores (Relaxed).
/// Readers use Acquire: pivots of a reachable node never change, except the one store that
/// publishes an in-place append (see `write::kinds::append`): a reader that sees that
/// pivot's new value must also see the words prepared beyond it (the next pivot, the new
/// slots), so every pivot load is an Acquire load (a plain load on x86).
#[inline(always)]
pub(crate) fn find_slot(
    n: &Node,
    np: usize,
    index: usize,
    min: usize,
    max: usize,
    order: Ordering,
) -> (usize, usize, usize) {
    // `order`: see above.
    let p = |i: usize| n.body[i].load(order);
    let (mut off, mut lo) = (0, min);
    if np == 15 {
        let v = p(7);
        if index > v {
            (off, lo) = (8, v + 1);
        }
        let v = p(off + 3);
        if index > v {
            (off, lo) = (off + 4, v + 1);
        }
    } else {
        let v = p(np / 2);
        if index > v {
            (off, lo) = (np / 2 + 1, v + 1);
        }
    }
    while off < np {
        let v = p(off);
        if index <= v {
            return (off, lo, v);
        }
        (off, lo) = (off + 1, v + 1);
    }
    (off, lo, max)
}

impl Node {
    /// A node with the given parent and body words (loom builds nodes through the
    /// atomics' constructors).
    #[cfg(loom)]
    pub(crate) fn with_words(parent: usize, words: &[usize; BODY_WORDS]) -> Node {
        Node {
            parent: AtomicUsize::new(parent),
            body: core::array::from_fn(|i| AtomicUsize::new(words[i])),
        }
    }

    /// Pivot `i`, loaded with Acquire: the reader's per-word accessor. Pivots of a
    /// reachable node can change in place (a plain tree's append, see [`find_slot`]), so a
    /// reader must not read them with a weaker ordering.
    #[inline(always)]
    pub(crate) fn pivot(&self, _ty: NodeType, i: usize) -> usize {
        // Acquire: see above.
        self.body[i].load(Ordering::Acquire)
    }

    /// Pivot `i` in place: the writer's access (its own reads may be Relaxed).
    #[inline(always)]
    pub(crate) fn pivot_cell(&self, _ty: NodeType, i: usize) -> &AtomicUsize {
        &self.body[i]
    }

    /// Slot `i` (in place).
    #[inline(always)]
    pub(crate) fn slot(&self, ty: NodeType, i: usize) -> &AtomicUsize {
        &self.body[ty.slot_base() + i]
    }

    /// Gap `i` (in place; arange only).
    #[inline(always)]
    pub(crate) fn gap(&self, ty: NodeType, i: usize) -> &AtomicUsize {
        debug_assert!(ty == NodeType::ARange);
        &self.body[ty.gap_base() + i]
    }

    /// The last index of slot `i` of a node of type `ty` whose maximum is `max` (writer
    /// side, or a reader that tolerates a stale value: Relaxed).
    #[inline(always)]
    pub(crate) fn pivot_or_max(&self, ty: NodeType, i: usize, max: usize) -> usize {
        if i < ty.pivots() {
            // Relaxed: writer side, or writers excluded.
            self.pivot_cell(ty, i).load(Ordering::Relaxed)
        } else {
            max
        }
    }

    /// The range `[lo, hi]` of slot `off` of a node of type `ty` covering `[min, max]`: the
    /// one child-range computation of the engine.
    #[inline(always)]
    pub(crate) fn slot_range(
        &self,
        ty: NodeType,
        min: usize,
        max: usize,
        off: usize,
    ) -> (usize, usize) {
        let lo = if off == 0 {
            min
        } else {
            // Relaxed: writer side, or writers excluded.
            self.pivot_cell(ty, off - 1).load(Ordering::Relaxed) + 1
        };
        (lo, self.pivot_or_max(ty, off, max))
    }

    /// Number of used slots of a node of type `ty` whose maximum is `max`: one past the
    /// first pivot equal to the maximum (pivots past the end hold it).
    #[inline(always)]
    pub(crate) fn end(&self, ty: NodeType, max: usize) -> usize {
        find_slot(self, ty.pivots(), max, 0, max, Ordering::Relaxed).0 + 1
    }

    /// The node's used items (writer side, or with writers excluded). The engine's one
    /// node decoder (see [`Items::extend_from_node`]).
    pub(crate) fn items(&self, ty: NodeType, max: usize) -> Items<MAX_SLOTS> {
        let mut out = Items::new();
        out.extend_from_node(self, ty, max, 0, self.end(ty, max));
        out
    }

    /// Every word of the node (parent first), read by the writer. Outside loom a plain
    /// 256-byte copy: only the writer stores to nodes, so nothing can race with these
    /// reads (readers only read too).
    #[inline(always)]
    pub(crate) fn words(&self) -> [usize; 1 + BODY_WORDS] {
        #[cfg(not(loom))]
        // SAFETY: `Node` is 32 `AtomicUsize`s, which have the layout of `usize`; reading
        // them through a shared reference is a read of their (interior) memory, and no
        // thread writes to it concurrently: the caller is the tree's one writer.
        return unsafe {
            (self as *const Node)
                .cast::<[usize; 1 + BODY_WORDS]>()
                .read()
        };
        #[cfg(loom)]
        {
            let mut w = [0usize; 1 + BODY_WORDS];
            // Relaxed: as above, the caller is the writer.
            w[0] = self.parent.load(Ordering::Relaxed);
            for (d, s) in w[1..].iter_mut().zip(self.body.iter()) {
                // Relaxed: as above.
                *d = s.load(Ordering::Relaxed);
            }
            w
        }
    }

    /// Item `i` (pivot, slot and gap), Relaxed loads.
    #[inline(always)]
    pub(crate) fn item(&self, ty: NodeType, i: usize, max: usize) -> Item {
        Item {
            piv: self.pivot_or_max(ty, i, max),
            // Relaxed: writer side (only the writer stores slots) or writers excluded.
            slot: self.slot(ty, i).load(Ordering::Relaxed),
            gap: if ty.has_gaps() {
                // Relaxed: as above.
                self.gap(ty, i).load(Ordering::Relaxed)
            } else {
                0
            },
        }
    }
}

/// An encoded node pointer: address | type.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub(crate) struct NodePtr(pub(crate) usize);

const TYPE_MASK: usize = 0xff;

impl NodePtr {
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
        // Exposed in `NodeImage::write` (module docs, "Provenance").
        let p = core::ptr::with_exposed_provenance::<Node>(self.addr());
        // SAFETY: the caller guarantees the allocation is live for 'a; it holds an
        // initialised, 256-aligned `Node` (written by `NodeImage::write`).
        unsafe { &*p }
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
    /// The node is live, and already unreachable from the root for new readers (its
    /// replacement has been published).
    pub(crate) unsafe fn mark_dead(self) {
        // SAFETY: forwarded from the caller (the node is still allocated).
        let n = unsafe { self.node() };
        // Release: pairs with the reader's Acquire in `is_dead`; published after the
        // replacement so a reader that sees the mark finds the new tree on restart.
        n.parent.store(self.addr(), Ordering::Release);
    }
}

/// One (pivot, slot, gap) triple: the unit the writer moves between nodes.
///
/// `piv` is the last index the slot covers; `slot` is an entry word (leaves, 0 = empty) or
/// an encoded child pointer; `gap` is the child's largest free run (arange parents only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Item {
    pub(crate) piv: usize,
    pub(crate) slot: usize,
    pub(crate) gap: usize,
}

/// The engine's one item container: up to `N` items inline (a decoded node, the items of
/// one level of a rewrite, the new nodes of a level).
pub(crate) type Items<const N: usize> = StackVec<Item, N>;

impl<const N: usize> Items<N> {
    /// Append items `from..to` of the node `n` of type `ty` whose maximum is `max`, read
    /// from one snapshot of its words (writer side, or with writers excluded).
    #[inline]
    pub(crate) fn extend_from_node(
        &mut self,
        n: &Node,
        ty: NodeType,
        max: usize,
        from: usize,
        to: usize,
    ) {
        let (np, sb, gb) = (ty.pivots(), ty.slot_base(), ty.gap_base());
        // Relaxed loads: writer side (only the writer stores) or writers excluded.
        let w = |i: usize| n.body[i].load(Ordering::Relaxed);
        if ty.has_gaps() {
            for i in from..to {
                let piv = if i < np { w(i) } else { max };
                self.push(Item {
                    piv,
                    slot: w(sb + i),
                    gap: w(gb + i),
                });
            }
        } else {
            for i in from..to {
                let piv = if i < np { w(i) } else { max };
                self.push(Item {
                    piv,
                    slot: w(sb + i),
                    gap: 0,
                });
            }
        }
    }

    /// Append a leaf item; an empty item right after an empty one widens it instead, so
    /// empty ranges stay merged.
    #[inline]
    pub(crate) fn push_leaf(&mut self, it: Item) {
        if it.slot == 0 {
            if let Some(prev) = self.last_mut() {
                if prev.slot == 0 {
                    prev.piv = it.piv;
                    return;
                }
            }
        }
        self.push(it);
    }
}

/// A node's words assembled privately, then written into fresh memory in one go: the
/// engine's one node encoder. Items are pushed in index order, or the image starts as a
/// copy of a node and has a range of its items replaced ([`NodeImage::splice`]).
pub(crate) struct NodeImage {
    ty: NodeType,
    /// Items held.
    len: usize,
    /// `[parent, body...]`.
    words: [usize; 1 + BODY_WORDS],
}

impl NodeImage {
    /// An empty image of type `ty` (parent word 0).
    #[inline(always)]
    pub(crate) fn new(ty: NodeType) -> NodeImage {
        NodeImage {
            ty,
            len: 0,
            words: [0; 1 + BODY_WORDS],
        }
    }

    /// An image holding `items` (the last item's pivot is the node's maximum).
    #[inline]
    pub(crate) fn from_items(ty: NodeType, items: &[Item]) -> NodeImage {
        let mut m = NodeImage::new(ty);
        let n = items.len();
        assert!(n <= ty.slots(), "maple: node image overflow (engine bug)");
        let (np, sb) = (ty.pivots(), 1 + ty.slot_base());
        for (i, it) in items.iter().enumerate().take(np) {
            m.words[1 + i] = it.piv;
        }
        for (i, it) in items.iter().enumerate() {
            m.words[sb + i] = it.slot;
        }
        if ty.has_gaps() {
            let gb = 1 + ty.gap_base();
            for (i, it) in items.iter().enumerate() {
                m.words[gb + i] = it.gap;
            }
        }
        m.len = n;
        m
    }

    /// A copy of the live node `src` of type `ty` with maximum `max` (writer side), parent
    /// word 0.
    #[inline(always)]
    pub(crate) fn from_node(src: &Node, ty: NodeType, max: usize) -> NodeImage {
        let mut words = src.words();
        words[0] = 0;
        NodeImage {
            ty,
            len: src.end(ty, max),
            words,
        }
    }

    /// Items held.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Append an item.
    #[inline(always)]
    pub(crate) fn push(&mut self, it: Item) {
        let (ty, i) = (self.ty, self.len);
        assert!(i < ty.slots(), "maple: node image overflow (engine bug)");
        if i < ty.pivots() {
            self.words[1 + i] = it.piv;
        }
        self.words[1 + ty.slot_base() + i] = it.slot;
        if ty.has_gaps() {
            self.words[1 + ty.gap_base() + i] = it.gap;
        }
        self.len = i + 1;
    }

    /// Replace items `from..to` by `items`, moving the items after them. The pivot of a
    /// moved last item is restored by [`NodeImage::write`] (it is the node's maximum).
    #[inline]
    pub(crate) fn splice(&mut self, from: usize, to: usize, items: &[Item]) {
        let (ty, len, k) = (self.ty, self.len, items.len());
        let new_len = len - (to - from) + k;
        assert!(
            to <= len && new_len <= ty.slots(),
            "maple: node image overflow (engine bug)"
        );
        let (np, sb) = (ty.pivots(), 1 + ty.slot_base());
        let dst = from + k;
        if dst != to {
            // Pivots of the moved items (a full node's last item has none), slots, gaps.
            let (pe, pd) = (len.min(np), (dst + (len - to)).min(np));
            if to < pe && dst < np {
                self.words
                    .copy_within(1 + to..1 + to + (pd - dst).min(pe - to), 1 + dst);
            }
            self.words.copy_within(sb + to..sb + len, sb + dst);
            if ty.has_gaps() {
                let gb = 1 + ty.gap_base();
                self.words.copy_within(gb + to..gb + len, gb + dst);
            }
            // Slots (and gaps) no longer used are empty.
            for i in new_len..len {
                self.words[sb + i] = 0;
                if ty.has_gaps() {
                    self.words[1 + ty.gap_base() + i] = 0;
                }
            }
        }
        for (j, it) in items.iter().enumerate() {
            let i = from + j;
            if i < np {
                self.words[1 + i] = it.piv;
            }
            self.words[sb + i] = it.slot;
            if ty.has_gaps() {
                self.words[1 + ty.gap_base() + i] = it.gap;
            }
        }
        self.len = new_len;
    }

    /// Slot word `i`.
    #[inline(always)]
    pub(crate) fn slot(&self, i: usize) -> usize {
        self.words[1 + self.ty.slot_base() + i]
    }

    /// Largest free run of a leaf image whose minimum is `min` and maximum `max`; a run
    /// covering the whole index space saturates at `usize::MAX`.
    pub(crate) fn leaf_gap(&self, min: usize, max: usize) -> usize {
        let (mut start, mut best) = (min, 0);
        for i in 0..self.len {
            // The last item ends at the maximum (its pivot may not be stored yet).
            let piv = if i + 1 == self.len {
                max
            } else {
                self.words[1 + i]
            };
            if self.slot(i) == 0 {
                best = best.max((piv - start).saturating_add(1));
            }
            start = piv.wrapping_add(1);
        }
        best
    }

    /// Write the image into `mem` as a node whose maximum is `max` (the last item's pivot
    /// and the pivots past it get the maximum) and return its pointer. Children of an
    /// internal node are not re-parented here (see [`adopt_children`]).
    ///
    /// # Safety
    /// `mem` is valid for writes of a `Node`, 256-aligned, and exclusively owned by the
    /// caller (never reachable by another thread before it is published with a Release
    /// store, which orders these writes before any reader's Acquire load of the pointer).
    #[inline]
    pub(crate) unsafe fn write(&mut self, mem: *mut Node, max: usize) -> NodePtr {
        let ty = self.ty;
        debug_assert!(self.len > 0);
        for i in self.len - 1..ty.pivots() {
            self.words[1 + i] = max;
        }
        #[cfg(not(loom))]
        // SAFETY: the caller's contract; `AtomicUsize` has the layout of `usize`, so 32
        // plain words initialise the node (size checked at compile time above).
        unsafe {
            mem.cast::<[usize; 1 + BODY_WORDS]>().write(self.words)
        };
        #[cfg(loom)]
        {
            // Loom atomics are not plain words: build a whole `Node` through the atomics'
            // constructors (what the memory held before is never dropped in place).
            let mut body = [0usize; BODY_WORDS];
            body.copy_from_slice(&self.words[1..]);
            // SAFETY: the caller's contract.
            unsafe { mem.write(Node::with_words(self.words[0], &body)) };
        }
        // Exposed once here, recovered in `NodePtr::node` (module docs).
        let addr = mem.expose_provenance();
        debug_assert_eq!(addr & TYPE_MASK, 0);
        NodePtr(addr | ty as usize)
    }
}

/// Point the parent word of every child in `children` (the items of the internal node `p`)
/// at `p`.
///
/// # Safety
/// The children are live nodes owned by the writer (the caller).
pub(crate) unsafe fn adopt_children(p: NodePtr, children: &[Item]) {
    debug_assert!(!p.is_leaf());
    for it in children {
        // SAFETY: the caller's contract.
        let cn = unsafe { NodePtr(it.slot).node() };
        // Relaxed: readers only compare the parent word with the node's own address; any
        // other value reads as "live".
        cn.parent.store(p.0, Ordering::Relaxed);
    }
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
