//! Readers: lock-free descents that never store to shared memory.
//!
//! Every child pointer and entry word is loaded through the section's guard
//! (`protect_word`, Acquire: the writer publishes nodes and values with Release stores).
//! Pivots are loaded Relaxed: they never change while a node is reachable, and the Acquire
//! load of the node pointer already ordered their initialisation before us. After reading
//! what it needs from a node, a reader checks the node's dead mark and restarts from the
//! root if the node has been replaced, so it never acts on a node the writer has unlinked.

use rcu::sync::atomic::Ordering;
use rcu::Guard;

use super::node::{Node, NodePtr};
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

/// The slot of a live node with `np` pivots that holds `index` (which lies inside the node's
/// range): the first pivot `>= index`, or the last slot. Narrows to a quarter of the
/// pivots with two probes, then scans at most four. Relaxed loads: pivots are immutable
/// while a node is reachable (module docs).
#[inline(always)]
pub(crate) fn slot_index(n: &Node, np: usize, index: usize) -> usize {
    let p = |i: usize| n.body[i].load(Ordering::Relaxed);
    let mut off = 0;
    if np == 15 {
        if index > p(7) {
            off = 8;
        }
        if index > p(off + 3) {
            off += 4;
        }
    } else if index > p(np / 2) {
        off = np / 2 + 1;
    }
    while off < np && index > p(off) {
        off += 1;
    }
    off
}

/// Descend to the leaf slot holding `index`.
///
/// # Safety
/// `g` must be a live section of the domain that `tree`'s writer retires nodes to.
#[inline]
pub(crate) unsafe fn walk<G: Guard>(tree: &RawTree, g: &G, index: usize) -> LeafPos {
    'restart: loop {
        // Acquire (via protect): the root node's contents were written before it was
        // published with a Release store.
        let mut w = g.protect_word(&tree.root, Ordering::Acquire);
        let (mut min, mut max) = (0usize, usize::MAX);
        if w == 0 {
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
        loop {
            let node = NodePtr(w);
            let ty = node.ty();
            // SAFETY: `w` was loaded under the guard from a live node or the root, so the
            // node is not freed before the guard ends.
            let n = unsafe { node.node() };
            let np = ty.pivots();
            let off = slot_index(n, np, index);
            // Relaxed: pivots are immutable while reachable (module docs).
            let lo = if off == 0 {
                min
            } else {
                n.pivot(ty, off - 1).load(Ordering::Relaxed) + 1
            };
            // Relaxed: as above.
            let hi = if off < np {
                n.pivot(ty, off).load(Ordering::Relaxed)
            } else {
                max
            };
            // Acquire (via protect): the child node / value behind the word was initialised
            // before the Release store that published it.
            let child = g.protect_word(n.slot(ty, off), Ordering::Acquire);
            // SAFETY: as above, the node is protected by the guard.
            if unsafe { node.is_dead() } {
                continue 'restart;
            }
            if ty.is_leaf() {
                return LeafPos {
                    leaf: node,
                    leaf_min: min,
                    leaf_max: max,
                    slot: Slot {
                        min: lo,
                        max: hi,
                        word: child,
                    },
                };
            }
            w = child;
            min = lo;
            max = hi;
        }
    }
}

/// Point lookup: the entry word at `index` (0 = empty).
///
/// # Safety
/// As for [`walk`].
#[inline]
pub(crate) unsafe fn load<G: Guard>(tree: &RawTree, g: &G, index: usize) -> usize {
    'restart: loop {
        // Acquire (via protect): see `walk`.
        let mut w = g.protect_word(&tree.root, Ordering::Acquire);
        if w == 0 {
            return 0;
        }
        loop {
            let node = NodePtr(w);
            // SAFETY: protected by the guard, see `walk`.
            let n = unsafe { node.node() };
            // The type straight from the tag bits: this loop is the hottest in the crate.
            let np = node.pivot_count();
            let off = slot_index(n, np, index);
            // Acquire (via protect): see `walk`. Slots start right after the pivots.
            let child = g.protect_word(&n.body[np + off], Ordering::Acquire);
            // SAFETY: protected by the guard.
            if unsafe { node.is_dead() } {
                continue 'restart;
            }
            if node.is_leaf() {
                return child;
            }
            w = child;
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
                let mut off = 0;
                let mut lo = p.leaf_min;
                let mut hi = p.leaf_max;
                while off < ty.pivots() {
                    // Relaxed: pivots are immutable while reachable.
                    let pv = n.pivot(ty, off).load(Ordering::Relaxed);
                    if index <= pv {
                        hi = pv;
                        break;
                    }
                    lo = pv + 1;
                    off += 1;
                }
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
