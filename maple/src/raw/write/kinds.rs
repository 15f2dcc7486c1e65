//! One function per [`StoreKind`](super::StoreKind), in the order classification tries
//! them. The kinds that build more than one leaf hand their leaf-level [`Run`] to the shared
//! steps of [`level`](super::level).

use rcu::sync::atomic::Ordering;

use super::classify::Edit;
use super::level::{NewNodes, Run};
use super::{Mode, Path, Writer};
use crate::raw::node::{Item, Items, Node, NodeImage, NodePtr, NodeType};

impl Writer<'_> {
    /// [`StoreKind::Root`](super::StoreKind::Root): the tree is empty; a store of a value
    /// builds its first leaf (a punch changes nothing).
    pub(super) fn root_store(&mut self, first: usize, last: usize, word: usize) {
        if word == 0 {
            return;
        }
        let mut m = NodeImage::new(NodeType::Leaf);
        if first > 0 {
            m.push(Item {
                piv: first - 1,
                slot: 0,
                gap: 0,
            });
        }
        m.push(Item {
            piv: last,
            slot: word,
            gap: 0,
        });
        if last < usize::MAX {
            m.push(Item {
                piv: usize::MAX,
                slot: 0,
                gap: 0,
            });
        }
        let leaf = self.build(&mut m, usize::MAX);
        self.add_len(1, 0);
        // SAFETY: a fully built leaf; the tree was empty.
        unsafe { self.publish_root(leaf.0) };
    }

    /// [`StoreKind::NewRoot`](super::StoreKind::NewRoot): `0..=usize::MAX` replaces the
    /// whole tree by one leaf (or none).
    pub(super) fn new_root(&mut self, word: usize) {
        let old = NodePtr(self.root());
        let removed = self.collect_subtree(old, usize::MAX);
        self.add_len(0, removed);
        let root = if word == 0 {
            0
        } else {
            self.add_len(1, 0);
            let mut m = NodeImage::from_items(
                NodeType::Leaf,
                &[Item {
                    piv: usize::MAX,
                    slot: word,
                    gap: 0,
                }],
            );
            self.build(&mut m, usize::MAX).0
        };
        // SAFETY: fully built; the whole old tree is recorded as garbage.
        unsafe { self.publish_root(root) };
    }

    /// Record a whole subtree (nodes and values) as garbage; returns the values counted.
    pub(super) fn collect_subtree(&mut self, node: NodePtr, max: usize) -> usize {
        self.garbage.replaced.push(node);
        let ty = node.ty();
        let items = self.node(node).items(ty, max);
        let mut count = 0;
        for it in items.iter() {
            if ty.is_leaf() {
                if it.slot != 0 {
                    self.garbage.values.push(it.slot);
                    count += 1;
                }
            } else {
                count += self.collect_subtree(NodePtr(it.slot), it.piv);
            }
        }
        count
    }

    /// [`StoreKind::ExactFit`](super::StoreKind::ExactFit): swap the one slot word in place
    /// (classification guarantees the leaf's gaps stay valid for readers).
    pub(super) fn exact_fit(&mut self, path: &Path, e: &Edit) {
        let leaf = *path.leaf();
        let n = self.node(leaf.node);
        let slot = n.slot(NodeType::Leaf, e.of);
        // Relaxed: writer-side read.
        let old = slot.load(Ordering::Relaxed);
        if old == 0 && e.word == 0 {
            return;
        }
        // Release: a reader that loads the new word (Acquire) sees the value it points to.
        slot.store(e.word, Ordering::Release);
        if old != 0 {
            self.garbage.values.push(old);
        }
        self.add_len((e.word != 0) as usize, (old != 0) as usize);
        if self.tree.alloc && self.mode == Mode::Exclusive {
            self.fix_gaps_in_place(path);
        }
    }

    /// Recompute the gaps along `path` in place (exclusive mode only: no readers).
    fn fix_gaps_in_place(&mut self, path: &Path) {
        debug_assert_eq!(self.mode, Mode::Exclusive);
        let leaf = *path.leaf();
        let items = self.node(leaf.node).items(NodeType::Leaf, leaf.max);
        let mut gap = crate::raw::node::leaf_gap(&items, leaf.min);
        for lv in path.lv[..path.height() - 1].iter().rev() {
            let (ty, n) = (lv.node.ty(), self.node(lv.node));
            // Relaxed loads and stores: exclusive mode, no readers.
            if n.gap(ty, lv.off).load(Ordering::Relaxed) == gap {
                return;
            }
            // Relaxed: as above.
            n.gap(ty, lv.off).store(gap, Ordering::Relaxed);
            gap = crate::raw::node::internal_gap(&n.items(ty, lv.max));
        }
    }

    /// Record what a store confined to one leaf removes (values) and adds or removes
    /// (`len`, words now in two slots).
    fn account_leaf(&mut self, n: &Node, e: &Edit) {
        let ty = NodeType::Leaf;
        // Relaxed: writer-side reads.
        let slot = |i: usize| n.slot(ty, i).load(Ordering::Relaxed);
        let (old_of, old_ol) = (slot(e.of), slot(e.ol));
        let mut removed = 0;
        for i in e.of..=e.ol {
            let w = slot(i);
            if w != 0 {
                removed += 1;
                let kept = (i == e.of && e.keep_left()) || (i == e.ol && e.keep_right());
                if !kept {
                    self.garbage.values.push(w);
                }
            }
        }
        let mut added = (e.word != 0) as usize;
        if e.keep_left() && old_of != 0 {
            added += 1;
        }
        if e.keep_right() && old_ol != 0 {
            added += 1;
            if e.of == e.ol && e.keep_left() {
                // Kept on both sides: the value now sits in two slots.
                self.garbage.dups.push(old_ol);
            }
        }
        self.add_len(added, removed);
    }

    /// Append the store's pieces: the kept left part of slot `of` of `first_leaf`, the new
    /// range, the kept right part of slot `ol` of `last_leaf`.
    fn pieces(e: &Edit, first_leaf: &Node, last_leaf: &Node, mut push: impl FnMut(Item)) {
        let ty = NodeType::Leaf;
        if e.keep_left() {
            push(Item {
                piv: e.first - 1,
                // Relaxed: writer-side read.
                slot: first_leaf.slot(ty, e.of).load(Ordering::Relaxed),
                gap: 0,
            });
        }
        push(Item {
            piv: e.last,
            slot: e.word,
            gap: 0,
        });
        if e.keep_right() {
            push(Item {
                piv: e.r_max,
                // Relaxed: writer-side read.
                slot: last_leaf.slot(ty, e.ol).load(Ordering::Relaxed),
                gap: 0,
            });
        }
    }

    /// [`StoreKind::SlotStore`](super::StoreKind::SlotStore): one pivot moves and one slot
    /// changes. Two stores, so only in place without readers; in RCU mode a reader could
    /// pair the new slot with the old bounds, and the leaf is copied instead.
    pub(super) fn slot_store(&mut self, path: &Path, e: &Edit) {
        if self.mode == Mode::Rcu {
            self.node_store(path, e);
            return;
        }
        let leaf = *path.leaf();
        let (ty, n) = (NodeType::Leaf, self.node(leaf.node));
        self.account_leaf(n, e);
        // Relaxed stores: exclusive mode, no readers.
        if e.keep_left() {
            // [r_min, first - 1] keeps slot `of`; slot `of + 1` becomes [first, its end].
            n.slot(ty, e.of + 1).store(e.word, Ordering::Relaxed);
            n.pivot_cell(ty, e.of).store(e.first - 1, Ordering::Relaxed);
        } else {
            // Slot `of` becomes [its start, last]; slot `of + 1` keeps the rest.
            n.slot(ty, e.of).store(e.word, Ordering::Relaxed);
            n.pivot_cell(ty, e.of).store(e.last, Ordering::Relaxed);
        }
        if self.tree.alloc {
            self.fix_gaps_in_place(path);
        }
    }

    /// [`StoreKind::Append`](super::StoreKind::Append): the store lands inside the leaf's
    /// last slot, after its first index (classification guarantees the pieces fit). The
    /// slot is cut in place into two or three pieces written into the free slots after it,
    /// also under readers (plain trees; an allocation tree's gaps would change too):
    ///
    /// 1. the words past the leaf's end are prepared: the right piece's slot, its pivot
    ///    (while the last used pivot still holds the maximum, a sorted search never
    ///    reaches past it), then the new range's slot;
    /// 2. one Release store moves the last used pivot down to `first - 1`: readers
    ///    (Acquire pivot loads, see `node::find_slot`) see the old leaf or the whole new
    ///    one, never the new range without its right bound.
    ///
    /// A reader's quarter probes may meet the prepared pivot before the publishing store
    /// and land past the old end: only for an index after `last`, whose value is the same
    /// before and after (the right piece keeps the old slot's value), with the bounds the
    /// store is about to publish. Nothing is replaced and nothing retired.
    pub(super) fn append(&mut self, path: &Path, e: &Edit) {
        debug_assert!(self.mode == Mode::Exclusive || !self.tree.alloc);
        let leaf = *path.leaf();
        let (ty, n) = (NodeType::Leaf, self.node(leaf.node));
        self.account_leaf(n, e);
        let tail = e.of;
        // Relaxed: writer-side read.
        let old = n.slot(ty, tail).load(Ordering::Relaxed);
        // Release stores: each word a reader may reach after the publishing store must be
        // visible to it (its Acquire pivot load pairs with the last store, which orders
        // every earlier store before it; the earlier ones are Release too because a quarter
        // probe may read the right piece's pivot first, see above).
        if e.keep_right() {
            n.slot(ty, tail + 2).store(old, Ordering::Release);
            n.pivot_cell(ty, tail + 1).store(e.last, Ordering::Release);
        }
        n.slot(ty, tail + 1).store(e.word, Ordering::Release);
        // Release: the publishing store.
        n.pivot_cell(ty, tail).store(e.first - 1, Ordering::Release);
        if self.tree.alloc {
            self.fix_gaps_in_place(path);
        }
    }

    /// [`StoreKind::NodeStore`](super::StoreKind::NodeStore): copy the leaf with the store
    /// applied straight into a new leaf (classification guarantees it fits, meets the
    /// minimum occupancy and does not end in an empty slot) and publish it with one store
    /// into the parent slot, or as the root. In an allocation tree a changed gap goes up
    /// through the shared steps instead.
    pub(super) fn node_store(&mut self, path: &Path, e: &Edit) {
        let leaf = *path.leaf();
        let n = self.node(leaf.node);
        self.account_leaf(n, e);
        let mut pieces = Items::<3>::new();
        Self::pieces(e, n, n, |it| pieces.push(it));
        let mut m = NodeImage::from_node(n, NodeType::Leaf, leaf.max);
        m.splice(e.of, e.ol + 1, &pieces);
        debug_assert!(
            (1..m.len()).all(|i| m.slot(i - 1) != 0 || m.slot(i) != 0),
            "adjacent empty slots after a node store"
        );
        let gap = if self.tree.alloc {
            m.leaf_gap(leaf.min, leaf.max)
        } else {
            0
        };
        let new = self.build(&mut m, leaf.max);
        self.garbage.replaced.push(leaf.node);
        let h = path.height();
        if h == 1 {
            // SAFETY: a fully built leaf replacing the root leaf (recorded as garbage).
            unsafe { self.publish_root(new.0) };
            return;
        }
        let item = Item {
            piv: leaf.max,
            slot: new.0,
            gap,
        };
        let parent = &path.lv[h - 2];
        let pty = parent.node.ty();
        // Relaxed: writer-side read.
        if !self.tree.alloc
            || self
                .node(parent.node)
                .gap(pty, parent.off)
                .load(Ordering::Relaxed)
                == gap
        {
            // SAFETY: built by this write over exactly the old leaf's range, same gap.
            unsafe { self.publish_child(parent, item) };
            return;
        }
        let (mut first, mut last) = (path.clone(), path.clone());
        let mut run = Run::new(&mut first, &mut last, h - 1);
        let mut new_nodes = NewNodes::new();
        new_nodes.push(item);
        self.settle_above(&mut run, new_nodes);
    }

    /// The leaf-level run of a store: the items of its first and last leaf (the same one
    /// unless it spans) with the store applied.
    fn leaf_run(&mut self, run: &mut Run<'_>, e: &Edit) {
        let d = run.depth;
        let (l, r) = (run.first.lv[d], run.last.lv[d]);
        let (ln, rn) = (self.node(l.node), self.node(r.node));
        let ty = NodeType::Leaf;
        let items = &mut run.items;
        // Inside a leaf empties are merged already: only the seams need `push_leaf`.
        items.extend_from_node(ln, ty, l.max, 0, e.of);
        Self::pieces(e, ln, rn, |it| items.push_leaf(it));
        let end = rn.end(ty, r.max);
        if e.ol + 1 < end {
            items.push_leaf(rn.item(ty, e.ol + 1, r.max));
            items.extend_from_node(rn, ty, r.max, e.ol + 2, end);
        }
    }

    /// [`StoreKind::Split`](super::StoreKind::Split): the leaf overflows. It pushes into a
    /// sibling with room, or splits in two (three if the store cut a full leaf into
    /// pieces); the parent then holds one more child and may overflow in turn.
    pub(super) fn split(&mut self, path: &mut Path, e: &Edit) {
        let d = path.height() - 1;
        self.account_leaf(self.node(path.leaf().node), e);
        self.garbage.replaced.push(path.leaf().node);
        let mut last = Path::new();
        last.lv.assign(&path.lv);
        let mut run = Run::new(path, &mut last, d);
        self.leaf_run(&mut run, e);
        let new = self.overflow(&mut run);
        self.settle_above(&mut run, new);
    }

    /// [`StoreKind::Rebalance`](super::StoreKind::Rebalance): the leaf would underflow (or
    /// end in an empty slot): it absorbs a neighbour and is rebuilt as one or two leaves;
    /// the parent may lose a child and underflow in turn (the tree shrinks at the root).
    pub(super) fn rebalance(&mut self, path: &mut Path, e: &Edit) {
        let d = path.height() - 1;
        self.account_leaf(self.node(path.leaf().node), e);
        self.garbage.replaced.push(path.leaf().node);
        let mut last = Path::new();
        last.lv.assign(&path.lv);
        let mut run = Run::new(path, &mut last, d);
        self.leaf_run(&mut run, e);
        let new = self.underflow(&mut run);
        self.settle_above(&mut run, new);
    }

    /// [`StoreKind::Spanning`](super::StoreKind::Spanning): `[first, last]` crosses
    /// leaves. Every subtree strictly between the paths to `first` and `last` is covered
    /// and dropped; the two boundary leaves become one run (which may underflow, fit, or
    /// overflow), rebuilt upward along both paths.
    pub(super) fn spanning(
        &mut self,
        first_path: &mut Path,
        first: usize,
        last: usize,
        word: usize,
    ) {
        let mut last_path = Path::new();
        self.descend(last, &mut last_path);
        let h = first_path.height();
        let mut removed = 0;
        for m in 0..h - 1 {
            let (a, b) = (first_path.lv[m], last_path.lv[m]);
            let (ty, an) = (a.node.ty(), self.node(a.node));
            let items = an.items(ty, a.max);
            if a.node == b.node {
                for it in &items[(a.off + 1).min(b.off)..b.off] {
                    removed += self.collect_subtree(NodePtr(it.slot), it.piv);
                }
            } else {
                for it in &items[a.off + 1..] {
                    removed += self.collect_subtree(NodePtr(it.slot), it.piv);
                }
                let bitems = self.node(b.node).items(ty, b.max);
                for it in &bitems[..b.off] {
                    removed += self.collect_subtree(NodePtr(it.slot), it.piv);
                }
            }
        }
        let (l, r) = (*first_path.leaf(), *last_path.leaf());
        let (ln, rn) = (self.node(l.node), self.node(r.node));
        let ty = NodeType::Leaf;
        let e = Edit {
            first,
            last,
            word,
            of: l.off,
            ol: r.off,
            r_min: ln.slot_range(ty, l.min, l.max, l.off).0,
            r_max: rn.pivot_or_max(ty, r.off, r.max),
            end: ln.end(ty, l.max),
            new_end: 0,
        };
        // What leaves with the two boundary leaves' covered slots.
        // Relaxed: writer-side reads.
        let slot = |n: &Node, i: usize| n.slot(ty, i).load(Ordering::Relaxed);
        let mut added = (word != 0) as usize;
        for i in e.of..e.end {
            let w = slot(ln, i);
            if w != 0 {
                removed += 1;
                if i == e.of && e.keep_left() {
                    added += 1;
                } else {
                    self.garbage.values.push(w);
                }
            }
        }
        for i in 0..=e.ol {
            let w = slot(rn, i);
            if w != 0 {
                removed += 1;
                if i == e.ol && e.keep_right() {
                    added += 1;
                } else {
                    self.garbage.values.push(w);
                }
            }
        }
        self.add_len(added, removed);
        self.garbage.replaced.push(l.node);
        self.garbage.replaced.push(r.node);
        let mut run = Run::new(first_path, &mut last_path, h - 1);
        self.leaf_run(&mut run, &e);
        let new = self.balance(&mut run);
        self.settle_above(&mut run, new);
    }
}
