//! Gap search: the lowest / highest empty run of a given size inside a window.
//!
//! Allocation trees keep, for every child of an arange_64 node, the size of the largest
//! empty run in that child's subtree, so a search descends only into children whose gap is
//! big enough: O(height) node visits to find a fit, plus backtracking where the window cuts
//! through a subtree. Plain trees have no gaps; the same search then visits every child
//! that intersects the window (a linear scan in the worst case).
//!
//! Empty ranges are always merged (within and across leaves), so a free run is exactly one
//! empty leaf slot: a search never has to join slots.

use rcu::sync::atomic::Ordering;
use rcu::Guard;

use super::node::{Item, NodePtr, NodeType, MAX_SLOTS};
use super::RawTree;
use crate::error::GapError;

/// The node changed under a reader: start again from the root.
struct Restart;

/// Read a node's used items as a reader, then check the dead mark.
///
/// # Safety
/// `node` was reached under the live section `g`.
unsafe fn read_node<G: Guard>(
    g: &G,
    node: NodePtr,
    max: usize,
) -> Result<([Item; MAX_SLOTS], usize), Restart> {
    let ty = node.ty();
    // SAFETY: protected by the section.
    let n = unsafe { node.node() };
    let mut items = [Item::default(); MAX_SLOTS];
    let mut len = 0;
    for (i, item) in items.iter_mut().enumerate().take(ty.slots()) {
        let piv = if i < ty.pivots() {
            // Acquire (inside `pivot`): a plain tree's leaf can be appended to in place.
            n.pivot(ty, i).min(max)
        } else {
            max
        };
        // Acquire (via protect): the child / value was initialised before publication.
        let slot = g.protect_word(n.slot(ty, i), Ordering::Acquire);
        let gap = if ty == NodeType::ARange {
            // Relaxed: gaps of a reachable node are never changed in RCU mode; their
            // initialisation was ordered by the Acquire load of this node's pointer.
            n.gap(ty, i).load(Ordering::Relaxed)
        } else {
            usize::MAX
        };
        *item = Item { piv, slot, gap };
        len = i + 1;
        if piv == max {
            break;
        }
    }
    // SAFETY: protected by the section.
    if unsafe { node.is_dead() } {
        return Err(Restart);
    }
    Ok((items, len))
}

/// Search the subtree of `node` (`[min, max]`) for a fit in `[lo, hi]`.
///
/// # Safety
/// As for [`read_node`].
/// What a gap search looks for.
#[derive(Clone, Copy)]
struct Query {
    lo: usize,
    hi: usize,
    size: usize,
    rev: bool,
}

unsafe fn search<G: Guard>(
    g: &G,
    node: NodePtr,
    min: usize,
    max: usize,
    q: Query,
) -> Result<Option<usize>, Restart> {
    let Query { lo, hi, size, rev } = q;
    // SAFETY: forwarded.
    let (items, len) = unsafe { read_node(g, node, max)? };
    let leaf = node.ty().is_leaf();
    let mut bounds = [(0usize, 0usize); MAX_SLOTS];
    let mut s = min;
    for (i, it) in items[..len].iter().enumerate() {
        bounds[i] = (s, it.piv);
        s = it.piv.wrapping_add(1);
    }
    for k in 0..len {
        let i = if rev { len - 1 - k } else { k };
        let (smin, smax) = bounds[i];
        let it = items[i];
        if smax < lo || smin > hi {
            continue;
        }
        if leaf {
            if it.slot != 0 {
                continue;
            }
            let a = smin.max(lo);
            let b = smax.min(hi);
            if b - a >= size - 1 {
                return Ok(Some(if rev { b - (size - 1) } else { a }));
            }
        } else {
            if it.gap < size {
                continue;
            }
            // SAFETY: the child was loaded under the section.
            if let Some(x) = unsafe { search(g, NodePtr(it.slot), smin, smax, q)? } {
                return Ok(Some(x));
            }
        }
    }
    Ok(None)
}

/// Lowest (`rev == false`) or highest start `s` with `[s, s + size - 1]` empty and inside
/// `[lo, hi]`.
///
/// # Safety
/// `g` is a live section of the tree's domain.
pub(crate) unsafe fn empty_area<G: Guard>(
    tree: &RawTree,
    g: &G,
    lo: usize,
    hi: usize,
    size: usize,
    rev: bool,
) -> Result<usize, GapError> {
    if size == 0 || lo > hi || hi - lo < size - 1 {
        return Err(GapError::Invalid);
    }
    loop {
        // Acquire (via protect): see walk.rs.
        let root = g.protect_word(&tree.root, Ordering::Acquire);
        if root == 0 {
            return Ok(if rev { hi - (size - 1) } else { lo });
        }
        let q = Query { lo, hi, size, rev };
        // SAFETY: the root was loaded under the section.
        match unsafe { search(g, NodePtr(root), 0, usize::MAX, q) } {
            Ok(Some(s)) => return Ok(s),
            Ok(None) => return Err(GapError::Busy),
            Err(Restart) => continue,
        }
    }
}
