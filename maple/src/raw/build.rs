//! Whole-tree construction and destruction: bulk build from sorted input, node-by-node
//! duplication (the kernel's `__mt_dup`), teardown and draining.

use rayon::prelude::*;
use rcu::sync::atomic::Ordering;

use super::node::{
    build_node, decode, internal_gap, leaf_gap, Item, NodePtr, NodeType, BODY_WORDS,
};
use super::write::plan;
use super::RawTree;

/// Above this many items a level is built in parallel with rayon.
pub(crate) const PARALLEL_THRESHOLD: usize = 1 << 16;

/// Build the nodes of one level from `items` cut at `ends`; returns the parent items.
///
/// # Safety
/// Internal items point at live nodes owned by the caller.
unsafe fn level(items: &[Item], ends: &[usize], ty: NodeType) -> Vec<Item> {
    let make = |j: usize| {
        let start = if j == 0 { 0 } else { ends[j - 1] };
        let part = &items[start..ends[j]];
        let min = if start == 0 {
            0
        } else {
            items[start - 1].piv.wrapping_add(1)
        };
        // SAFETY: forwarded from the caller; parts are disjoint, so each child is
        // re-parented by exactly one new node.
        let p = unsafe { build_node(ty, part) };
        let gap = if ty.is_leaf() {
            leaf_gap(part, min)
        } else {
            internal_gap(part)
        };
        Item {
            piv: part[part.len() - 1].piv,
            slot: p.0,
            gap,
        }
    };
    if items.len() >= PARALLEL_THRESHOLD && cfg!(not(loom)) {
        (0..ends.len()).into_par_iter().map(make).collect()
    } else {
        (0..ends.len()).map(make).collect()
    }
}

impl RawTree {
    /// Lay out leaves directly from `items` (sorted, covering `0..=usize::MAX`, empties
    /// merged) and build the levels above; the tree must be empty.
    ///
    /// # Safety
    /// The caller has exclusive access, the tree is empty, and non-zero words are owned
    /// entries handed to the tree.
    pub(crate) unsafe fn bulk_build(&self, items: &[Item]) {
        // Relaxed: exclusive access.
        debug_assert_eq!(self.root.load(Ordering::Relaxed), 0);
        let count = items.iter().filter(|it| it.slot != 0).count();
        if count == 0 {
            return;
        }
        let ends = plan(items, NodeType::Leaf.slots(), true);
        // SAFETY: leaves hold no child pointers.
        let mut level_items = unsafe { level(items, &ends, NodeType::Leaf) };
        let mut height = 1;
        let ity = self.internal_type();
        while level_items.len() > 1 {
            let ends = plan(&level_items, ity.slots(), false);
            // SAFETY: children were just built and are owned here.
            level_items = unsafe { level(&level_items, &ends, ity) };
            height += 1;
        }
        // Relaxed: exclusive access (no readers exist).
        self.len.store(count, Ordering::Relaxed);
        // Relaxed: as above.
        self.height.store(height, Ordering::Relaxed);
        // Release: publishes the built nodes (defensive; there are no readers).
        self.root.store(level_items[0].slot, Ordering::Release);
    }

    /// Copy this tree into `dst` node by node in one pre-order pass, cloning each entry
    /// with `clone_word`.
    ///
    /// # Safety
    /// Writers of `self` are excluded; `dst` is empty and exclusively owned;
    /// `clone_word` returns an owned word for a live word.
    pub(crate) unsafe fn dup_into(&self, dst: &RawTree, clone_word: &dyn Fn(usize) -> usize) {
        // Relaxed: writers excluded.
        let root = self.root.load(Ordering::Relaxed);
        if root != 0 {
            // SAFETY: forwarded.
            let copy = unsafe { dup_node(NodePtr(root), 0, clone_word) };
            // Release: publishes the copy (no readers exist yet).
            dst.root.store(copy.0, Ordering::Release);
        }
        // Relaxed: writers excluded / exclusive destination.
        dst.len
            .store(self.len.load(Ordering::Relaxed), Ordering::Relaxed);
        // Relaxed: as above.
        dst.height
            .store(self.height.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Free every node and hand every entry word to `drop_word`; the tree becomes empty.
    ///
    /// # Safety
    /// Exclusive access and no reader can still reach the nodes.
    pub(crate) unsafe fn destroy(&self, drop_word: &mut dyn FnMut(usize, usize, usize)) {
        // Relaxed: exclusive access.
        let root = self.root.swap(0, Ordering::Relaxed);
        if root != 0 {
            // SAFETY: forwarded.
            unsafe { free_subtree(NodePtr(root), 0, usize::MAX, drop_word) };
        }
        // Relaxed: exclusive access.
        self.len.store(0, Ordering::Relaxed);
        // Relaxed: exclusive access.
        self.height.store(0, Ordering::Relaxed);
    }
}

/// # Safety
/// `node` is live, writers excluded.
unsafe fn dup_node(node: NodePtr, parent: usize, clone_word: &dyn Fn(usize) -> usize) -> NodePtr {
    let ty = node.ty();
    // SAFETY: live source.
    let src = unsafe { node.node() };
    let mut words = [0usize; BODY_WORDS];
    for (w, s) in words.iter_mut().zip(src.body.iter()) {
        // Relaxed: writers are excluded, the source is stable.
        *w = s.load(Ordering::Relaxed);
    }
    // Pre-order: the copy of this node exists before its children are copied.
    let copy = NodePtr::alloc_with(ty, parent, &words);
    // SAFETY: fresh private copy.
    let dst = unsafe { copy.node() };
    for i in 0..ty.slots() {
        let w = words[ty.slot_base() + i];
        if w == 0 {
            continue;
        }
        let nw = if ty.is_leaf() {
            clone_word(w)
        } else {
            // SAFETY: children of a live node are live.
            unsafe { dup_node(NodePtr(w), copy.0, clone_word) }.0
        };
        // Relaxed: the copy is private until published.
        dst.slot(ty, i).store(nw, Ordering::Relaxed);
    }
    copy
}

/// # Safety
/// `node` is live and exclusively owned; nothing reaches it afterwards.
unsafe fn free_subtree(
    node: NodePtr,
    min: usize,
    max: usize,
    drop_word: &mut dyn FnMut(usize, usize, usize),
) {
    // SAFETY: live.
    let d = unsafe { decode(node, max) };
    let mut s = min;
    for it in d.items() {
        if node.ty().is_leaf() {
            if it.slot != 0 {
                drop_word(s, it.piv, it.slot);
            }
        } else {
            // SAFETY: children of a live node are live and owned with it.
            unsafe { free_subtree(NodePtr(it.slot), s, it.piv, drop_word) };
        }
        s = it.piv.wrapping_add(1);
    }
    // SAFETY: exclusively owned, freed once.
    unsafe { node.free() };
}
