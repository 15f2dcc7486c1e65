//! The write paths.
//!
//! A store of `word` over `[first, last]` is first *classified* into a [`StoreKind`] by
//! looking at the leaf (or leaves) it touches, then the one function for that kind runs.
//!
//! In RCU mode ([`Mode::Rcu`], readers may be present) only [`StoreKind::ExactFit`] changes a
//! published node in place, with one word store. Every other kind builds fresh nodes
//! privately through the shared machinery ([`Writer::rebuild`]):
//!
//! 1. the affected leaves are gathered into a *big node* ([`Big`]) of `(pivot, slot)` items
//!    with the store applied (partly covered neighbours trimmed, covered ones dropped,
//!    adjacent empties merged);
//! 2. the big node is fixed up (a trailing empty or an underflow takes in the right
//!    neighbour, else the left; an overflow first tries to push into a sibling) and then cut
//!    into 1..k fresh nodes;
//! 3. the fresh nodes replace the old ones in a big node of the parent level, and so on
//!    upward until a level is unchanged (one node replaced by one node with the same
//!    range and, in allocation trees, the same gap);
//! 4. the result is published with ONE Release store: into the parent slot at that level,
//!    or into the root word;
//! 5. the caller then marks every replaced node dead and retires it, and retires every
//!    overwritten value ([`Garbage`]).
//!
//! In exclusive mode ([`Mode::Exclusive`], `&mut` access: no readers), slot stores and
//! appends also change the leaf in place and replaced nodes are freed at once.

use rcu::sync::atomic::Ordering;

use super::node::{
    build_node_in, decode, internal_gap, leaf_gap, node_end, Decoded, Item, NodePtr, NodeType,
    MAX_HEIGHT, MAX_SLOTS,
};
use super::stack::StackVec;
use super::RawTree;

/// The classes of write, decided before the write runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// The tree was empty: build its first leaf.
    Root,
    /// Same range as an existing slot: swap the one slot word in place.
    ExactFit,
    /// One pivot moves and one slot changes (in place only without readers; a one-leaf
    /// copy in RCU mode).
    SlotStore,
    /// The store cuts the tail off the leaf's last slot (exclusive mode only, in place).
    Append,
    /// Rewrite one leaf that still fits and stays above minimum occupancy.
    NodeStore,
    /// The leaf overflows: push into a sibling or split, upward as needed.
    Split,
    /// The leaf underflows (or would end in an empty slot): merge with a neighbour.
    Rebalance,
    /// The range crosses leaf boundaries: rebuild the two boundary paths and drop
    /// everything between.
    Spanning,
    /// The store covers `0..=usize::MAX`: the tree becomes one leaf (or empty).
    NewRoot,
}

impl StoreKind {
    /// Number of kinds.
    pub const COUNT: usize = 9;
    /// Every kind, in declaration order.
    pub const ALL: [StoreKind; StoreKind::COUNT] = [
        StoreKind::Root,
        StoreKind::ExactFit,
        StoreKind::SlotStore,
        StoreKind::Append,
        StoreKind::NodeStore,
        StoreKind::Split,
        StoreKind::Rebalance,
        StoreKind::Spanning,
        StoreKind::NewRoot,
    ];
}

/// Whether readers may be present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Concurrent readers possible: copy on write, one publishing store, retire.
    Rcu,
    /// `&mut` access: no readers, in-place changes allowed, free directly.
    Exclusive,
}

/// What a write unlinked: nodes to mark dead and retire (or free), values to retire (or
/// drop). Filled by the engine, emptied by the caller after the write has published.
#[derive(Default, Debug)]
pub(crate) struct Garbage {
    pub(crate) nodes: Vec<NodePtr>,
    pub(crate) values: Vec<usize>,
    /// Words that now sit in one more slot than before (a store split their range in
    /// two): the caller counts these so a shared value is retired only with its last slot.
    pub(crate) dup_added: Vec<usize>,
    /// Recycled node allocations the writer builds new nodes from before asking the
    /// allocator (see `raw::pool`): unreferenced, owned by whoever owns this `Garbage`.
    pub(crate) spare: Vec<usize>,
    /// Nodes already unlinked and marked dead whose retirement is deferred so that one
    /// batch carries many (RCU mode; flushed when full and when the write section ends).
    pub(crate) dead: Vec<usize>,
}

impl Drop for Garbage {
    fn drop(&mut self) {
        // SAFETY: the field's invariant: unreferenced node allocations we own.
        unsafe { super::pool::free_all(&self.spare) };
    }
}

impl Garbage {
    /// Empty the lists, keeping their capacity.
    pub(crate) fn clear(&mut self) {
        self.nodes.clear();
        self.values.clear();
        self.dup_added.clear();
    }

    /// Remove duplicate node entries (a node can be recorded from two paths), keeping the
    /// first occurrence and the order (deterministic: loom replays need the same sequence
    /// of dead-marks and retirements in every execution).
    pub(crate) fn dedup(&mut self) {
        if self.nodes.len() <= 32 {
            let mut i = 0;
            while i < self.nodes.len() {
                if self.nodes[..i].contains(&self.nodes[i]) {
                    self.nodes.remove(i);
                } else {
                    i += 1;
                }
            }
        } else {
            let mut seen = std::collections::HashSet::with_capacity(self.nodes.len());
            self.nodes.retain(|n| seen.insert(*n));
        }
    }
}

/// One level of a writer's path: the node, its range and the slot taken.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Level {
    pub(crate) node: NodePtr,
    pub(crate) min: usize,
    pub(crate) max: usize,
    pub(crate) off: usize,
}

/// A root-to-leaf path (`lv[0]` is the root).
#[derive(Clone)]
pub(crate) struct Path {
    pub(crate) lv: StackVec<Level, MAX_HEIGHT>,
    pub(crate) h: usize,
}

impl Path {
    pub(crate) fn new() -> Path {
        Path {
            lv: StackVec::new(),
            h: 0,
        }
    }

