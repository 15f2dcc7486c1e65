//! Readers: lock-free descents that never store to shared memory.
//!
//! Every child pointer and entry word is loaded through the section's guard
//! (`protect_word`, Acquire: the writer publishes nodes and values with Release stores).
//! Pivots are loaded with Acquire (see [`find_slot`]: an in-place append publishes with a
//! pivot store); the Acquire load of the node pointer already ordered the node's
//! initialisation before us. After reading
//! what it needs from a node, a reader checks the node's dead mark and restarts from the
//! root if the node has been replaced, so it never acts on a node the writer has unlinked.

use rcu::sync::atomic::{AtomicUsize, Ordering};
use rcu::Guard;

use super::node::{find_slot, NodePtr};
use super::RawTree;

/// One leaf slot as a reader saw it: `[min, max]` and the entry word (0 = empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) min: usize,
    pub(crate) max: usize,
    pub(crate) word: usize,
}

/// Where a reader ended up: the leaf and slot, with the slot's bounds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LeafPos {
    pub(crate) leaf: NodePtr,
    pub(crate) leaf_min: usize,
    pub(crate) leaf_max: usize,
    pub(crate) slot: Slot,
}

/// How a descent reads the slot words it follows, and whether it can meet dead nodes.
pub(crate) trait Access {
    /// The ordering of pivot loads (see [`find_slot`]).
    const PIVOTS: Ordering;

    /// Load a slot word: a child pointer or an entry word.
    fn slot(&self, w: &AtomicUsize) -> usize;

    /// Whether `node` (just read from) has been replaced: the descent then restarts.
    ///
    /// # Safety
    /// `node` was reached by this descent (it is live for the accessor's section).
    unsafe fn dead(&self, node: NodePtr) -> bool;
}

/// A reader's access: every slot word through the section's guard, and a dead check.
pub(crate) struct Protected<'g, G>(pub(crate) &'g G);

impl<G: Guard> Access for Protected<'_, G> {
    /// Acquire: an in-place append publishes with a pivot store (see [`find_slot`]).
    const PIVOTS: Ordering = Ordering::Acquire;

    #[inline(always)]
    fn slot(&self, w: &AtomicUsize) -> usize {
        // Acquire (via protect): the child node / value behind the word was initialised
        // before the Release store that published it.
        self.0.protect_word(w, Ordering::Acquire)
    }

    #[inline(always)]
    unsafe fn dead(&self, node: NodePtr) -> bool {
        // SAFETY: reached under the section, so not freed before it ends.
        unsafe { node.is_dead() }
    }
}

/// The writer's access: it reads its own stores (Relaxed) and only ever reaches live nodes
/// (it is the one thread that unlinks them).
pub(crate) struct Owned;

impl Access for Owned {
    /// Relaxed: the writer reads its own stores.
    const PIVOTS: Ordering = Ordering::Relaxed;

    #[inline(always)]
    fn slot(&self, w: &AtomicUsize) -> usize {
        // Relaxed: only the writer stores slots.
        w.load(Ordering::Relaxed)
    }

    #[inline(always)]
    unsafe fn dead(&self, _node: NodePtr) -> bool {
        false
    }
}

/// What a descent records of each level it passes.
pub(crate) trait Visit {
    /// The descent took slot `off` of `node`, which covers `[min, max]`.
    fn level(&mut self, node: NodePtr, min: usize, max: usize, off: usize);
}

/// Record nothing.
pub(crate) struct Nothing;

impl Visit for Nothing {
    #[inline(always)]
    fn level(&mut self, _: NodePtr, _: usize, _: usize, _: usize) {}
}

/// The engine's one descent: from the node `root` (non-zero) to the leaf slot holding
/// `index`, reporting every level to `v`. `None` if it met a dead node (the caller restarts
/// from a fresh root load).
///
/// Pivots are loaded with the accessor's ordering (Acquire for readers, see [`find_slot`]);
/// the Acquire load of the node pointer already ordered their initialisation before us.
///
/// # Safety
/// `root` and every node reachable from it stay allocated while `a` is in use (a reader's
/// section that loaded `root`, or the writer).
#[inline(always)]
pub(crate) unsafe fn descend<A: Access, V: Visit>(
    a: &A,
    root: usize,
    index: usize,
    v: &mut V,
) -> Option<LeafPos> {
    let mut w = root;
    let (mut min, mut max) = (0usize, usize::MAX);
    loop {
        let node = NodePtr(w);
        // SAFETY: the caller's contract; `w` was loaded from the root or a live node.
        let n = unsafe { node.node() };
        // The pivot count straight from the tag bits: this loop is the hottest in the crate.
        let np = node.pivot_count();
        // Bounds from the search's own loads (unused ones fold away in `load`).
        let (off, lo, hi) = find_slot(n, np, index, min, max, A::PIVOTS);
        // Slots start right after the pivots.
        let child = a.slot(&n.body[np + off]);
        // SAFETY: reached by this descent.
        if unsafe { a.dead(node) } {
            return None;
        }
        v.level(node, min, max, off);
        if node.is_leaf() {
            return Some(LeafPos {
                leaf: node,
                leaf_min: min,
                leaf_max: max,
                slot: Slot {
                    min: lo,
                    max: hi,
                    word: child,
                },
            });
        }
        w = child;
        min = lo;
        max = hi;
    }
}

