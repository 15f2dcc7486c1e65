//! Gap search: the lowest / highest empty run of a given size (and alignment) inside a
//! window.
//!
//! Allocation trees keep, for every child of an arange_64 node, the size of the largest
//! empty run in that child's subtree, so a search descends only into children whose gap is
//! big enough: O(height) node visits to find a fit, plus backtracking where the window cuts
//! through a subtree (the run may lie outside it) or where an alignment decides (a gap of
//! at least `size` may still hold no aligned start; a gap of `size + align - 1` always
//! does). Plain trees have no gaps; the same search then visits every child that
//! intersects the window (a scan of the window in the worst case).
//!
//! Empty ranges are always merged (within and across leaves), so a free run is exactly one
//! empty leaf slot: a search never has to join slots.
//!
//! # Reading nodes in place
//! The search reads each node's words where they are, through the same per-word atomics
//! as the point walk (`walk.rs`), and only the slots it needs: it starts at the slot that
//! holds the window's edge (found by a few pivot probes) and moves one slot at a time
//! towards the other edge, stopping at the window's end or at the node's data end. Nothing
//! is copied. On entering a node it prefetches the node's other cache lines, and on
//! entering a leaf the neighbour leaf it would visit next, so that misses overlap.
//! Orderings:
//! - pivots: Acquire (a plain load on x86). A reachable node's pivots never change except
//!   for the one Release store that publishes an in-place append to a plain tree's leaf
//!   (`write::kinds::append`): a search that sees that pivot's new value must also see the
//!   slot and pivot written beyond it. Leaf scans load a slot's bounding pivots before the
//!   slot itself, so the slot read is ordered after that Acquire.
//! - gaps: Relaxed. They do not change while a node is reachable (in RCU mode the writer
//!   publishes a rebuilt child in place only when the child's gap is unchanged), and their
//!   initialisation was ordered before us by the Acquire load of the node's pointer.
//! - child pointers: through the guard (`protect_word`, Acquire): the child was initialised
//!   before the Release store that published it.
//! - leaf slots: Relaxed. The search only asks whether a slot is empty and never
//!   dereferences the word.
//!
//! After reading what it acts on from a node — before descending into a child, before
//! returning a fit found in a leaf, and before leaving a node as exhausted — the search
//! checks the node's dead mark and, if the writer has replaced it, restarts from the root,
//! exactly as the point walk does.
//!
//! The path back up is a stack of frames (node, slot, the one bound that resuming needs)
//! on the reader's stack, not initialised beyond what is pushed. Internal nodes are all
//! arange_64 or all range_64, so the node type is a const parameter of the search.

use core::mem::MaybeUninit;

use rcu::sync::atomic::Ordering;
use rcu::Guard;

use super::node::{find_slot, Node, NodePtr, NodeType, MAX_HEIGHT};
use super::RawTree;
use crate::error::{AreaError, GapError};

/// What a search looks for: starts `s` with `[s, s + size_m1]` inside `[lo, hi]` and
/// `s ≡ offset (mod mask + 1)`.
#[derive(Clone, Copy, Debug)]
struct Req {
    lo: usize,
    hi: usize,
    /// The size; at least 1.
    size: usize,
    /// `size - 1`.
    size_m1: usize,
    /// `align - 1` (0 for an unaligned search).
    mask: usize,
    /// Wanted residue of the start modulo the alignment.
    offset: usize,
}

impl Req {
    /// The highest (`REV`) or lowest start of a fit inside `[a, b]`, if any. Written so that
    /// no input (even an inverted `[a, b]`) can overflow.
    #[inline(always)]
    fn fit<const REV: bool, const ALIGNED: bool>(&self, a: usize, b: usize) -> Option<usize> {
        if b < a || b - a < self.size_m1 {
            return None;
        }
        // `b - size_m1 >= a`: the highest unaligned start.
        let top = b - self.size_m1;
        if !ALIGNED {
            return Some(if REV { top } else { a });
        }
        if REV {
            // Round `top` down to the residue; wrapping arithmetic is exact modulo the
            // alignment because it divides 2^64.
            let s = top.wrapping_sub(top.wrapping_sub(self.offset) & self.mask);
            (s <= top && s >= a).then_some(s)
        } else {
            // Round `a` up to the residue.
            let s = a.wrapping_add(self.offset.wrapping_sub(a) & self.mask);
            (s >= a && s <= top).then_some(s)
        }
    }
}

