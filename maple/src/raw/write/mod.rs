//! The write paths. Read them top-down:
//!
//! 1. [`Writer::store`] (here): widen a hole punch over its empty neighbours, descend to the
//!    leaf, then **classify** ([`classify`]) the store into a [`Plan`]: the kind of write
//!    with what it needs (as the kernel's `mas_wr_store_type` does), and run the one
//!    function of that kind in a single `match`.
//! 2. [`kinds`]: one function per kind. In RCU mode ([`Mode::Rcu`], readers may be
//!    present) a published node changes in place only where one word store publishes the
//!    change: an exact fit (one slot), and an append to a plain tree's leaf (the words past
//!    the leaf's end are prepared, then one pivot store publishes them); every other kind
//!    builds fresh nodes privately and publishes them with **one** Release store (a parent
//!    slot or the root). Without readers ([`Mode::Exclusive`], `&mut` access) slot stores
//!    and appends to any tree also change the leaf in place.
//! 3. [`level`]: the shared rebuild steps of the kinds that build more than one leaf —
//!    gather a level's new items into a [`level::Run`], settle it (push into a sibling, split,
//!    absorb a neighbour), cut and build its nodes, replace them in the parent level, and
//!    publish at the highest changed level.
//!
//! A write records what it unlinked in [`Garbage`]; the session (`raw::session`) marks
//! the replaced nodes dead and retires them (or frees them in exclusive mode) afterwards.
//!
//! # Safety as a type invariant
//! A [`Writer`] is created by one `unsafe` constructor ([`Writer::new`]) whose contract
//! establishes the type's `# Invariants`: it is the tree's one writer. Its methods are safe:
//! reading any node it reached from the root or built itself is sound by that invariant.
//! `unsafe` remains where a real hazard is: publishing a subtree ([`Writer::publish_child`],
//! [`Writer::publish_root`]), writing fresh node memory, the entry word a store hands to
//! the tree ([`Writer::store`]), and (in the session) the dead marks and reclamation.

mod classify;
mod kinds;
pub(crate) mod level;

use rcu::sync::atomic::Ordering;

use super::node::{Item, Node, NodePtr, NodeType, MAX_HEIGHT};
use super::pool::Stash;
use super::stack::StackVec;
use super::walk::{self, Owned, Visit};
use super::RawTree;

pub(crate) use classify::Plan;

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

/// How many times each [`StoreKind`] ran, and the last one (tests and the `stats`
/// feature only: production writes pay nothing for it).
#[cfg(any(test, feature = "stats"))]
pub(crate) struct KindStats {
    /// 1 + the last kind run, 0 before any write.
    last: rcu::sync::atomic::AtomicUsize,
    counts: [rcu::sync::atomic::AtomicUsize; StoreKind::COUNT],
}

#[cfg(any(test, feature = "stats"))]
impl Default for KindStats {
    fn default() -> Self {
        KindStats {
            last: rcu::sync::atomic::AtomicUsize::new(0),
            counts: core::array::from_fn(|_| rcu::sync::atomic::AtomicUsize::new(0)),
        }
    }
}

#[cfg(any(test, feature = "stats"))]
impl KindStats {
    /// Record that `kind` ran.
    pub(crate) fn note(&self, kind: StoreKind) {
        // Relaxed: statistics, read after the write returned on the same thread or under
        // the lock.
        self.last.store(kind as usize + 1, Ordering::Relaxed);
        // Relaxed: as above.
        self.counts[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The last kind run, if any.
    pub(crate) fn last(&self) -> Option<StoreKind> {
        // Relaxed: see `note`.
        let k = self.last.load(Ordering::Relaxed);
        StoreKind::ALL.get(k.wrapping_sub(1)).copied()
    }

    /// How many times each kind ran, in [`StoreKind::ALL`] order.
    pub(crate) fn counts(&self) -> [usize; StoreKind::COUNT] {
        // Relaxed: see `note`.
        core::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed))
    }
}

/// Whether readers may be present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Concurrent readers possible: copy on write, one publishing store, retire.
    Rcu,
    /// `&mut` access: no readers, in-place changes allowed, free directly.
    Exclusive,
}

