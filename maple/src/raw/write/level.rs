//! The shared rebuild steps: what happens to one level of the tree when a write replaces
//! nodes on it, and how the change climbs to the highest level it reaches.
//!
//! A [`Run`] holds the new items of one level (at the leaves: the boundary leaves with the
//! store applied) and the paths to the first and last node they replace. Settling a run:
//!
//! - [`Writer::balance`] looks at the run and picks one of:
//!   - [`Writer::underflow`]: too few items (or a leaf ending in an empty slot) — absorb a
//!     neighbour, then cut into one or two nodes;
//!   - [`Writer::overflow`]: too many for one node — push into a sibling with room
//!     ([`Writer::push_into_sibling`]), else split evenly;
//!   - otherwise one node;
//! - [`Writer::settle_above`] climbs: while the new nodes replace one node by one node with
//!   the same gap, the change stops there ([`Writer::publish_child`]); otherwise the parent
//!   level becomes the next run ([`Writer::ascend`]) and is balanced in turn, up to the root
//!   ([`Writer::finish_root`]: new levels on top, or lone roots collapsed).
//!
//! Cutting items into nodes ([`plan_into`], [`plan_push`]) and building a level's nodes
//! ([`build_level`]) are shared with bulk construction (`raw::build`).

use rcu::sync::atomic::Ordering;

use super::{Level, Path, Writer};
use crate::raw::node::{
    adopt_children, internal_gap, leaf_gap, Item, Items, Node, NodeImage, NodePtr, NodeType,
    MAX_SLOTS,
};
use crate::raw::stack::StackVec;

/// Most items one level of a rewrite can hold: two boundary nodes with the store's pieces
/// and a neighbour absorbed (a leaf-level run also absorbs the next leaf when it would end
/// in an empty slot).
const RUN_CAP: usize = 4 * MAX_SLOTS;

/// Most nodes one level of a rewrite can produce.
const MAX_NEW: usize = 16;

/// The nodes built for one level, as items of the level above.
pub(crate) type NewNodes = Items<MAX_NEW>;

/// Where a level's items are cut into nodes: the end index of each node.
pub(crate) type Ends = StackVec<usize, MAX_NEW>;

/// The replacement of a contiguous run of nodes on one level.
pub(crate) struct Run<'p> {
    /// The level (0 = the root).
    pub(crate) depth: usize,
    /// Path to the first node replaced (`first.lv[depth]`).
    pub(crate) first: &'p mut Path,
    /// Path to the last node replaced (the same node for a one-node run).
    pub(crate) last: &'p mut Path,
    /// The new items, covering `[first.lv[depth].min, last.lv[depth].max]`.
    pub(crate) items: Items<RUN_CAP>,
}

impl<'p> Run<'p> {
    /// A run at `depth` between the nodes `first` and `last` lead to, with no items yet.
    #[inline(always)]
    pub(crate) fn new(first: &'p mut Path, last: &'p mut Path, depth: usize) -> Run<'p> {
        Run {
            depth,
            first,
            last,
            items: Items::new(),
        }
    }

    /// Whether the run replaces a single node.
    fn single(&self) -> bool {
        self.first.lv[self.depth].node == self.last.lv[self.depth].node
    }

    /// Whether the run ends at `usize::MAX` (the right-most node of its level).
    fn rightmost(&self) -> bool {
        self.last.lv[self.depth].max == usize::MAX
    }

    /// Whether the items end with an empty slot.
    fn ends_empty(&self) -> bool {
        self.items.last().is_some_and(|it| it.slot == 0)
    }
}

/// Which neighbours [`Writer::absorb_right`] may take.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Only a sibling under the same parent.
    Siblings,
    /// The next node of the level, under the same parent or not (a cousin).
    Level,
}