/// One level of the path back up: the node, the slot descended through, and the one bound
/// of the node that resuming its scan needs (the minimum when the scan moves down, the
/// maximum when it moves up; the other comes from the node's own pivots).
#[derive(Clone, Copy)]
struct Frame {
    node: NodePtr,
    bound: usize,
    off: usize,
}

/// The frames of the current descent, uninitialised beyond `len`.
///
/// # Invariants
/// `frames[..len]` are initialised; `len <= MAX_HEIGHT`.
struct Path {
    frames: [MaybeUninit<Frame>; MAX_HEIGHT],
    len: usize,
}

impl Path {
    #[inline(always)]
    fn new() -> Path {
        Path {
            frames: [const { MaybeUninit::uninit() }; MAX_HEIGHT],
            len: 0,
        }
    }

    #[inline(always)]
    fn push(&mut self, f: Frame) {
        // A tree is never deeper than MAX_HEIGHT (node.rs), and a reader descends one level
        // per push from the root, so this cannot fail; a bad tree panics here rather than
        // writing out of bounds.
        self.frames[self.len] = MaybeUninit::new(f);
        // INVARIANT: the frame at the old `len` was just initialised.
        self.len += 1;
    }

    #[inline(always)]
    fn top(&self) -> Option<Frame> {
        let i = self.len.checked_sub(1)?;
        // SAFETY: `frames[..len]` are initialised (type invariant).
        Some(unsafe { self.frames[i].assume_init() })
    }

    #[inline(always)]
    fn pop(&mut self) -> Option<Frame> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: `frames[..old len]` are initialised (type invariant).
        Some(unsafe { self.frames[self.len].assume_init() })
    }
}

/// Ask for the cache lines of `node` that hold its slots and gaps while the pivots are
/// being read: the scan needs both, and fetching them in parallel rather than one after
/// the other saves a memory round trip per node on a cold path.
#[inline(always)]
fn prefetch(node: NodePtr) {
    #[cfg(all(target_arch = "x86_64", not(miri), not(loom)))]
    // SAFETY: a prefetch is a hint; it never faults and has no effect on memory, whatever
    // the address (this one is a live node's anyway).
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = node.addr() as *const i8;
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(128));
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(192));
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri), not(loom))))]
    let _ = node;
}

/// [`prefetch`] of every line of `node`, for a node the search may visit next.
#[inline(always)]
fn prefetch_all(node: NodePtr) {
    #[cfg(all(target_arch = "x86_64", not(miri), not(loom)))]
    // SAFETY: a prefetch is a hint; it never faults and has no effect on memory, whatever
    // the address.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(node.addr() as *const i8);
    }
    prefetch(node);
}

/// Pivot `i` of `n`.
#[inline(always)]
fn piv(n: &Node, i: usize) -> usize {
    // Acquire: see the module docs (in-place appends publish through a pivot).
    n.body[i].load(Ordering::Acquire)
}

/// The slot of an arange node that holds `x` (inside the node's bounds): the first pivot
/// `>= x`. Two probes narrow the nine pivots to at most three, which keeps the right-most
/// path (edge at the data end, as when the window reaches the end of the map) short.
/// Acquire loads (through `piv`; see the module docs).
#[inline(always)]
fn arange_slot(n: &Node, x: usize) -> usize {
    const NP: usize = NodeType::ARange.pivots();
    let mut off = if x > piv(n, 4) { 5 } else { 0 };
    if x > piv(n, off + 2) {
        off += 3;
    }
    while off < NP && x > piv(n, off) {
        off += 1;
    }
    off
}