    /// Copy `other`'s levels (only the used ones).
    pub(crate) fn copy_from(&mut self, other: &Path) {
        self.lv.clear();
        for &l in other.lv.iter() {
            self.lv.push(l);
        }
        self.h = other.h;
    }

    pub(crate) fn leaf(&self) -> &Level {
        &self.lv[self.h - 1]
    }
}

/// A big node: the items of one level of a rewrite, in index order (two nodes, a few new
/// items and a neighbour: a few dozen items at most).
pub(crate) struct Big {
    items: StackVec<Item, { 4 * MAX_SLOTS }>,
    len: usize,
}

impl Big {
    fn new() -> Big {
        Big {
            items: StackVec::new(),
            len: 0,
        }
    }

    /// Append; in leaves an empty item after an empty one widens it instead.
    #[inline]
    fn push(&mut self, it: Item, leaf: bool) {
        if leaf && it.slot == 0 {
            if let Some(prev) = self.items.last_mut() {
                if prev.slot == 0 {
                    prev.piv = it.piv;
                    return;
                }
            }
        }
        self.items.push(it);
        self.len += 1;
    }

    fn items(&self) -> &[Item] {
        &self.items
    }

    fn clear(&mut self) {
        self.items.clear();
        self.len = 0;
    }

    fn last(&self) -> Item {
        *self
            .items
            .last()
            .expect("maple: empty big node (engine bug)")
    }
}

/// Most nodes one level of a rewrite can produce (a big node of at most 64 items cut into
/// nodes of at least 4).
const MAX_NEW: usize = 16;

/// Node end indices of a rewrite's level.
type Ends = StackVec<usize, MAX_NEW>;

/// New nodes of a rewrite's level, as parent items.
type NewNodes = StackVec<Item, MAX_NEW>;

/// Two nodes after a push into a sibling: the left (`left_full`) or the right node gets
/// `cap - 1` items, the other the rest; a leaf never ends in an empty item.
fn plan_push(items: &[Item], cap: usize, min: usize, leaf: bool, left_full: bool, out: &mut Ends) {
    let s = items.len();
    let mut e = if left_full { cap - 1 } else { s - (cap - 1) };
    if leaf && items[e - 1].slot == 0 {
        if e < cap && s - (e + 1) >= 1 {
            e += 1;
        } else {
            e -= 1;
        }
    }
    if e < min || e > cap || s - e > cap || s - e < min {
        plan_into(items, cap, leaf, out);
        return;
    }
    out.clear();
    out.push(e);
    out.push(s);
}

/// Something a plan can write node end indices into.
pub(crate) trait EndSink {
    fn clear_ends(&mut self);
    fn push_end(&mut self, e: usize);
}

impl EndSink for Vec<usize> {
    fn clear_ends(&mut self) {
        self.clear();
    }
    fn push_end(&mut self, e: usize) {
        self.push(e);
    }
}

impl<const N: usize> EndSink for StackVec<usize, N> {
    fn clear_ends(&mut self) {
        self.clear();
    }
    fn push_end(&mut self, e: usize) {
        self.push(e);
    }
}

/// Cut `items` into nodes of at most `cap` items each, as evenly as possible; a leaf never
/// ends in an empty item unless it is the last node. Returns the end index of each node.
pub(crate) fn plan(items: &[Item], cap: usize, leaf: bool) -> Vec<usize> {
    let mut v = Vec::with_capacity(items.len().div_ceil(cap) + 1);
    plan_into(items, cap, leaf, &mut v);
    v
}

/// [`plan`] into any sink.
pub(crate) fn plan_into(items: &[Item], cap: usize, leaf: bool, ends: &mut impl EndSink) {
    let s = items.len();
    let mut k = s.div_ceil(cap).max(1);
    loop {
        ends.clear_ends();
        let mut start = 0;
        let mut ok = true;
        for j in 1..k {
            // Left-leaning, like the kernel (the left node gets the odd item).
            let mut e = (j * s).div_ceil(k);
            if leaf && e > 0 && items[e - 1].slot == 0 {
                if e + 1 - start <= cap && e + 1 < s {
                    e += 1;
                } else {
                    e -= 1;
                }
            }
            if e <= start || e - start > cap || e >= s {
                ok = false;
                break;
            }
            ends.push_end(e);
            start = e;
        }
        if ok && s - start <= cap && s > start {
            ends.push_end(s);
            return;
        }
        k += 1;
    }
}

/// Build the nodes of `plan` over `items`; returns parent-level items for them.
///
/// # Safety
/// Child pointers in internal items must be live writer-owned nodes.
unsafe fn build_level(
    stash: &mut Vec<usize>,
    items: &[Item],
    ends: &[usize],
    ty: NodeType,
    min: usize,
) -> NewNodes {
    let mut out = NewNodes::new();
    let mut start = 0;
    let mut nmin = min;
    for &e in ends {
        let part = &items[start..e];
        // SAFETY: forwarded from the caller.
        let p = unsafe { build_node_in(stash, ty, part) };
        let gap = if ty.is_leaf() {
            leaf_gap(part, nmin)
        } else {
            internal_gap(part)
        };
        let piv = part[part.len() - 1].piv;
        out.push(Item {
            piv,
            slot: p.0,
            gap,
        });
        nmin = piv.wrapping_add(1);
        start = e;
    }
    out
}

/// The writer's view of a tree during one write.
pub(crate) struct Writer<'t> {
    pub(crate) tree: &'t RawTree,
    pub(crate) mode: Mode,
    pub(crate) g: &'t mut Garbage,
}

impl RawTree {
    /// Store `word` (0 = empty) over `[first, last]`; returns the kind that ran.
    ///
    /// # Safety
    /// The caller is the only writer (holds the lock, or `&mut` for [`Mode::Exclusive`]),
    /// `word` is 0 or owned by the tree from now on, and the caller disposes of `garbage`
    /// after this returns (mark dead + retire, or free in exclusive mode).
    pub(crate) unsafe fn store(
        &self,
        first: usize,
        last: usize,
        word: usize,
        mode: Mode,
        garbage: &mut Garbage,
    ) -> StoreKind {
        debug_assert!(first <= last);
        let mut w = Writer {
            tree: self,
            mode,
            g: garbage,
        };
        // SAFETY: forwarded from the caller.
        let kind = unsafe { w.store(first, last, word) };
        self.note_kind(kind);
        kind
    }
}