impl Writer<'_> {
    /// The node type of `run`'s level.
    fn run_type(&self, run: &Run<'_>) -> NodeType {
        self.type_at(run.depth, run.first.height())
    }

    /// Cut `run` into nodes and build them: the left node filled (`Some(true)`), the right
    /// one filled (`Some(false)`) after a push into a sibling, or evenly (`None`).
    fn cut(&mut self, run: &Run<'_>, push: Option<bool>) -> NewNodes {
        let ty = self.run_type(run);
        let mut ends = Ends::new();
        match push {
            Some(left_full) => plan_push(
                &run.items,
                ty.slots(),
                ty.min_occupancy(),
                ty.is_leaf(),
                left_full,
                &mut ends,
            ),
            None => plan_into(&run.items, ty.slots(), ty.is_leaf(), &mut ends),
        }
        self.build_nodes(&run.items, &ends, ty, run.first.lv[run.depth].min)
    }

    /// Build the nodes of one level from `items` cut at `ends` (see [`build_level`]).
    fn build_nodes(
        &mut self,
        items: &[Item],
        ends: &[usize],
        ty: NodeType,
        min: usize,
    ) -> NewNodes {
        let mut out = NewNodes::new();
        let stash = &mut *self.stash;
        let built = &mut self.garbage.built;
        // SAFETY: the stash hands out exclusively owned node memory; internal items point at
        // nodes the writer handles (live, by the type's invariant), which the new nodes adopt.
        unsafe {
            build_level(
                items,
                ends,
                ty,
                min,
                self.tree.alloc,
                &mut || stash.take(),
                &mut |it| {
                    built.push(NodePtr(it.slot));
                    out.push(it);
                },
            )
        };
        out
    }

    /// Settle a level and pick how: absorb a neighbour, push or split, or one node.
    pub(crate) fn balance(&mut self, run: &mut Run<'_>) -> NewNodes {
        if run.depth == 0 {
            return self.cut(run, None);
        }
        let ty = self.run_type(run);
        let n = run.items.len();
        if (ty.is_leaf() && run.ends_empty() && !run.rightmost()) || n < ty.underflow_below() {
            self.underflow(run)
        } else if n > ty.slots() {
            self.overflow(run)
        } else {
            self.cut(run, None)
        }
    }

    /// A leaf other than the right-most may not end in an empty slot: give the empty range
    /// to the next leaf, which starts with an entry (empties are merged).
    fn hand_over_trailing_empty(&mut self, run: &mut Run<'_>) {
        if run.depth > 0 && self.run_type(run).is_leaf() && run.ends_empty() && !run.rightmost() {
            let ok = self.absorb_right(run, Scope::Level);
            debug_assert!(ok, "a leaf that is not right-most has a next leaf");
        }
    }

    /// Too few items: absorb the next sibling, else the previous one, else the next cousin
    /// (as the kernel's `mas_rebalance` does), then cut into one or two nodes.
    pub(crate) fn underflow(&mut self, run: &mut Run<'_>) -> NewNodes {
        self.hand_over_trailing_empty(run);
        let ty = self.run_type(run);
        if run.depth > 0 && run.items.len() < ty.underflow_below() {
            let _ = self.absorb_right(run, Scope::Siblings)
                || self.absorb_left(run)
                || self.absorb_right(run, Scope::Level);
        }
        self.cut(run, None)
    }

    /// Too many items for one node: push into a sibling with room, else split evenly.
    pub(crate) fn overflow(&mut self, run: &mut Run<'_>) -> NewNodes {
        self.hand_over_trailing_empty(run);
        if run.depth > 0 && run.single() {
            if let Some(left_full) = self.push_into_sibling(run) {
                return self.cut(run, Some(left_full));
            }
        }
        self.cut(run, None)
    }

    /// Before splitting, push into a sibling with room (as the kernel's `mas_push_data`
    /// does): the left sibling if it has room, else the right one. Room means the two
    /// nodes' data (counted as last indices) stays below `2 * slots - 2`, one less for
    /// leaves and for the right-most node. Returns which node ends up full (`true`: the
    /// left one), or `None` when neither sibling has room.
    fn push_into_sibling(&mut self, run: &mut Run<'_>) -> Option<bool> {
        let d = run.depth;
        let ty = self.run_type(run);
        let n = run.items.len();
        let room = 2 * ty.slots() - 2 - ty.is_leaf() as usize - run.rightmost() as usize;
        let fits = |sib: usize| (sib - 1) + (n - 1) < room;
        let p = run.first.lv[d - 1];
        let (pty, pn) = (p.node.ty(), self.node(p.node));
        let sibling_len = |off: usize| {
            let it = pn.item(pty, off, p.max);
            let c = NodePtr(it.slot);
            self.node(c).end(c.ty(), it.piv)
        };
        if p.off > 0 && fits(sibling_len(p.off - 1)) {
            return self.absorb_left(run).then_some(true);
        }
        if p.off + 1 < pn.end(pty, p.max)
            && fits(sibling_len(p.off + 1))
            && self.absorb_right(run, Scope::Siblings)
        {
            return Some(false);
        }
        None
    }

    /// Take the node after the run's last one into the run: its next sibling, or with
    /// [`Scope::Level`] the next node of the level under another parent (the path to the
    /// run's last node then moves over; nodes it leaves behind between the two paths are
    /// replaced too).
    fn absorb_right(&mut self, run: &mut Run<'_>, scope: Scope) -> bool {
        let d = run.depth;
        let mut m = d;
        loop {
            if m == 0 {
                return false;
            }
            m -= 1;
            let lv = run.last.lv[m];
            if lv.off + 1 < self.node(lv.node).end(lv.node.ty(), lv.max) {
                break;
            }
            if scope == Scope::Siblings {
                return false;
            }
        }
        for k in m + 1..d {
            let old = run.last.lv[k].node;
            if old != run.first.lv[k].node {
                // No longer at the end of the run: record it now.
                self.garbage.replaced.push(old);
            }
        }
        run.last.lv[m].off += 1;
        for k in m + 1..=d {
            run.last.lv[k] = self.child(&run.last.lv[k - 1]);
        }
        let next = run.last.lv[d];
        self.garbage.replaced.push(next.node);
        let (ty, nn) = (next.node.ty(), self.node(next.node));
        let end = nn.end(ty, next.max);
        if ty.is_leaf() {
            // The seam may join two empty ranges (a trailing empty handed over).
            run.items.push_leaf(nn.item(ty, 0, next.max));
            run.items.extend_from_node(nn, ty, next.max, 1, end);
        } else {
            run.items.extend_from_node(nn, ty, next.max, 0, end);
        }
        true
    }

    /// Take the previous sibling (same parent) of the run's first node into the run.
    fn absorb_left(&mut self, run: &mut Run<'_>) -> bool {
        let d = run.depth;
        if d == 0 || run.first.lv[d - 1].off == 0 {
            return false;
        }
        run.first.lv[d - 1].off -= 1;
        let sib = self.child(&run.first.lv[d - 1]);
        run.first.lv[d] = sib;
        self.garbage.replaced.push(sib.node);
        let (ty, sn) = (sib.node.ty(), self.node(sib.node));
        let items = sn.items(ty, sib.max);
        // A sibling on the left is not right-most, so it ends with an entry: no empties to
        // merge at the seam.
        debug_assert!(!ty.is_leaf() || items.last().is_some_and(|it| it.slot != 0));
        run.items.insert_front(&items);
        true
    }

    /// The level below `parent` through its slot `parent.off` (offset 0).
    fn child(&self, parent: &Level) -> Level {
        let (ty, pn) = (parent.node.ty(), self.node(parent.node));
        let (min, max) = pn.slot_range(ty, parent.min, parent.max, parent.off);
        Level {
            // Relaxed: writer-side read.
            node: NodePtr(pn.slot(ty, parent.off).load(Ordering::Relaxed)),
            min,
            max,
            off: 0,
        }
    }

    /// Replace the run's nodes by `new` in the level above: the run becomes the parent
    /// level's items (left part of the first parent, the new nodes, right part of the last
    /// parent), replacing those parents.
    pub(crate) fn ascend(&mut self, run: &mut Run<'_>, new: &NewNodes) {
        let d = run.depth;
        let (pl, pr) = (run.first.lv[d - 1], run.last.lv[d - 1]);
        self.garbage.replaced.push(pl.node);
        if pr.node != pl.node {
            self.garbage.replaced.push(pr.node);
        }
        let ty = pl.node.ty();
        let (ln, rn) = (self.node(pl.node), self.node(pr.node));
        run.items.clear();
        run.items.extend_from_node(ln, ty, pl.max, 0, pl.off);
        run.items.extend_from_slice(new);
        run.items
            .extend_from_node(rn, ty, pr.max, pr.off + 1, rn.end(ty, pr.max));
        run.depth = d - 1;
    }

    /// Climb from a settled level (its new nodes `new`) to the highest level the write
    /// changes, and publish there with one store.
    pub(crate) fn settle_above(&mut self, run: &mut Run<'_>, mut new: NewNodes) {
        loop {
            let d = run.depth;
            if d == 0 {
                self.finish_root(new);
                return;
            }
            if run.single() && new.len() == 1 {
                let parent = run.first.lv[d - 1];
                let (pty, pn) = (parent.node.ty(), self.node(parent.node));
                // Relaxed: writer-side read.
                if !self.tree.alloc || pn.gap(pty, parent.off).load(Ordering::Relaxed) == new[0].gap
                {
                    // SAFETY: built by this write over exactly the replaced node's range
                    // (a one-node run), with the same gap.
                    unsafe { self.publish_child(&parent, new[0]) };
                    return;
                }
            }
            self.ascend(run, &new);
            new = self.balance(run);
        }
    }

    /// The root level is built (`new`): add levels on top while it has more than one node,
    /// collapse lone roots (an internal root with one child, a leaf root holding nothing),
    /// and publish the root.
    fn finish_root(&mut self, mut items: NewNodes) {
        let ity = self.tree.internal_type();
        while items.len() > 1 {
            let mut ends = Ends::new();
            plan_into(&items, ity.slots(), false, &mut ends);
            items = self.build_nodes(&items, &ends, ity, 0);
        }
        let mut root = NodePtr(items[0].slot);
        loop {
            let (ty, n) = (root.ty(), self.node(root));
            if n.end(ty, usize::MAX) != 1 {
                break;
            }
            // Relaxed: writer-side read.
            let only = n.slot(ty, 0).load(Ordering::Relaxed);
            if ty.is_leaf() && only != 0 {
                break;
            }
            self.discard(root);
            if ty.is_leaf() {
                // SAFETY: the empty tree; everything replaced is recorded as garbage.
                unsafe { self.publish_root(0) };
                return;
            }
            root = NodePtr(only);
        }
        // SAFETY: the root and its subtree are built (fresh nodes) or live (old ones they
        // adopted); everything replaced is recorded as garbage.
        unsafe { self.publish_root(root.0) };
    }
}