/// Descend to the leaf slot holding `index`.
///
/// # Safety
/// `g` must be a live section of the domain that `tree`'s writer retires nodes to.
#[inline]
pub(crate) unsafe fn walk<G: Guard>(tree: &RawTree, g: &G, index: usize) -> LeafPos {
    let a = Protected(g);
    loop {
        // Acquire (via protect): the root node's contents were written before it was
        // published with a Release store.
        let root = a.slot(&tree.root);
        if root == 0 {
            return LeafPos {
                leaf: NodePtr(0),
                leaf_min: 0,
                leaf_max: usize::MAX,
                slot: Slot {
                    min: 0,
                    max: usize::MAX,
                    word: 0,
                },
            };
        }
        // SAFETY: `root` was loaded under the live section `g`.
        if let Some(f) = unsafe { descend(&a, root, index, &mut Nothing) } {
            return f;
        }
    }
}

/// Point lookup: the entry word at `index` (0 = empty).
///
/// # Safety
/// As for [`walk`].
#[inline]
pub(crate) unsafe fn load<G: Guard>(tree: &RawTree, g: &G, index: usize) -> usize {
    let a = Protected(g);
    loop {
        // Acquire (via protect): see `walk`.
        let root = a.slot(&tree.root);
        if root == 0 {
            return 0;
        }
        // SAFETY: `root` was loaded under the live section `g`.
        if let Some(f) = unsafe { descend(&a, root, index, &mut Nothing) } {
            return f.slot.word;
        }
    }
}

/// The first non-empty slot that ends at or after `from` and starts at or before `to`.
///
/// # Safety
/// As for [`walk`].
pub(crate) unsafe fn next_entry<G: Guard>(
    tree: &RawTree,
    g: &G,
    from: usize,
    to: usize,
) -> Option<Slot> {
    let mut i = from;
    loop {
        // SAFETY: forwarded.
        let s = unsafe { walk(tree, g, i) }.slot;
        if s.word != 0 {
            return Some(s);
        }
        // Empty ranges are merged, so the slot after an empty one holds an entry unless a
        // writer changed the tree in between; loop in that case.
        if s.max >= to {
            return None;
        }
        i = s.max + 1;
    }
}

/// The last non-empty slot that starts at or before `from` and ends at or after `to`
/// (`to <= from`).
///
/// # Safety
/// As for [`walk`].
pub(crate) unsafe fn prev_entry<G: Guard>(
    tree: &RawTree,
    g: &G,
    from: usize,
    to: usize,
) -> Option<Slot> {
    let mut i = from;
    loop {
        // SAFETY: forwarded.
        let s = unsafe { walk(tree, g, i) }.slot;
        if s.word != 0 {
            return Some(s);
        }
        if s.min <= to {
            return None;
        }
        i = s.min - 1;
    }
}

/// A reader cursor that remembers its leaf so iteration reads neighbouring slots without
/// descending again; any sign of change (dead leaf, index outside the leaf) falls back to a
/// fresh walk.
///
/// What a slot read this way is worth (the iterator's contract rests on it): the cached
/// leaf was reachable at some moment after the cursor's section began; its pivots never
/// change while it is reachable and its slots change only by in-place exact fits, and the
/// writer touches it no more once it is unlinked. So every slot returned is the slot as
/// the tree held it at one moment since the leaf was reached. A write that happened before
/// the call marked the leaf dead (if it replaced it) before returning, so the Acquire
/// check below sees the mark and the cursor walks the new tree instead: such writes are
/// always visible.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LeafCursor {
    pos: Option<LeafPos>,
}

impl LeafCursor {
    pub(crate) const fn new() -> Self {
        LeafCursor { pos: None }
    }

    /// The slot holding `index`, reusing the cached leaf when `index` lies inside it.
    ///
    /// # Safety
    /// As for [`walk`], and the same section must be used for every call on this cursor.
    #[inline]
    pub(crate) unsafe fn slot_at<G: Guard>(&mut self, tree: &RawTree, g: &G, index: usize) -> Slot {
        if let Some(p) = self.pos {
            if p.leaf.0 != 0 && index >= p.leaf_min && index <= p.leaf_max {
                let ty = p.leaf.ty();
                // SAFETY: the leaf was reached under this same live section.
                let n = unsafe { p.leaf.node() };
                // Acquire: see `find_slot`.
                let (off, lo, hi) = find_slot(
                    n,
                    ty.pivots(),
                    index,
                    p.leaf_min,
                    p.leaf_max,
                    Ordering::Acquire,
                );
                // Acquire (via protect): see `walk`.
                let word = g.protect_word(n.slot(ty, off), Ordering::Acquire);
                // SAFETY: protected by the section.
                if !unsafe { p.leaf.is_dead() } {
                    return Slot {
                        min: lo,
                        max: hi,
                        word,
                    };
                }
            }
        }
        // SAFETY: forwarded.
        let p = unsafe { walk(tree, g, index) };
        self.pos = Some(p);
        p.slot
    }
}