/// The search is about to scan a leaf whose parent frame is `f` (`max` is the leaf's
/// maximum): have the leaf it would visit next, the neighbour away from the edge, on its
/// way while this one is scanned, if that neighbour's gap is big enough.
#[inline(always)]
fn prefetch_next_leaf<const REV: bool>(f: Frame, max: usize, size: usize) {
    // SAFETY: the frame's node was reached under the caller's live section, which keeps
    // it allocated.
    let pn = unsafe { f.node.node() };
    let np = f.node.pivot_count();
    let next = if REV {
        f.off.checked_sub(1)
    } else {
        // `f.bound` is the parent's maximum: a slot follows unless the leaf ends there.
        (max < f.bound && f.off < np).then_some(f.off + 1)
    };
    let Some(o) = next else { return };
    let gap = if np == NodeType::ARange.pivots() {
        // Relaxed: a hint only (see below).
        pn.body[NodeType::ARange.gap_base() + o].load(Ordering::Relaxed)
    } else {
        usize::MAX
    };
    if gap >= size {
        // Relaxed: the word is only used as a prefetch address, never dereferenced.
        prefetch_all(NodePtr(pn.body[np + o].load(Ordering::Relaxed)));
    }
}

/// The first pivot `>= x` of a node with `NP` pivots (`x` inside the node's bounds).
#[inline(always)]
fn edge_slot<const NP: usize>(n: &Node, x: usize) -> usize {
    if NP == NodeType::ARange.pivots() {
        arange_slot(n, x)
    } else {
        find_slot(n, NP, x, 0, usize::MAX, Ordering::Acquire)
            .0
            .min(NP)
    }
}

/// Scan leaf `n` (bounds `[min, max]`) from slot `off` away from the window edge (down
/// for `REV`, up otherwise) and return the first fit.
///
/// `off` is the slot holding the window edge, so it lies at or before the data end.
#[inline(always)]
fn scan_leaf<const REV: bool, const ALIGNED: bool>(
    n: &Node,
    min: usize,
    max: usize,
    off: usize,
    q: &Req,
) -> Option<usize> {
    const NP: usize = NodeType::Leaf.pivots();
    const SB: usize = NodeType::Leaf.slot_base();
    // Clamped so that every index below is provably in bounds.
    let mut off = off.min(NP);
    // Relaxed: only emptiness matters (module docs).
    let empty = |off: usize| n.body[SB + off].load(Ordering::Relaxed) == 0;
    if REV {
        let mut smax = if off < NP { piv(n, off) } else { max };
        loop {
            let smin = if off == 0 {
                min
            } else {
                piv(n, off - 1).wrapping_add(1)
            };
            if empty(off) {
                if let Some(s) = q.fit::<REV, ALIGNED>(smin.max(q.lo), smax.min(q.hi)) {
                    return Some(s);
                }
                // Empty slots are never adjacent: the slot below holds an entry, skip it.
                if smin <= q.lo || off < 2 {
                    return None;
                }
                off -= 2;
                smax = piv(n, off);
                continue;
            }
            if smin <= q.lo || off == 0 {
                return None;
            }
            off -= 1;
            smax = smin - 1;
        }
    } else {
        let mut smin = if off == 0 {
            min
        } else {
            piv(n, off - 1).wrapping_add(1)
        };
        loop {
            let smax = if off < NP { piv(n, off) } else { max };
            if empty(off) {
                if let Some(s) = q.fit::<REV, ALIGNED>(smin.max(q.lo), smax.min(q.hi)) {
                    return Some(s);
                }
                // The slot above holds an entry (see above): skip it, unless it is the
                // last slot or the window ends in it.
                if smax >= q.hi || smax >= max || off + 1 >= NP {
                    return None;
                }
                let above = piv(n, off + 1);
                if above >= q.hi || above >= max {
                    return None;
                }
                off += 2;
                smin = above + 1;
                continue;
            }
            if smax >= q.hi || smax >= max || off == NP {
                return None;
            }
            off += 1;
            smin = smax + 1;
        }
    }
}

