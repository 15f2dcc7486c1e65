//! `validate()`: check every structural invariant of the design and name the first
//! violation with its path from the root.

use rcu::sync::atomic::Ordering;

use super::node::{internal_gap, leaf_gap, Item, NodePtr, NodeType};
use super::RawTree;
use crate::error::ValidateError;

struct State {
    height: usize,
    prev_empty: bool,
    count: usize,
    alloc: bool,
}

/// Check the whole tree. Must run with no concurrent writer (the caller holds the lock).
///
/// # Safety
/// The caller excludes writers for the duration.
pub(crate) unsafe fn validate(tree: &RawTree) -> Result<(), ValidateError> {
    // Relaxed: writers are excluded, so these are stable.
    let root = tree.root.load(Ordering::Relaxed);
    // Relaxed: as above.
    let height = tree.height.load(Ordering::Relaxed);
    // Relaxed: as above.
    let len = tree.len.load(Ordering::Relaxed);
    if root == 0 {
        if height != 0 || len != 0 {
            return Err(ValidateError::new(
                "root",
                format!("empty tree with height {height} and len {len}"),
            ));
        }
        return Ok(());
    }
    let mut st = State {
        height,
        prev_empty: false,
        count: 0,
        alloc: tree.alloc,
    };
    let mut path = String::from("root");
    // SAFETY: writers excluded; reachable nodes are live.
    unsafe { check(NodePtr(root), 0, usize::MAX, 0, 0, &mut path, &mut st)? };
    if st.count != len {
        return Err(ValidateError::new(
            "root",
            format!("len() is {len} but the leaves hold {} entries", st.count),
        ));
    }
    Ok(())
}

/// Check one subtree; returns its largest free run.
///
/// # Safety
/// Writers excluded; `node` is reachable.
unsafe fn check(
    node: NodePtr,
    min: usize,
    max: usize,
    depth: usize,
    parent: usize,
    path: &mut String,
    st: &mut State,
) -> Result<usize, ValidateError> {
    let err = |p: &String, m: String| Err(ValidateError::new(p.clone(), m));
    if depth >= st.height {
        return err(
            path,
            format!("node below the recorded height {}", st.height),
        );
    }
    let ty = node.ty();
    let is_leaf = depth + 1 == st.height;
    if ty.is_leaf() != is_leaf {
        return err(
            path,
            format!(
                "{} at depth {depth} in a tree of height {}",
                ty.name(),
                st.height
            ),
        );
    }
    if !is_leaf {
        let want = if st.alloc {
            NodeType::ARange
        } else {
            NodeType::Range
        };
        if ty != want {
            return err(
                path,
                format!("internal node is {} not {}", ty.name(), want.name()),
            );
        }
    }
    // SAFETY: reachable, writers excluded.
    let n = unsafe { node.node() };
    // Relaxed: writers excluded.
    let pw = n.parent.load(Ordering::Relaxed);
    if pw == node.addr() {
        return err(path, "reachable node is marked dead".into());
    }
    if pw != parent {
        return err(path, format!("parent word {pw:#x}, expected {parent:#x}"));
    }
    // Pivots.
    let mut items = Vec::with_capacity(ty.slots());
    let mut prev: Option<usize> = None;
    let mut end = ty.slots();
    for i in 0..ty.pivots() {
        let p = n.pivot(ty, i);
        if p > max {
            return err(path, format!("pivot {i} = {p} beyond node max {max}"));
        }
        if i == 0 && p < min {
            return err(path, format!("pivot 0 = {p} below node min {min}"));
        }
        if let Some(q) = prev {
            if p <= q {
                return err(
                    path,
                    format!("pivot {i} = {p} not above pivot {} = {q}", i - 1),
                );
            }
        }
        prev = Some(p);
        if p == max {
            end = i + 1;
            for j in i + 1..ty.pivots() {
                let u = n.pivot(ty, j);
                if u != max {
                    return err(path, format!("unused pivot {j} = {u}, expected max {max}"));
                }
            }
            break;
        }
    }
    for i in 0..ty.slots() {
        // Relaxed: writers excluded.
        let w = n.slot(ty, i).load(Ordering::Relaxed);
        if i < end {
            let piv = if i < ty.pivots() { n.pivot(ty, i) } else { max };
            let gap = if ty == NodeType::ARange {
                // Relaxed: writers excluded.
                n.gap(ty, i).load(Ordering::Relaxed)
            } else {
                0
            };
            items.push(Item { piv, slot: w, gap });
        } else if is_leaf && w != 0 {
            return err(path, format!("unused slot {i} holds {w:#x}"));
        }
    }
    let is_root = depth == 0;
    let rightmost = max == usize::MAX;
    if !is_root && !rightmost && end < ty.min_occupancy() {
        return err(
            path,
            format!(
                "{end} slots, below minimum occupancy {}",
                ty.min_occupancy()
            ),
        );
    }
    if is_root && end == 1 {
        if !is_leaf {
            return err(path, "internal root with a single child".into());
        }
        if items[0].slot == 0 {
            return err(path, "root leaf holding only an empty range".into());
        }
    }
    if is_leaf {
        for (i, it) in items.iter().enumerate() {
            let empty = it.slot == 0;
            if empty && st.prev_empty {
                return err(
                    path,
                    format!("slot {i} is empty right after an empty range"),
                );
            }
            st.prev_empty = empty;
            if !empty {
                st.count += 1;
            }
        }
        if !rightmost && items[end - 1].slot == 0 {
            return err(path, "non-right-most leaf ends in an empty slot".into());
        }
        return Ok(leaf_gap(&items, min));
    }
    let mut cmin = min;
    let mut gaps = Vec::with_capacity(end);
    for (i, it) in items.iter().enumerate() {
        if it.slot == 0 {
            return err(path, format!("internal slot {i} is empty"));
        }
        let len = path.len();
        path.push_str(&format!("/{i}"));
        // SAFETY: reachable child.
        let g = unsafe { check(NodePtr(it.slot), cmin, it.piv, depth + 1, node.0, path, st)? };
        path.truncate(len);
        if st.alloc && it.gap != g {
            return err(
                path,
                format!("gap {i} is {}, child's largest free run is {g}", it.gap),
            );
        }
        gaps.push(Item { gap: g, ..*it });
        cmin = it.piv.wrapping_add(1);
    }
    Ok(internal_gap(&gaps))
}