/// What one write leaves for the session to dispose of once it has published.
#[derive(Default, Debug)]
pub(crate) struct Garbage {
    /// Nodes the write unlinked (each once): marked dead and retired in RCU mode, freed in
    /// exclusive mode.
    pub(crate) replaced: Vec<NodePtr>,
    /// Entry words the write removed from a slot; the session's duplicate counts decide
    /// which of them left their last slot (and are retired or dropped).
    pub(crate) values: Vec<usize>,
    /// Words that now sit in one more slot than before (a store split their range in
    /// two): the session counts them so a shared value is retired only with its last slot.
    pub(crate) dups: Vec<usize>,
    /// Nodes built by the write in progress (scratch: tells fresh nodes from old ones).
    built: Vec<NodePtr>,
}

impl Garbage {
    /// Forget the last write's lists, keeping their capacity.
    pub(crate) fn clear(&mut self) {
        self.replaced.clear();
        self.values.clear();
        self.dups.clear();
        self.built.clear();
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
}

impl Path {
    pub(crate) fn new() -> Path {
        Path {
            lv: StackVec::new(),
        }
    }

    /// Number of levels (the tree's height).
    #[inline]
    pub(crate) fn height(&self) -> usize {
        self.lv.len()
    }

    /// The leaf level.
    #[inline]
    pub(crate) fn leaf(&self) -> &Level {
        &self.lv[self.lv.len() - 1]
    }
}

impl Visit for Path {
    #[inline(always)]
    fn level(&mut self, node: NodePtr, min: usize, max: usize, off: usize) {
        self.lv.push(Level {
            node,
            min,
            max,
            off,
        });
    }
}

/// The writer's view of a tree during one write.
///
/// # Invariants
/// For the writer's lifetime:
/// - it is the only thread storing to `tree` or to any node reachable from it, and in
///   [`Mode::Exclusive`] no reader exists either;
/// - every node reachable from `tree.root` is live (allocated, initialised) and stays so:
///   nothing frees a node before the session disposes of this write's garbage;
/// - every [`NodePtr`] the writer handles (in a [`Path`], a [`level::Run`], an [`Item`] of an
///   internal level) was read from the tree by this writer or built by it in this write,
///   so it points to a live node.
pub(crate) struct Writer<'w> {
    tree: &'w RawTree,
    mode: Mode,
    garbage: &'w mut Garbage,
    stash: &'w mut Stash,
}