/// Scan internal node `n` (bounds `[min, max]`, `NP` pivots, gaps if `GAPS`) away from
/// the window edge, from slot `resume` or, for a node just entered, from the slot holding
/// the edge; return the first child that may hold a fit: its slot, bounds and pointer
/// (loaded through the guard).
#[inline(always)]
fn scan_inner<G: Guard, const REV: bool, const ALIGNED: bool, const NP: usize, const GAPS: bool>(
    g: &G,
    n: &Node,
    min: usize,
    max: usize,
    resume: Option<usize>,
    q: &Req,
) -> Option<(usize, usize, usize, usize)> {
    // Slots follow the pivots; gaps follow the slots (arange).
    let sb = NP;
    let gb = NP + NP + 1;
    let mut off = match resume {
        // A frame's slot is below NP; the clamp lets the compiler drop bounds checks.
        Some(o) => o.min(NP),
        None => edge_slot::<NP>(n, if REV { q.hi.min(max) } else { q.lo.max(min) }),
    };
    let gap = |off: usize| {
        if GAPS {
            // Relaxed: see the module docs.
            n.body[gb + off].load(Ordering::Relaxed)
        } else {
            usize::MAX
        }
    };
    let (mut smin, mut smax);
    if REV {
        smax = if off < NP { piv(n, off) } else { max };
        loop {
            smin = if off == 0 {
                min
            } else {
                piv(n, off - 1).wrapping_add(1)
            };
            if gap(off) >= q.size
                && q.fit::<REV, ALIGNED>(smin.max(q.lo), smax.min(q.hi))
                    .is_some()
            {
                break;
            }
            if smin <= q.lo || off == 0 {
                return None;
            }
            off -= 1;
            smax = smin - 1;
        }
    } else {
        smin = if off == 0 {
            min
        } else {
            piv(n, off - 1).wrapping_add(1)
        };
        loop {
            smax = if off < NP { piv(n, off) } else { max };
            if gap(off) >= q.size
                && q.fit::<REV, ALIGNED>(smin.max(q.lo), smax.min(q.hi))
                    .is_some()
            {
                break;
            }
            if smax >= q.hi || smax >= max || off == NP {
                return None;
            }
            off += 1;
            smin = smax + 1;
        }
    }
    // Acquire (via protect): the child was initialised before it was published.
    let child = g.protect_word(&n.body[sb + off], Ordering::Acquire);
    Some((off, smin, smax, child))
}

/// The search proper.
///
/// # Safety
/// `g` is a live section of the domain that `tree`'s writer retires nodes to.
#[inline(always)]
unsafe fn search<G: Guard, const REV: bool, const ALIGNED: bool, const ALLOC: bool>(
    tree: &RawTree,
    g: &G,
    q: &Req,
) -> Option<usize> {
    const AP: usize = NodeType::ARange.pivots();
    const RP: usize = NodeType::Range.pivots();
    'restart: loop {
        // Acquire (via protect): the root node was initialised before it was published.
        let root = g.protect_word(&tree.root, Ordering::Acquire);
        if root == 0 {
            // An empty tree: every index is free.
            return q.fit::<REV, ALIGNED>(q.lo, q.hi);
        }
        let mut path = Path::new();
        let mut node = NodePtr(root);
        prefetch(node);
        let (mut min, mut max) = (0usize, usize::MAX);
        // `Some(off)`: resume the scan of `node` at slot `off` (after backing up into it);
        // `None`: `node` was just entered and its scan starts at the window edge.
        let mut resume: Option<usize> = None;
        loop {
            // SAFETY: `node` was loaded under the live section (the root word or a parent's
            // slot), so it stays allocated until the section ends.
            let n = unsafe { node.node() };
            if node.is_leaf() {
                if let Some(f) = path.top() {
                    prefetch_next_leaf::<REV>(f, max, q.size);
                }
                // Leaves are never resumed (never on the path).
                let edge = if REV { q.hi.min(max) } else { q.lo.max(min) };
                let off = find_slot(
                    n,
                    NodeType::Leaf.pivots(),
                    edge,
                    min,
                    max,
                    Ordering::Acquire,
                )
                .0;
                let found = scan_leaf::<REV, ALIGNED>(n, min, max, off, q);
                // SAFETY: protected by the section.
                if unsafe { node.is_dead() } {
                    note_restart();
                    continue 'restart;
                }
                if found.is_some() {
                    return found;
                }
            } else {
                // Internal nodes are all arange_64 in an allocation tree, all range_64 in a
                // plain one.
                let found = if ALLOC {
                    scan_inner::<G, REV, ALIGNED, AP, true>(g, n, min, max, resume, q)
                } else {
                    scan_inner::<G, REV, ALIGNED, RP, false>(g, n, min, max, resume, q)
                };
                // SAFETY: protected by the section.
                if unsafe { node.is_dead() } {
                    note_restart();
                    continue 'restart;
                }
                if let Some((o, smin, smax, child)) = found {
                    path.push(Frame {
                        node,
                        bound: if REV { min } else { max },
                        off: o,
                    });
                    node = NodePtr(child);
                    prefetch(node);
                    min = smin;
                    max = smax;
                    resume = None;
                    continue;
                }
            }
            // Nothing (more) fits under this node: resume the parent at the slot after
            // it, skipping parents that it ended.
            loop {
                let f = path.pop()?;
                let done = if REV {
                    min <= q.lo || f.off == 0
                } else {
                    max >= q.hi || max >= f.bound
                };
                node = f.node;
                // Resuming moves away from the edge, so the scan reads the other bound
                // from the node's pivots and never looks at the one not kept.
                if REV {
                    min = f.bound;
                } else {
                    max = f.bound;
                }
                if !done {
                    resume = Some(if REV { f.off - 1 } else { f.off + 1 });
                    break;
                }
            }
        }
    }
}