/// Build the nodes of one level: `items` cut at `ends` (node `j` holds
/// `items[ends[j - 1]..ends[j]]`), the first node starting at `min`. Each node's memory
/// comes from `mem`; internal nodes adopt their children. Every new node is reported to
/// `out` as an item of the level above (last index, node pointer, and in allocation trees
/// its largest free run). The engine's one level builder.
///
/// # Safety
/// Every call of `mem` returns exclusively owned memory for a node; internal items point
/// at live nodes owned by the caller.
pub(crate) unsafe fn build_level(
    items: &[Item],
    ends: &[usize],
    ty: NodeType,
    min: usize,
    alloc: bool,
    mem: &mut dyn FnMut() -> *mut Node,
    out: &mut dyn FnMut(Item),
) {
    let mut start = 0;
    let mut nmin = min;
    for &e in ends {
        let part = &items[start..e];
        let max = part[part.len() - 1].piv;
        // SAFETY: the caller's contract on `mem`.
        let p = unsafe { NodeImage::from_items(ty, part).write(mem(), max) };
        if !ty.is_leaf() {
            // SAFETY: the caller's contract on internal items.
            unsafe { adopt_children(p, part) };
        }
        let gap = match (alloc, ty) {
            (false, _) | (_, NodeType::Range) => 0,
            (true, NodeType::Leaf) => leaf_gap(part, nmin),
            (true, NodeType::ARange) => internal_gap(part),
        };
        out(Item {
            piv: max,
            slot: p.0,
            gap,
        });
        nmin = max.wrapping_add(1);
        start = e;
    }
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

/// Two nodes after a push into a sibling: the left (`left_full`) or the right node gets
/// `cap - 1` items, the other the rest; a leaf never ends in an empty item. Falls back to
/// an even cut when that would leave a node below `min`.
pub(crate) fn plan_push(
    items: &[Item],
    cap: usize,
    min: usize,
    leaf: bool,
    left_full: bool,
    out: &mut Ends,
) {
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
