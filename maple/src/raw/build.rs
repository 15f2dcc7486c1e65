//! Whole-tree construction and destruction: bulk build from sorted input, node-by-node
//! duplication (the kernel's `__mt_dup`), teardown and draining.

use rayon::prelude::*;
use rcu::sync::atomic::Ordering;

use super::node::{Item, NodeImage, NodePtr, NodeType};
use super::pool::alloc_node;
use super::write::level::{build_level, plan};
use super::RawTree;

/// Above this many items a level is built in parallel with rayon.
pub(crate) const PARALLEL_THRESHOLD: usize = 1 << 16;

/// Nodes per rayon task when a level is built in parallel.
const PARALLEL_CHUNK: usize = 1 << 10;

/// Build one level of a bulk build with [`build_level`] (in parallel for large levels);
/// returns the items of the level above.
///
/// # Safety
/// Internal items point at live nodes owned by the caller.
unsafe fn level(items: &[Item], ty: NodeType, alloc: bool) -> Vec<Item> {
    let ends = plan(items, ty.slots(), ty.is_leaf());
    // One task: nodes `ends[lo..hi]`.
    let task = |lo: usize, hi: usize| {
        let start = if lo == 0 { 0 } else { ends[lo - 1] };
        let min = if start == 0 {
            0
        } else {
            items[start - 1].piv.wrapping_add(1)
        };
        let local: Vec<usize> = ends[lo..hi].iter().map(|e| e - start).collect();
        let mut out = Vec::with_capacity(hi - lo);
        // SAFETY: fresh memory per node; the caller's contract on internal items; tasks
        // cover disjoint nodes, so each child is adopted by exactly one new node.
        unsafe {
            build_level(
                &items[start..ends[hi - 1]],
                &local,
                ty,
                min,
                alloc,
                &mut alloc_node,
                &mut |it| out.push(it),
            )
        };
        out
    };
    if items.len() >= PARALLEL_THRESHOLD && cfg!(not(loom)) {
        let chunks: Vec<(usize, usize)> = (0..ends.len())
            .step_by(PARALLEL_CHUNK)
            .map(|lo| (lo, (lo + PARALLEL_CHUNK).min(ends.len())))
            .collect();
        chunks
            .into_par_iter()
            .map(|(lo, hi)| task(lo, hi))
            .collect::<Vec<_>>()
            .concat()
    } else {
        task(0, ends.len())
    }
}

impl RawTree {
    /// Lay out leaves directly from `ranges` (`(first, last, word)`, sorted, disjoint,
    /// non-empty ranges of non-zero words) and build the levels above; the tree must be
    /// empty.
    ///
    /// # Safety
    /// The caller has exclusive access, the tree is empty, and the words are owned entries
    /// handed to the tree.
    pub(crate) unsafe fn bulk_build(
        &self,
        ranges: impl ExactSizeIterator<Item = (usize, usize, usize)>,
    ) {
        // Relaxed: exclusive access.
        debug_assert_eq!(self.root.load(Ordering::Relaxed), 0);
        let count = ranges.len();
        if count == 0 {
            return;
        }
        let mut items = Vec::with_capacity(count * 2 + 1);
        let mut next = Some(0usize);
        for (a, b, w) in ranges {
            debug_assert!(a <= b && w != 0 && next.is_some_and(|n| a >= n));
            if next.is_some_and(|n| a > n) {
                items.push(Item {
                    piv: a - 1,
                    slot: 0,
                    gap: 0,
                });
            }
            items.push(Item {
                piv: b,
                slot: w,
                gap: 0,
            });
            next = b.checked_add(1);
        }
        if next.is_some() {
            items.push(Item {
                piv: usize::MAX,
                slot: 0,
                gap: 0,
            });
        }
        // SAFETY: leaves hold no child pointers.
        let mut level_items = unsafe { level(&items, NodeType::Leaf, self.alloc) };
        let mut height = 1;
        let ity = self.internal_type();
        while level_items.len() > 1 {
            // SAFETY: children were just built and are owned here.
            level_items = unsafe { level(&level_items, ity, self.alloc) };
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
            let copy = unsafe { dup_node(NodePtr(root), usize::MAX, clone_word) };
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

    /// Free every node and hand every entry word to `drop_word` (with its range); the tree
    /// becomes empty.
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

/// Copy the subtree of `node` (maximum `max`) in pre-order: the copy of a node exists
/// before its children are copied. Returns the copy.
///
/// # Safety
/// `node` is live, writers excluded.
unsafe fn dup_node(node: NodePtr, max: usize, clone_word: &dyn Fn(usize) -> usize) -> NodePtr {
    let ty = node.ty();
    // SAFETY: live source.
    let items = unsafe { node.node() }.items(ty, max);
    // SAFETY: fresh memory from the allocator, private until published. Its slots hold the
    // source's words until they are replaced below.
    let copy = unsafe { NodeImage::from_items(ty, &items).write(alloc_node(), max) };
    // SAFETY: just built, owned here.
    let cn = unsafe { copy.node() };
    for (i, it) in items.iter().enumerate() {
        if it.slot == 0 {
            continue;
        }
        let w = if ty.is_leaf() {
            clone_word(it.slot)
        } else {
            // SAFETY: children of a live node are live.
            let c = unsafe { dup_node(NodePtr(it.slot), it.piv, clone_word) };
            // SAFETY: just built, owned here.
            let child = unsafe { c.node() };
            // Relaxed: the copy is private until published.
            child.parent.store(copy.0, Ordering::Relaxed);
            c.0
        };
        // Relaxed: the copy is private until published.
        cn.slot(ty, i).store(w, Ordering::Relaxed);
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
    let ty = node.ty();
    // SAFETY: live.
    let items = unsafe { node.node() }.items(ty, max);
    let mut s = min;
    for it in items.iter() {
        if ty.is_leaf() {
            if it.slot != 0 {
                drop_word(s, it.piv, it.slot);
            }
        } else {
            // SAFETY: children of a live node are live and owned with it.
            unsafe { free_subtree(NodePtr(it.slot), s, it.piv, drop_word) };
        }
        s = it.piv.wrapping_add(1);
    }
    // SAFETY: exclusively owned, freed once (its address was exposed when it was written).
    unsafe { super::pool::free_all(&[node.addr()]) };
}