/// Count a restart (tests only: proves that a stress test hit the race it is about).
#[inline(always)]
fn note_restart() {
    #[cfg(all(test, not(loom)))]
    tests::RESTARTS.with(|c| c.set(c.get() + 1));
}

/// Check the arguments of a search and build its request.
fn request(
    lo: usize,
    hi: usize,
    size: usize,
    align: usize,
    offset: usize,
) -> Result<Req, AreaError> {
    if size == 0 {
        return Err(AreaError::ZeroSize);
    }
    if !align.is_power_of_two() {
        return Err(AreaError::BadAlign);
    }
    if lo > hi {
        return Err(AreaError::EmptyWindow);
    }
    if hi - lo < size - 1 {
        return Err(AreaError::WindowTooSmall);
    }
    Ok(Req {
        lo,
        hi,
        size,
        size_m1: size - 1,
        mask: align - 1,
        offset,
    })
}

/// Lowest (`rev == false`) or highest start `s` with `[s, s + size - 1]` empty and inside
/// `[lo, hi]`.
///
/// # Safety
/// `g` is a live section of the domain that `tree`'s writer retires nodes to.
#[inline]
pub(crate) unsafe fn empty_area<G: Guard>(
    tree: &RawTree,
    g: &G,
    lo: usize,
    hi: usize,
    size: usize,
    rev: bool,
) -> Result<usize, GapError> {
    let q = request(lo, hi, size, 1, 0).map_err(GapError::from)?;
    // SAFETY: forwarded.
    let found = unsafe {
        match (rev, tree.alloc) {
            (true, true) => search::<G, true, false, true>(tree, g, &q),
            (false, true) => search::<G, false, false, true>(tree, g, &q),
            (true, false) => search::<G, true, false, false>(tree, g, &q),
            (false, false) => search::<G, false, false, false>(tree, g, &q),
        }
    };
    found.ok_or(GapError::Busy)
}