impl Writer<'_> {
    /// Relaxed root load: only the writer stores it.
    fn root(&self) -> usize {
        // Relaxed: the writer is the only thread that stores the root.
        self.tree.root.load(Ordering::Relaxed)
    }

    /// Descend to the leaf holding `index`.
    ///
    /// # Safety
    /// The tree must be non-empty and the caller the writer.
    unsafe fn descend(&self, index: usize, p: &mut Path) {
        p.lv.clear();
        p.h = 0;
        let mut w = self.root();
        let (mut min, mut max) = (0usize, usize::MAX);
        loop {
            let node = NodePtr(w);
            let ty = node.ty();
            // SAFETY: reachable nodes are live; only this writer frees them.
            let n = unsafe { node.node() };
            let np = ty.pivots();
            let off = super::walk::slot_index(n, np, index);
            // Relaxed: writer-side reads of writer-written data.
            let lo = if off == 0 {
                min
            } else {
                n.pivot(ty, off - 1).load(Ordering::Relaxed) + 1
            };
            // Relaxed: as above.
            let hi = if off < np {
                n.pivot(ty, off).load(Ordering::Relaxed).min(max)
            } else {
                max
            };
            assert!(
                p.h < MAX_HEIGHT,
                "maple: tree deeper than {MAX_HEIGHT} (engine bug)"
            );
            p.lv.push(Level {
                node,
                min,
                max,
                off,
            });
            p.h += 1;
            if ty.is_leaf() {
                return;
            }
            // Relaxed: as above.
            w = n.slot(ty, off).load(Ordering::Relaxed);
            min = lo;
            max = hi;
        }
    }

    /// The slot `[min, max]` and word holding `index` (writer side).
    ///
    /// # Safety
    /// The caller is the writer.
    unsafe fn slot_of(&self, index: usize) -> (usize, usize, usize) {
        if self.root() == 0 {
            return (0, usize::MAX, 0);
        }
        // SAFETY: non-empty tree, writer.
        let mut p = Path::new();
        // SAFETY: forwarded.
        unsafe { self.descend(index, &mut p) };
        let l = p.leaf();
        // SAFETY: live leaf.
        let d = unsafe { decode(l.node, l.max) };
        let min = if l.off == 0 {
            l.min
        } else {
            d.items[l.off - 1].piv + 1
        };
        (min, d.items[l.off].piv, d.items[l.off].slot)
    }

    /// A hole punch widens over neighbouring empty ranges so empties stay merged. Descends
    /// to `first` into `l` and looks for both neighbours in that leaf, descending again
    /// only for a neighbour in another leaf. On return `l` is the path to the (possibly
    /// widened) `first` whenever that still lies in the same leaf.
    ///
    /// # Safety
    /// The caller is the writer; the tree is non-empty.
    unsafe fn widen_punch(&self, first: &mut usize, last: &mut usize, l: &mut Path) {
        let (f0, l0) = (*first, *last);
        // SAFETY: forwarded.
        unsafe { self.descend(f0, l) };
        let h = l.h;
        let leaf = *l.leaf();
        // SAFETY: live leaf.
        let d = unsafe { decode(leaf.node, leaf.max) };
        let smin = |i: usize| {
            if i == 0 {
                leaf.min
            } else {
                d.items[i - 1].piv + 1
            }
        };
        if f0 > 0 {
            if f0 > leaf.min {
                let i = if f0 > smin(leaf.off) {
                    leaf.off
                } else {
                    leaf.off - 1
                };
                if d.items[i].slot == 0 {
                    *first = smin(i);
                    l.lv[h - 1].off = i;
                }
            } else {
                // SAFETY: writer, non-empty tree.
                let (min, _, w) = unsafe { self.slot_of(f0 - 1) };
                if w == 0 {
                    *first = min;
                }
            }
        }
        if l0 < usize::MAX {
            if l0 < leaf.max {
                let mut j = leaf.off;
                while d.items[j].piv <= l0 {
                    j += 1;
                }
                if d.items[j].slot == 0 {
                    *last = d.items[j].piv;
                }
            } else {
                // SAFETY: writer, non-empty tree.
                let (_, max, w) = unsafe { self.slot_of(l0 + 1) };
                if w == 0 {
                    *last = max;
                }
            }
        }
    }

    /// Classify and run a store.
    ///
    /// # Safety
    /// See [`RawTree::store`].
    unsafe fn store(&mut self, mut first: usize, mut last: usize, word: usize) -> StoreKind {
        let mut l = Path::new();
        // Whether `l` is the path to `first` (a punch descends while widening).
        let mut have_path = false;
        if word == 0 && self.root() != 0 {
            // SAFETY: writer; non-empty tree.
            unsafe { self.widen_punch(&mut first, &mut last, &mut l) };
            have_path = first >= l.leaf().min;
        } else if word == 0 {
            (first, last) = (0, usize::MAX);
        }
        if self.root() == 0 {
            // SAFETY: forwarded.
            unsafe { self.wr_root(first, last, word) };
            return StoreKind::Root;
        }
        if first == 0 && last == usize::MAX {
            // SAFETY: forwarded.
            unsafe { self.wr_new_root(word) };
            return StoreKind::NewRoot;
        }
        if !have_path {
            // SAFETY: non-empty tree, writer.
            unsafe { self.descend(first, &mut l) };
        }
        let leaf = *l.leaf();
        if last > leaf.max {
            // SAFETY: non-empty tree.
            let mut r = Path::new();
            // SAFETY: forwarded.
            unsafe { self.descend(last, &mut r) };
            // SAFETY: forwarded.
            unsafe { self.wr_spanning(&mut l, &mut r, first, last, word) };
            return StoreKind::Spanning;
        }
        // SAFETY: live leaf.
        let d = unsafe { decode(leaf.node, leaf.max) };
        let n = d.len;
        let of = leaf.off;
        let mut ol = of;
        while d.items[ol].piv < last {
            ol += 1;
        }
        let smin = |i: usize| {
            if i == 0 {
                leaf.min
            } else {
                d.items[i - 1].piv + 1
            }
        };
        let keep_left = first > smin(of);
        let keep_right = last < d.items[ol].piv;
        let new_n = of + keep_left as usize + 1 + keep_right as usize + (n - ol - 1);
        let is_root = l.h == 1;
        let rightmost = leaf.max == usize::MAX;
        let ends_empty = word == 0 && last == leaf.max && !rightmost;
        if !keep_left && !keep_right && of == ol {
            let old = d.items[of].slot;
            if old == 0 && word == 0 {
                return StoreKind::ExactFit;
            }
            let same_emptiness = (old == 0) == (word == 0);
            if !ends_empty && (self.mode == Mode::Exclusive || !self.tree.alloc || same_emptiness) {
                // SAFETY: forwarded.
                unsafe { self.wr_exact_fit(&l, word, old) };
                return StoreKind::ExactFit;
            }
        }
        if new_n > NodeType::Leaf.slots() {
            // SAFETY: forwarded.
            unsafe { self.wr_split(&l, &d, first, last, word) };
            StoreKind::Split
        } else if ends_empty || (new_n < NodeType::Leaf.min_occupancy() && !is_root && !rightmost) {
            // SAFETY: forwarded.
            unsafe { self.wr_rebalance(&l, &d, first, last, word) };
            StoreKind::Rebalance
        } else if ol == of + 1 && new_n == n {
            // SAFETY: forwarded.
            unsafe { self.wr_slot_store(&l, &d, first, last, word, keep_left) };
            StoreKind::SlotStore
        } else if self.mode == Mode::Exclusive && of == n - 1 && ol == of && keep_left {
            // SAFETY: forwarded.
            unsafe { self.wr_append(&l, first, last, word, n, keep_right) };
            StoreKind::Append
        } else {
            // SAFETY: forwarded.
            unsafe { self.wr_node_store(&l, &d, first, last, word) };
            StoreKind::NodeStore
        }
    }

    /// Adjust the length counter.
    fn add_len(&self, added: usize, removed: usize) {
        // Relaxed load/store: only the writer changes the counter; readers of `len()` get
        // some recent value.
        let len = self.tree.len.load(Ordering::Relaxed);
        self.tree
            .len
            .store(len + added - removed, Ordering::Relaxed);
    }

    /// Publish a new root (or 0) and recompute the height.
    ///
    /// # Safety
    /// `root` is 0 or a fully built node tree owned by the writer.
    unsafe fn publish_root(&self, root: usize) {
        let mut h = 0;
        let mut w = root;
        while w != 0 {
            h += 1;
            let p = NodePtr(w);
            if p.ty().is_leaf() {
                break;
            }
            // SAFETY: live node of the new tree.
            let n = unsafe { p.node() };
            // Relaxed: writer-side read.
            w = n.slot(p.ty(), 0).load(Ordering::Relaxed);
        }
        if root != 0 {
            // SAFETY: live node.
            let n = unsafe { NodePtr(root).node() };
            // Relaxed: the root's parent word only has to differ from its own address.
            n.parent.store(0, Ordering::Relaxed);
        }
        // Release: publishes every store that built the new nodes to readers that load the
        // root with Acquire.
        self.tree.root.store(root, Ordering::Release);
        // Relaxed: informational counter.
        self.tree.height.store(h, Ordering::Relaxed);
    }

    /// [`StoreKind::Root`]: the tree is empty.
    ///
    /// # Safety
    /// See [`RawTree::store`].
    unsafe fn wr_root(&mut self, first: usize, last: usize, word: usize) {
        if word == 0 {
            return;
        }
        let mut items = Vec::with_capacity(3);
        if first > 0 {
            items.push(Item {
                piv: first - 1,
                slot: 0,
                gap: 0,
            });
        }
        items.push(Item {
            piv: last,
            slot: word,
            gap: 0,
        });
        if last < usize::MAX {
            items.push(Item {
                piv: usize::MAX,
                slot: 0,
                gap: 0,
            });
        }
        // SAFETY: leaf items hold no child pointers.
        let leaf = unsafe { build_node_in(&mut self.g.spare, NodeType::Leaf, &items) };
        self.add_len(1, 0);
        // SAFETY: a fully built leaf.
        unsafe { self.publish_root(leaf.0) };
    }

    /// [`StoreKind::NewRoot`]: `0..=usize::MAX` replaces the whole tree.
    ///
    /// # Safety
    /// See [`RawTree::store`].
    unsafe fn wr_new_root(&mut self, word: usize) {
        let old = NodePtr(self.root());
        // SAFETY: the old root is live and about to be unlinked as a whole.
        let removed = unsafe { self.collect_subtree(old, usize::MAX) };
        self.add_len(0, removed);
        let root = if word == 0 {
            0
        } else {
            self.add_len(1, 0);
            // SAFETY: leaf items hold no child pointers.
            unsafe {
                build_node_in(
                    &mut self.g.spare,
                    NodeType::Leaf,
                    &[Item {
                        piv: usize::MAX,
                        slot: word,
                        gap: 0,
                    }],
                )
            }
            .0
        };
        // SAFETY: fully built.
        unsafe { self.publish_root(root) };
    }

    /// Record a whole subtree (nodes and values) as garbage; returns the values counted.
    ///
    /// # Safety
    /// `node` (with maximum `max`) is live and about to become unreachable.
    unsafe fn collect_subtree(&mut self, node: NodePtr, max: usize) -> usize {
        self.g.nodes.push(node);
        // SAFETY: live.
        let d = unsafe { decode(node, max) };
        let mut count = 0;
        if node.ty().is_leaf() {
            for it in d.items() {
                if it.slot != 0 {
                    self.g.values.push(it.slot);
                    count += 1;
                }
            }
        } else {
            for it in d.items() {
                // SAFETY: children of a live node are live.
                count += unsafe { self.collect_subtree(NodePtr(it.slot), it.piv) };
            }
        }
        count
    }

    /// [`StoreKind::ExactFit`]: swap one slot word in place.
    ///
    /// # Safety
    /// See [`RawTree::store`]; the leaf's slot `off` covers exactly the stored range.
    unsafe fn wr_exact_fit(&mut self, l: &Path, word: usize, old: usize) {
        let leaf = l.leaf();
        let ty = leaf.node.ty();
        // SAFETY: live leaf.
        let n = unsafe { leaf.node.node() };
        // Release: a reader that loads the new word (Acquire) sees the value it points to.
        n.slot(ty, leaf.off).store(word, Ordering::Release);
        if old != 0 {
            self.g.values.push(old);
        }
        self.add_len((word != 0) as usize, (old != 0) as usize);
        if self.tree.alloc && self.mode == Mode::Exclusive {
            // SAFETY: exclusive mode, live path.
            unsafe { self.fix_gaps_in_place(l) };
        }
    }

    /// Recompute the gaps along `l` in place (exclusive mode only: no readers).
    ///
    /// # Safety
    /// Exclusive mode; `l` is a live path.
    unsafe fn fix_gaps_in_place(&mut self, l: &Path) {
        debug_assert_eq!(self.mode, Mode::Exclusive);
        let leaf = l.leaf();
        // SAFETY: live.
        let d = unsafe { decode(leaf.node, leaf.max) };
        let mut gap = leaf_gap(d.items(), leaf.min);
        for k in (0..l.h - 1).rev() {
            let lv = l.lv[k];
            let ty = lv.node.ty();
            // SAFETY: live.
            let n = unsafe { lv.node.node() };
            // Relaxed: no readers in exclusive mode.
            if n.gap(ty, lv.off).load(Ordering::Relaxed) == gap {
                return;
            }
            // Relaxed: no readers in exclusive mode.
            n.gap(ty, lv.off).store(gap, Ordering::Relaxed);
            // SAFETY: live.
            let pd = unsafe { decode(lv.node, lv.max) };
            gap = internal_gap(pd.items());
        }
    }

    /// [`StoreKind::SlotStore`]: one pivot moves and one slot changes.
    ///
    /// # Safety
    /// See [`RawTree::store`]; classification guarantees the shape.
    unsafe fn wr_slot_store(
        &mut self,
        l: &Path,
        d: &Decoded,
        first: usize,
        last: usize,
        word: usize,
        keep_left: bool,
    ) {
        if self.mode == Mode::Rcu {
            // Moving a pivot and changing a slot are two stores; a reader could pair the
            // new slot with the old bounds, so in RCU mode the leaf is copied instead.
            // SAFETY: forwarded; the shape (same slot count) is a valid node store.
            unsafe { self.wr_node_store(l, d, first, last, word) };
            return;
        }
        let leaf = *l.leaf();
        let ty = leaf.node.ty();
        // SAFETY: live leaf.
        let n = unsafe { leaf.node.node() };
        let of = leaf.off;
        // Relaxed stores below: exclusive mode, no readers.
        let old = if keep_left {
            // [smin, first-1] keeps the old value of slot `of`; slot of+1 becomes the new
            // range [first, its old end].
            let old = n.slot(ty, of + 1).load(Ordering::Relaxed);
            n.slot(ty, of + 1).store(word, Ordering::Relaxed);
            n.pivot(ty, of).store(first - 1, Ordering::Relaxed);
            old
        } else {
            // Slot `of` becomes [its start, last]; slot of+1 keeps the rest.
            let old = n.slot(ty, of).load(Ordering::Relaxed);
            n.slot(ty, of).store(word, Ordering::Relaxed);
            n.pivot(ty, of).store(last, Ordering::Relaxed);
            old
        };
        if old != 0 {
            self.g.values.push(old);
        }
        self.add_len((word != 0) as usize, (old != 0) as usize);
        if self.tree.alloc {
            // SAFETY: exclusive mode.
            unsafe { self.fix_gaps_in_place(l) };
        }
    }

    /// [`StoreKind::Append`]: the store lands inside the leaf's last slot, which is cut
    /// into two or three pieces written into the free slots after it (exclusive mode
    /// only; classification guarantees the pieces fit).
    ///
    /// # Safety
    /// See [`RawTree::store`]; exclusive mode; the store lies in the last used slot
    /// (`n_used` of them) and starts after its first index.
    unsafe fn wr_append(
        &mut self,
        l: &Path,
        first: usize,
        last: usize,
        word: usize,
        n_used: usize,
        keep_right: bool,
    ) {
        debug_assert_eq!(self.mode, Mode::Exclusive);
        let leaf = l.leaf();
        let ty = leaf.node.ty();
        // SAFETY: live leaf.
        let n = unsafe { leaf.node.node() };
        let tail = n_used - 1;
        // Relaxed loads and stores: exclusive mode, no readers.
        let old = n.slot(ty, tail).load(Ordering::Relaxed);
        if keep_right {
            // [old | new | old]: the old value sits on both sides now.
            n.slot(ty, n_used + 1).store(old, Ordering::Relaxed);
            n.pivot(ty, n_used).store(last, Ordering::Relaxed);
            if old != 0 {
                self.g.dup_added.push(old);
                self.add_len(1, 0);
            }
        }
        n.slot(ty, n_used).store(word, Ordering::Relaxed);
        n.pivot(ty, tail).store(first - 1, Ordering::Relaxed);
        self.add_len((word != 0) as usize, 0);
        if self.tree.alloc {
            // SAFETY: exclusive mode.
            unsafe { self.fix_gaps_in_place(l) };
        }
    }

    /// [`StoreKind::NodeStore`]: rewrite one leaf. The classification guarantees the new
    /// contents fit one leaf, meet minimum occupancy and do not end in an empty slot, so
    /// the copy replaces the leaf directly (one store into the parent slot or the root),
    /// unless the leaf's largest gap changes in an allocation tree, which must propagate
    /// upward through the shared machinery.
    ///
    /// # Safety
    /// See [`RawTree::store`].
    unsafe fn wr_node_store(
        &mut self,
        l: &Path,
        d: &Decoded,
        first: usize,
        last: usize,
        word: usize,
    ) {
        let leaf = *l.leaf();
        let mut big = Big::new();
        // SAFETY: live leaf.
        unsafe { self.leaf_big(&leaf, &leaf, Some(d), first, last, word, &mut big) };
        debug_assert!(big.len <= NodeType::Leaf.slots());
        let parent = (l.h > 1).then(|| l.lv[l.h - 2]);
        if let Some(p) = parent {
            if self.tree.alloc {
                let pty = p.node.ty();
                // SAFETY: live parent.
                let pn = unsafe { p.node.node() };
                // Relaxed: writer-side read.
                let old_gap = pn.gap(pty, p.off).load(Ordering::Relaxed);
                if leaf_gap(big.items(), leaf.min) != old_gap {
                    let (mut a, mut b) = (Path::new(), Path::new());
                    a.copy_from(l);
                    b.copy_from(l);
                    // SAFETY: forwarded.
                    unsafe { self.rebuild(&mut a, &mut b, &mut big) };
                    return;
                }
            }
        }
        // SAFETY: leaf items hold no child pointers.
        let new = unsafe { build_node_in(&mut self.g.spare, NodeType::Leaf, big.items()) };
        self.g.nodes.push(leaf.node);
        match parent {
            None => {
                // SAFETY: a fully built leaf replacing the root leaf.
                unsafe { self.publish_root(new.0) };
            }
            Some(p) => {
                // SAFETY: fresh node and live parent.
                let (c, pn) = unsafe { (new.node(), p.node.node()) };
                // Relaxed: only compared against the node's own address by readers.
                c.parent.store(p.node.0, Ordering::Relaxed);
                // Release: the one publishing store (see `rebuild`).
                pn.slot(p.node.ty(), p.off).store(new.0, Ordering::Release);
            }
        }
    }

    /// [`StoreKind::Split`]: the leaf overflows; the shared machinery pushes into a sibling
    /// or splits, and splits upward as far as needed (a new root if the root splits).
    ///
    /// # Safety
    /// See [`RawTree::store`].
    unsafe fn wr_split(&mut self, l: &Path, d: &Decoded, first: usize, last: usize, word: usize) {
        // SAFETY: forwarded.
        unsafe { self.rewrite_one_leaf(l, d, first, last, word) };
    }

    /// [`StoreKind::Rebalance`]: the leaf underflows or would end in an empty slot; the
    /// shared machinery merges it with the right neighbour (else the left).
    ///
    /// # Safety
    /// See [`RawTree::store`].
    unsafe fn wr_rebalance(
        &mut self,
        l: &Path,
        d: &Decoded,
        first: usize,
        last: usize,
        word: usize,
    ) {
        // SAFETY: forwarded.
        unsafe { self.rewrite_one_leaf(l, d, first, last, word) };
    }

    /// Rewrite the single leaf at the end of `l` through the shared machinery.
    ///
    /// # Safety
    /// See [`RawTree::store`].
    unsafe fn rewrite_one_leaf(
        &mut self,
        l: &Path,
        d: &Decoded,
        first: usize,
        last: usize,
        word: usize,
    ) {
        let leaf = *l.leaf();
        // SAFETY: live leaf.
        let mut big = Big::new();
        // SAFETY: live leaf.
        unsafe { self.leaf_big(&leaf, &leaf, Some(d), first, last, word, &mut big) };
        let mut a = Path::new();
        a.copy_from(l);
        let mut b = Path::new();
        b.copy_from(l);
        // SAFETY: forwarded.
        unsafe { self.rebuild(&mut a, &mut b, &mut big) };
    }

    /// [`StoreKind::Spanning`]: `[first, last]` crosses leaves. Everything strictly between
    /// the two boundary paths is covered and dropped; the boundary leaves are merged with
    /// the new entry and rebuilt upward.
    ///
    /// # Safety
    /// See [`RawTree::store`].
    unsafe fn wr_spanning(
        &mut self,
        l: &mut Path,
        r: &mut Path,
        first: usize,
        last: usize,
        word: usize,
    ) {
        let mut removed = 0;
        for m in 0..l.h - 1 {
            let (a, b) = (l.lv[m], r.lv[m]);
            // SAFETY: live internal nodes.
            let da = unsafe { decode(a.node, a.max) };
            if a.node == b.node {
                for it in &da.items()[(a.off + 1).min(b.off)..b.off] {
                    // SAFETY: covered subtrees are live and about to be unlinked.
                    removed += unsafe { self.collect_subtree(NodePtr(it.slot), it.piv) };
                }
            } else {
                for it in &da.items()[a.off + 1..] {
                    // SAFETY: as above.
                    removed += unsafe { self.collect_subtree(NodePtr(it.slot), it.piv) };
                }
                // SAFETY: live.
                let db = unsafe { decode(b.node, b.max) };
                for it in &db.items()[..b.off] {
                    // SAFETY: as above.
                    removed += unsafe { self.collect_subtree(NodePtr(it.slot), it.piv) };
                }
            }
        }
        self.add_len(0, removed);
        let (ll, rl) = (*l.leaf(), *r.leaf());
        // SAFETY: live leaves.
        let mut big = Big::new();
        // SAFETY: live leaves.
        unsafe { self.leaf_big(&ll, &rl, None, first, last, word, &mut big) };
        // SAFETY: forwarded.
        unsafe { self.rebuild(l, r, &mut big) };
    }

    /// The leaf-level big node: the items of leaves `a..=b` (the same leaf, or the two
    /// boundary leaves of a spanning store) with `[first, last] = word` applied. Covered
    /// values go to the garbage; the length counter is updated. `a_decoded` is leaf `a`
    /// already decoded by the caller, if it has it.
    ///
    /// # Safety
    /// `a` and `b` are live leaves.
    #[allow(clippy::too_many_arguments)]
    unsafe fn leaf_big(
        &mut self,
        a: &Level,
        b: &Level,
        a_decoded: Option<&Decoded>,
        first: usize,
        last: usize,
        word: usize,
        big: &mut Big,
    ) {
        big.clear();
        let new = Item {
            piv: last,
            slot: word,
            gap: 0,
        };
        let mut pushed_new = false;
        let mut old_count = 0;
        let leaves: [Option<&Level>; 2] = [Some(a), (a.node != b.node).then_some(b)];
        for lv in leaves.into_iter().flatten() {
            let fresh;
            let d = match a_decoded {
                Some(d) if lv.node == a.node => d,
                _ => {
                    // SAFETY: live leaf.
                    fresh = unsafe { decode(lv.node, lv.max) };
                    &fresh
                }
            };
            let mut s = lv.min;
            for it in d.items() {
                let e = it.piv;
                let start = s;
                s = e.wrapping_add(1);
                if it.slot != 0 {
                    old_count += 1;
                }
                if e < first {
                    big.push(*it, true);
                } else if start > last {
                    if !pushed_new {
                        big.push(new, true);
                        pushed_new = true;
                    }
                    big.push(*it, true);
                } else {
                    if start < first {
                        big.push(
                            Item {
                                piv: first - 1,
                                slot: it.slot,
                                gap: 0,
                            },
                            true,
                        );
                        if e > last && it.slot != 0 {
                            // Kept on both sides: the value now sits in two slots.
                            self.g.dup_added.push(it.slot);
                        }
                    }
                    if e > last {
                        if !pushed_new {
                            big.push(new, true);
                            pushed_new = true;
                        }
                        big.push(
                            Item {
                                piv: e,
                                slot: it.slot,
                                gap: 0,
                            },
                            true,
                        );
                    }
                    if start >= first && e <= last && it.slot != 0 {
                        self.g.values.push(it.slot);
                    }
                }
            }
        }
        if !pushed_new {
            big.push(new, true);
        }
        let new_count = big.items().iter().filter(|it| it.slot != 0).count();
        self.add_len(new_count, old_count);
    }

    /// Take the level-order successor of the run's right end at depth `d` into the run.
    /// With `same_parent`, only a sibling under the same parent qualifies.
    ///
    /// # Safety
    /// `r` is a live path.
    unsafe fn extend_right(
        &mut self,
        r: &mut Path,
        d: usize,
        big: &mut Big,
        same_parent: bool,
    ) -> bool {
        let mut m = d;
        loop {
            if m == 0 || (same_parent && m + 1 < d) {
                return false;
            }
            m -= 1;
            let lv = r.lv[m];
            // SAFETY: live.
            if lv.off + 1 < unsafe { node_end(lv.node, lv.max) } {
                break;
            }
            if same_parent {
                return false;
            }
        }
        for k in m + 1..d {
            self.g.nodes.push(r.lv[k].node);
        }
        r.lv[m].off += 1;
        for k in m + 1..=d {
            let p = r.lv[k - 1];
            // SAFETY: live.
            let pd = unsafe { decode(p.node, p.max) };
            let min = if p.off == 0 {
                p.min
            } else {
                pd.items[p.off - 1].piv + 1
            };
            r.lv[k] = Level {
                node: NodePtr(pd.items[p.off].slot),
                min,
                max: pd.items[p.off].piv,
                off: 0,
            };
        }
        let nb = r.lv[d];
        self.g.nodes.push(nb.node);
        // SAFETY: live.
        let dd = unsafe { decode(nb.node, nb.max) };
        let leaf = nb.node.ty().is_leaf();
        for it in dd.items() {
            big.push(*it, leaf);
        }
        if leaf {
            let c = dd.items().iter().filter(|it| it.slot != 0).count();
            self.add_len(c, c);
        }
        true
    }

    /// Take the left sibling (same parent) of the run's left end at depth `d` into the run.
    ///
    /// # Safety
    /// `l` is a live path.
    unsafe fn extend_left(&mut self, l: &mut Path, d: usize, big: &mut Big) -> bool {
        if d == 0 || l.lv[d - 1].off == 0 {
            return false;
        }
        l.lv[d - 1].off -= 1;
        let p = l.lv[d - 1];
        // SAFETY: live.
        let pd = unsafe { decode(p.node, p.max) };
        let min = if p.off == 0 {
            p.min
        } else {
            pd.items[p.off - 1].piv + 1
        };
        let sib = Level {
            node: NodePtr(pd.items[p.off].slot),
            min,
            max: pd.items[p.off].piv,
            off: 0,
        };
        l.lv[d] = sib;
        self.g.nodes.push(sib.node);
        // SAFETY: live.
        let dd = unsafe { decode(sib.node, sib.max) };
        let leaf = sib.node.ty().is_leaf();
        let mut nb = Big::new();
        for it in dd.items().iter().chain(big.items()) {
            nb.push(*it, leaf);
        }
        *big = nb;
        true
    }

    /// Number of used slots in the sibling at `off` of the node at depth `d - 1` of `p`.
    ///
    /// # Safety
    /// `p` is a live path.
    unsafe fn sibling_len(&self, p: &Path, d: usize, off: usize) -> usize {
        let lv = p.lv[d - 1];
        // SAFETY: live.
        let pd = unsafe { decode(lv.node, lv.max) };
        let it = pd.items[off];
        // SAFETY: live child.
        unsafe { node_end(NodePtr(it.slot), it.piv) }
    }

    /// The shared rebuild: replace the run of nodes between `l` and `r` at the leaf level
    /// by `big`, fixing up and propagating upward, then publish with one store.
    ///
    /// # Safety
    /// See [`RawTree::store`]; `l` and `r` are live paths of the same height, `big` covers
    /// exactly `[l.leaf().min, r.leaf().max]`.
    unsafe fn rebuild(&mut self, l: &mut Path, r: &mut Path, big: &mut Big) {
        let h = l.h;
        let alloc = self.tree.alloc;
        let mut d = h - 1;
        let mut single = l.lv[d].node == r.lv[d].node;
        // Set when an overflow pushed into a sibling: Some(true) = the left node is filled.
        let mut push: Option<bool> = None;
        loop {
            let leaf = d == h - 1;
            let ty = if leaf {
                NodeType::Leaf
            } else {
                self.tree.internal_type()
            };
            self.g.nodes.push(l.lv[d].node);
            self.g.nodes.push(r.lv[d].node);
            if d > 0 {
                if leaf && big.last().slot == 0 && r.lv[d].max != usize::MAX {
                    // A leaf may not end in an empty slot: give the empty range to the
                    // right neighbour (which starts with an entry).
                    // SAFETY: live path.
                    let ok = unsafe { self.extend_right(r, d, big, false) };
                    debug_assert!(ok);
                    single = false;
                }
                if big.len < ty.min_occupancy() && r.lv[d].max != usize::MAX {
                    // SAFETY: live paths.
                    let ok = unsafe {
                        self.extend_right(r, d, big, true)
                            || self.extend_left(l, d, big)
                            || self.extend_right(r, d, big, false)
                    };
                    debug_assert!(ok);
                    single = false;
                } else if big.len > ty.slots() && single {
                    // Overflow: before splitting, push into a sibling with room (as the
                    // kernel does): the sibling ends up nearly full, the rest stays.
                    // Room means the two nodes' data (counted as last indices) stays
                    // below 2 * slots - 2, one less for leaves and right-most nodes.
                    let room =
                        2 * ty.slots() - 2 - leaf as usize - (r.lv[d].max == usize::MAX) as usize;
                    let fits = |sib: usize, big: usize| (sib - 1) + (big - 1) < room;
                    let lo = l.lv[d - 1].off;
                    // SAFETY: live paths.
                    unsafe {
                        if lo > 0 && fits(self.sibling_len(l, d, lo - 1), big.len) {
                            if self.extend_left(l, d, big) {
                                single = false;
                                push = Some(true);
                            }
                        } else {
                            let ro = r.lv[d - 1].off;
                            let pe = node_end(r.lv[d - 1].node, r.lv[d - 1].max);
                            if ro + 1 < pe
                                && fits(self.sibling_len(r, d, ro + 1), big.len)
                                && self.extend_right(r, d, big, true)
                            {
                                single = false;
                                push = Some(false);
                            }
                        }
                    }
                }
            }
            let run_min = l.lv[d].min;
            debug_assert_eq!(big.last().piv, r.lv[d].max);
            let mut ends = Ends::new();
            match push.take() {
                Some(left_full) => plan_push(
                    big.items(),
                    ty.slots(),
                    ty.min_occupancy(),
                    leaf,
                    left_full,
                    &mut ends,
                ),
                None => plan_into(big.items(), ty.slots(), leaf, &mut ends),
            }
            // SAFETY: internal items point at live writer-owned nodes.
            let new = unsafe { build_level(&mut self.g.spare, big.items(), &ends, ty, run_min) };
            if d == 0 {
                // SAFETY: fresh nodes.
                unsafe { self.finish_root(new) };
                return;
            }
            let pl = l.lv[d - 1];
            let pr = r.lv[d - 1];
            if single && new.len() == 1 {
                let pty = pl.node.ty();
                // SAFETY: live parent.
                let pn = unsafe { pl.node.node() };
                // Relaxed: writer-side read.
                let same_gap = !alloc || pn.gap(pty, pl.off).load(Ordering::Relaxed) == new[0].gap;
                if same_gap {
                    // SAFETY: fresh node.
                    let child = unsafe { NodePtr(new[0].slot).node() };
                    // Relaxed: only compared against the node's own address by readers.
                    child.parent.store(pl.node.0, Ordering::Relaxed);
                    // Release: the one publishing store; readers that Acquire-load the
                    // slot see the fully built subtree.
                    pn.slot(pty, pl.off).store(new[0].slot, Ordering::Release);
                    return;
                }
            }
            // SAFETY: live parents.
            let ld = unsafe { decode(pl.node, pl.max) };
            big.clear();
            let nb = &mut *big;
            for it in &ld.items()[..pl.off] {
                nb.push(*it, false);
            }
            for it in new.iter() {
                nb.push(*it, false);
            }
            let rd = if pr.node == pl.node {
                ld
            } else {
                // SAFETY: live.
                unsafe { decode(pr.node, pr.max) }
            };
            for it in &rd.items()[pr.off + 1..] {
                nb.push(*it, false);
            }
            single = pl.node == pr.node;
            d -= 1;
        }
    }

    /// Turn the rebuilt top level into the new root: add levels while more than one node,
    /// collapse single-child roots, and publish.
    ///
    /// # Safety
    /// `items` point at fresh writer-owned nodes.
    unsafe fn finish_root(&mut self, mut items: NewNodes) {
        let ity = self.tree.internal_type();
        let mut fresh: StackVec<NodePtr, { 2 * MAX_NEW }> = StackVec::new();
        for it in items.iter() {
            fresh.push(NodePtr(it.slot));
        }
        while items.len() > 1 {
            let mut ends = Ends::new();
            plan_into(&items, ity.slots(), false, &mut ends);
            // SAFETY: children are live writer-owned nodes.
            items = unsafe { build_level(&mut self.g.spare, &items, &ends, ity, 0) };
            for it in items.iter() {
                fresh.push(NodePtr(it.slot));
            }
        }
        let mut root = NodePtr(items[0].slot);
        loop {
            // SAFETY: live node.
            let d = unsafe { decode(root, usize::MAX) };
            let lone = d.len == 1;
            if !lone {
                break;
            }
            let next = if root.ty().is_leaf() {
                if d.items[0].slot != 0 {
                    break;
                }
                None
            } else {
                Some(NodePtr(d.items[0].slot))
            };
            if fresh.contains(&root) {
                // SAFETY: never published; only this writer knows it.
                unsafe { root.free() };
            } else {
                self.g.nodes.push(root);
            }
            match next {
                Some(c) => root = c,
                None => {
                    // SAFETY: empty tree.
                    unsafe { self.publish_root(0) };
                    return;
                }
            }
        }
        // SAFETY: fully built tree.
        unsafe { self.publish_root(root.0) };
    }
}