impl<'w> Writer<'w> {
    /// The writer of `tree` for one write.
    ///
    /// # Safety
    /// The caller establishes the type's invariants: it holds the tree's lock (or `&mut`
    /// access for [`Mode::Exclusive`], with no reader in existence) for `'w`, and disposes
    /// of `garbage` only after the write returned.
    pub(crate) unsafe fn new(
        tree: &'w RawTree,
        mode: Mode,
        garbage: &'w mut Garbage,
        stash: &'w mut Stash,
    ) -> Writer<'w> {
        garbage.clear();
        // INVARIANT: the caller's contract.
        Writer {
            tree,
            mode,
            garbage,
            stash,
        }
    }

    /// Store `word` (0 = empty) over `[first, last]` (`first <= last`); returns the kind
    /// that ran.
    ///
    /// # Safety
    /// `word` is 0 or an entry word the tree owns from now on.
    pub(crate) unsafe fn store(&mut self, first: usize, last: usize, word: usize) -> StoreKind {
        debug_assert!(first <= last);
        if self.root() == 0 {
            self.root_store(first, last, word);
            return StoreKind::Root;
        }
        let mut path = Path::new();
        self.descend(first, &mut path);
        // SAFETY: the caller's contract on `word`.
        unsafe { self.store_at(&mut path, first, last, word) }
    }

    /// Empty the whole range holding `index`, if it holds an entry: returns the range, the
    /// entry word and the kind of store that ran. One descent (a separate lookup and
    /// punch would descend twice).
    pub(crate) fn erase(&mut self, index: usize) -> Option<(usize, usize, usize, StoreKind)> {
        if self.root() == 0 {
            return None;
        }
        let mut path = Path::new();
        self.descend(index, &mut path);
        let leaf = *path.leaf();
        let n = self.node(leaf.node);
        // Relaxed: writer-side read.
        let word = n.slot(NodeType::Leaf, leaf.off).load(Ordering::Relaxed);
        if word == 0 {
            return None;
        }
        let (first, last) = n.slot_range(NodeType::Leaf, leaf.min, leaf.max, leaf.off);
        // The path leads to `first` already (the same slot).
        // SAFETY: storing nothing hands no word to the tree.
        let kind = unsafe { self.store_at(&mut path, first, last, 0) };
        Some((first, last, word, kind))
    }

    /// Store `word` over `[first, last]`; `path` leads to the leaf slot holding `first`.
    ///
    /// # Safety
    /// As for [`Writer::store`].
    unsafe fn store_at(
        &mut self,
        path: &mut Path,
        first: usize,
        last: usize,
        word: usize,
    ) -> StoreKind {
        let (first, last) = if word == 0 {
            self.widen_punch(path, first, last)
        } else {
            (first, last)
        };
        let plan = self.classify(path, first, last, word);
        let kind = plan.kind();
        match plan {
            Plan::NewRoot => self.new_root(word),
            Plan::ExactFit(e) => self.exact_fit(path, &e),
            Plan::SlotStore(e) => self.slot_store(path, &e),
            Plan::Append(e) => self.append(path, &e),
            Plan::NodeStore(e) => self.node_store(path, &e),
            Plan::Split(e) => self.split(path, &e),
            Plan::Rebalance(e) => self.rebalance(path, &e),
            Plan::Spanning => self.spanning(path, first, last, word),
        }
        kind
    }

    /// The root word (Relaxed: only the writer stores it).
    #[inline]
    fn root(&self) -> usize {
        // Relaxed: the writer is the only thread that stores the root.
        self.tree.root.load(Ordering::Relaxed)
    }

    /// Borrow a node the writer handles.
    #[inline(always)]
    fn node(&self, p: NodePtr) -> &'w Node {
        // SAFETY: the type's invariant: every node pointer the writer handles is live for
        // the writer's lifetime.
        unsafe { p.node() }
    }

    /// The type of the nodes at depth `d` of a tree of height `h`.
    #[inline]
    fn type_at(&self, d: usize, h: usize) -> NodeType {
        if d + 1 == h {
            NodeType::Leaf
        } else {
            self.tree.internal_type()
        }
    }

    /// Descend to the leaf holding `index` (the tree is not empty), recording the path.
    fn descend(&self, index: usize, path: &mut Path) {
        path.lv.clear();
        // SAFETY: the type's invariant: the writer reaches only live nodes.
        let found = unsafe { walk::descend(&Owned, self.root(), index, path) };
        debug_assert!(found.is_some(), "the writer never meets a dead node");
    }

    /// The slot `[min, max]` and word holding `index` (the tree is not empty).
    fn slot_of(&self, index: usize) -> (usize, usize, usize) {
        // SAFETY: as in `descend`.
        let f = unsafe { walk::descend(&Owned, self.root(), index, &mut walk::Nothing) };
        let s = f
            .map(|f| f.slot)
            .expect("the writer never meets a dead node");
        (s.min, s.max, s.word)
    }

    /// Widen a hole punch over the empty ranges next to it, so empties stay merged; `path`
    /// leads to `first` (and still does to the widened one). The slot before `first` lies
    /// in the same leaf or ends the previous leaf, which never ends in an empty slot: only
    /// the right side can need a second descent.
    fn widen_punch(&self, path: &mut Path, mut first: usize, mut last: usize) -> (usize, usize) {
        let h = path.height();
        let leaf = *path.leaf();
        let n = self.node(leaf.node);
        let ty = NodeType::Leaf;
        let (lo, _) = n.slot_range(ty, leaf.min, leaf.max, leaf.off);
        // Relaxed: writer-side reads.
        let empty = |i: usize| n.slot(ty, i).load(Ordering::Relaxed) == 0;
        if first > leaf.min {
            // The slot holding `first - 1`.
            let i = if first > lo { leaf.off } else { leaf.off - 1 };
            if empty(i) {
                first = n.slot_range(ty, leaf.min, leaf.max, i).0;
                path.lv[h - 1].off = i;
            }
        }
        if last < usize::MAX {
            if last < leaf.max {
                // The slot holding `last + 1`.
                let mut j = leaf.off;
                while n.pivot_or_max(ty, j, leaf.max) <= last {
                    j += 1;
                }
                if empty(j) {
                    last = n.pivot_or_max(ty, j, leaf.max);
                }
            } else {
                let (_, max, w) = self.slot_of(last + 1);
                if w == 0 {
                    last = max;
                }
            }
        }
        (first, last)
    }

    /// Adjust the length counter.
    fn add_len(&self, added: usize, removed: usize) {
        if added == removed {
            return;
        }
        // Relaxed load/store: only the writer changes the counter; readers of `len()` get
        // some recent value.
        let len = self.tree.len.load(Ordering::Relaxed);
        self.tree
            .len
            .store(len + added - removed, Ordering::Relaxed);
    }

    /// Write `image` (a leaf) as a new node, in memory from the stash.
    fn build(&mut self, image: &mut super::node::NodeImage, max: usize) -> NodePtr {
        let mem = self.stash.take();
        // SAFETY: the stash hands out exclusively owned node memory; the node stays
        // private until a publishing Release store.
        let p = unsafe { image.write(mem, max) };
        self.garbage.built.push(p);
        p
    }

    /// A node that stops being needed: a fresh one goes back to the stash, an old one
    /// (reachable until the write publishes) is replaced.
    fn discard(&mut self, p: NodePtr) {
        if self.garbage.built.contains(&p) {
            self.garbage.built.retain(|&b| b != p);
            // SAFETY: built by this write and never published: nothing else references
            // it, and the writer drops every pointer to it here.
            unsafe { self.stash.give(p.addr()) };
        } else {
            self.garbage.replaced.push(p);
        }
    }

    /// Publish `child` (an item built for the level below) into slot `parent.off` of the
    /// live node `parent`: the one publishing store of a write that changed nodes below
    /// one parent only.
    ///
    /// # Safety
    /// `child.slot` is a node built by this write (fully initialised, never published)
    /// covering exactly the range of the child it replaces, with the same gap in an
    /// allocation tree.
    unsafe fn publish_child(&self, parent: &Level, child: Item) {
        let pn = self.node(parent.node);
        let cn = self.node(NodePtr(child.slot));
        // Relaxed: readers only compare the parent word with the node's own address.
        cn.parent.store(parent.node.0, Ordering::Relaxed);
        // Release: the one publishing store; readers that Acquire-load the slot see the
        // fully built subtree (and every node it reuses, published earlier).
        pn.slot(parent.node.ty(), parent.off)
            .store(child.slot, Ordering::Release);
    }

    /// Publish `root` (0 for an empty tree) as the tree's root and record the height.
    ///
    /// # Safety
    /// `root` is 0 or a node whose whole subtree is built and live; every node it
    /// replaces has been recorded as garbage.
    unsafe fn publish_root(&self, root: usize) {
        let mut h = 0;
        let mut w = root;
        while w != 0 {
            h += 1;
            let p = NodePtr(w);
            if p.is_leaf() {
                break;
            }
            // Relaxed: writer-side read.
            w = self.node(p).slot(p.ty(), 0).load(Ordering::Relaxed);
        }
        if root != 0 {
            // Relaxed: the root's parent word only has to differ from its own address.
            self.node(NodePtr(root)).parent.store(0, Ordering::Relaxed);
        }
        // Release: publishes every store that built the new nodes to readers that load the
        // root with Acquire.
        self.tree.root.store(root, Ordering::Release);
        // Relaxed: informational counter.
        self.tree.height.store(h, Ordering::Relaxed);
    }
}