/// Lowest (`rev == false`) or highest start `s` with `[s, s + size - 1]` empty and inside
/// `[lo, hi]` and `s ≡ offset (mod align)`.
///
/// # Safety
/// `g` is a live section of the domain that `tree`'s writer retires nodes to.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn empty_area_aligned<G: Guard>(
    tree: &RawTree,
    g: &G,
    lo: usize,
    hi: usize,
    size: usize,
    align: usize,
    offset: usize,
    rev: bool,
) -> Result<usize, AreaError> {
    let q = request(lo, hi, size, align, offset)?;
    // SAFETY: forwarded.
    let found = unsafe {
        match (rev, align == 1, tree.alloc) {
            (true, true, true) => search::<G, true, false, true>(tree, g, &q),
            (false, true, true) => search::<G, false, false, true>(tree, g, &q),
            (true, false, true) => search::<G, true, true, true>(tree, g, &q),
            (false, false, true) => search::<G, false, true, true>(tree, g, &q),
            (true, true, false) => search::<G, true, false, false>(tree, g, &q),
            (false, true, false) => search::<G, false, false, false>(tree, g, &q),
            (true, false, false) => search::<G, true, true, false>(tree, g, &q),
            (false, false, false) => search::<G, false, true, false>(tree, g, &q),
        }
    };
    found.ok_or(AreaError::Busy)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use crate::{MapleTree, Value};

    thread_local! {
        /// Restarts of searches run by this thread.
        pub(super) static RESTARTS: Cell<usize> = const { Cell::new(0) };
    }

    fn v(x: usize) -> Value {
        Value::new(x).unwrap()
    }

    /// Readers searching while the writer toggles one range see the answer of the tree
    /// before or after each toggle, never anything else, and never hang.
    ///
    /// Layout: ranges `[10k, 10k + 7]`, k < 3000, with 2-index holes. A request of 2
    /// indices at a start ≡ 328 (mod 4096) fits, highest first, only in the hole at 20808
    /// (k = 2080) — unless range k = 2900 is punched, which opens a fit at 29000. The
    /// search in the first state visits about a hundred leaves, and every toggle changes a
    /// leaf's largest gap (2 <-> 12), so the writer replaces the whole path from that leaf
    /// to the root: a reader on that path restarts. The test runs until each reader has
    /// seen both answers and restarted several times (the race was hit), and fails after
    /// a deadline instead of hanging.
    #[test]
    fn searches_racing_a_writer_see_before_or_after() {
        let t: MapleTree<Value> = MapleTree::new_alloc();
        for k in 0..3000usize {
            t.lock().store_range(10 * k..=10 * k + 7, v(k)).unwrap();
        }
        let (a, b) = (20808usize, 29000usize);
        let search =
            |t: &MapleTree<Value>| t.read().empty_area_rev_aligned(..=30_000, 2, 4096, 328);
        assert_eq!(search(&t), Ok(a));
        t.lock().punch(29000..=29007).unwrap();
        assert_eq!(search(&t), Ok(b));
        t.lock().store_range(29000..=29007, v(2900)).unwrap();

        const READERS: usize = 2;
        const WANT: usize = 20;
        let stop = AtomicBool::new(false);
        let seen: [[AtomicUsize; 3]; READERS] = Default::default();
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut stored = true;
                while !stop.load(Ordering::Relaxed) {
                    let w = t.lock();
                    if stored {
                        w.punch(29000..=29007).unwrap();
                    } else {
                        w.store_range(29000..=29007, v(2900)).unwrap();
                    }
                    drop(w);
                    stored = !stored;
                    // Let searches complete between toggles (a search that a toggle
                    // interrupts restarts from the root).
                    std::thread::sleep(Duration::from_micros(50));
                }
            });
            let mut readers = Vec::new();
            for seen in &seen {
                let stop = &stop;
                let t = &t;
                readers.push(s.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let r = search(t);
                        let i = match r {
                            Ok(x) if x == a => 0,
                            Ok(x) if x == b => 1,
                            other => panic!("a search saw neither state: {other:?}"),
                        };
                        seen[i].fetch_add(1, Ordering::Relaxed);
                        seen[2].store(RESTARTS.with(Cell::get), Ordering::Relaxed);
                    }
                }));
            }
            let deadline = Instant::now() + Duration::from_secs(120);
            let hit = loop {
                let ok = seen
                    .iter()
                    .all(|s| s.iter().all(|c| c.load(Ordering::Relaxed) >= WANT));
                // A reader that stopped early panicked: stop the others, and the scope
                // re-raises its panic.
                if ok || Instant::now() > deadline || readers.iter().any(|r| r.is_finished()) {
                    break ok;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            stop.store(true, Ordering::Relaxed);
            let counts: Vec<Vec<usize>> = seen
                .iter()
                .map(|s| s.iter().map(|c| c.load(Ordering::Relaxed)).collect())
                .collect();
            eprintln!("[answer a, answer b, restarts] per reader: {counts:?}");
            assert!(
                hit,
                "within the deadline, each reader must see both answers and restart \
                 {WANT} times ([answer a, answer b, restarts] per reader: {counts:?})"
            );
        });
        t.validate().unwrap();
    }
}
