//! The peers the maple tree is measured against, each behind a small adapter.
//!
//! Every peer stores a range as `start -> (last, value)` (or natively, for `rangemap`) and
//! answers a point lookup the way a Rust program would today: find the greatest start at or
//! below the point, then check the range's last index.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::RwLock;

use crossbeam_skiplist::SkipMap;
use rangemap::RangeInclusiveMap;
use scc::tree_index::Proximity;
use scc::TreeIndex;

use crate::workload::Layout;

/// A point-lookup structure built from a [`Layout`].
pub trait RangeLookup: Send + Sync + Sized {
    /// Name used in table rows.
    const NAME: &'static str;
    /// Build from the layout's ranges, inserted in ascending order.
    fn build(layout: &Layout) -> Self;
    /// The value of the range containing `x`, if any.
    fn lookup(&self, x: usize) -> Option<u64>;
}

/// `BTreeMap<start, (last, value)>`: `range(..=x).next_back()` plus a bound check.
///
/// ```
/// use benches::peers::{BTreePeer, RangeLookup};
/// use benches::workload::Layout;
/// let layout = Layout::new(100);
/// let map = BTreePeer::build(&layout);
/// let (s, e) = layout.ranges()[7];
/// assert_eq!(map.lookup(s), Some(7));
/// assert_eq!(map.lookup(e), Some(7));
/// assert_eq!(map.lookup(0), None);
/// ```
#[derive(Clone, Debug, Default)]
pub struct BTreePeer {
    /// The map, public so other workloads (gap scan, range stores) can use it.
    pub map: BTreeMap<usize, (usize, u64)>,
}

impl RangeLookup for BTreePeer {
    const NAME: &'static str = "BTreeMap";
    fn build(layout: &Layout) -> Self {
        Self {
            map: layout.entries().map(|(s, e, v)| (s, (e, v))).collect(),
        }
    }
    #[inline]
    fn lookup(&self, x: usize) -> Option<u64> {
        btree_lookup(&self.map, x)
    }
}

#[inline]
fn btree_lookup(map: &BTreeMap<usize, (usize, u64)>, x: usize) -> Option<u64> {
    match map.range(..=x).next_back() {
        Some((_, &(e, v))) if x <= e => Some(v),
        _ => None,
    }
}

/// `RwLock<BTreeMap>`: the same lookup under a read lock taken per lookup.
#[derive(Debug, Default)]
pub struct RwLockBTreePeer {
    /// The locked map.
    pub map: RwLock<BTreeMap<usize, (usize, u64)>>,
}

impl RangeLookup for RwLockBTreePeer {
    const NAME: &'static str = "RwLock<BTreeMap>";
    fn build(layout: &Layout) -> Self {
        Self {
            map: RwLock::new(BTreePeer::build(layout).map),
        }
    }
    #[inline]
    fn lookup(&self, x: usize) -> Option<u64> {
        // A poisoned lock still holds a consistent map for our purpose (no writer panics
        // mid-update in these workloads), so read through the poison.
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        btree_lookup(&map, x)
    }
}

/// `crossbeam_skiplist::SkipMap<start, (last, value)>`: `upper_bound(Included(x))`.
#[derive(Debug, Default)]
pub struct SkipMapPeer {
    /// The skip list.
    pub map: SkipMap<usize, (usize, u64)>,
}

impl RangeLookup for SkipMapPeer {
    const NAME: &'static str = "SkipMap";
    fn build(layout: &Layout) -> Self {
        let map = SkipMap::new();
        for (s, e, v) in layout.entries() {
            map.insert(s, (e, v));
        }
        Self { map }
    }
    #[inline]
    fn lookup(&self, x: usize) -> Option<u64> {
        let entry = self.map.upper_bound(Bound::Included(&x))?;
        let (e, v) = *entry.value();
        (x <= e).then_some(v)
    }
}

/// `scc::TreeIndex<start, (last, value)>`: `locate(x)` under a fresh `scc::Guard`.
#[derive(Debug, Default)]
pub struct TreeIndexPeer {
    /// The tree index.
    pub map: TreeIndex<usize, (usize, u64)>,
}

impl RangeLookup for TreeIndexPeer {
    const NAME: &'static str = "scc::TreeIndex";
    fn build(layout: &Layout) -> Self {
        let map = TreeIndex::new();
        for (s, e, v) in layout.entries() {
            // Keys are distinct, so the insert cannot find the key present.
            let _ = map.insert_sync(s, (e, v));
        }
        Self { map }
    }
    #[inline]
    fn lookup(&self, x: usize) -> Option<u64> {
        let guard = scc::Guard::new();
        let below = match self.map.locate(&x, &guard) {
            Proximity::Exact(it) | Proximity::Between(it) => it.get(),
            Proximity::Smaller(it) => it.get_back(),
            Proximity::Larger(_) | Proximity::Empty => None,
        };
        match below {
            Some((_, &(e, v))) if x <= e => Some(v),
            _ => None,
        }
    }
}

/// `rangemap::RangeInclusiveMap<usize, u64>`: `get(x)`.
#[derive(Clone, Debug, Default)]
pub struct RangeMapPeer {
    /// The range map.
    pub map: RangeInclusiveMap<usize, u64>,
}

impl RangeLookup for RangeMapPeer {
    const NAME: &'static str = "rangemap";
    fn build(layout: &Layout) -> Self {
        let mut map = RangeInclusiveMap::new();
        for (s, e, v) in layout.entries() {
            map.insert(s..=e, v);
        }
        Self { map }
    }
    #[inline]
    fn lookup(&self, x: usize) -> Option<u64> {
        self.map.get(&x).copied()
    }
}

/// A range map over `BTreeMap<start, (last, value)>` with the maple tree's write semantics
/// (overwrite trims or removes what it covers; erase removes the whole containing range),
/// the peer of the **write** table.
///
/// ```
/// use benches::peers::BTreeRangeMap;
/// let mut m = BTreeRangeMap::default();
/// m.store_range(10, 19, 1);
/// m.store_range(15, 24, 2);
/// assert_eq!(m.load(14), Some(1));
/// assert_eq!(m.load(15), Some(2));
/// m.punch(12, 16);
/// assert_eq!(m.load(12), None);
/// assert_eq!(m.erase(20), Some((17, 24, 2)));
/// assert_eq!(m.len(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct BTreeRangeMap {
    /// The map, `start -> (last, value)`, ranges disjoint.
    pub map: BTreeMap<usize, (usize, u64)>,
}

impl BTreeRangeMap {
    /// Build from a layout by ascending insertion.
    pub fn build(layout: &Layout) -> Self {
        let mut m = Self::default();
        for (s, e, v) in layout.entries() {
            m.store_range(s, e, v);
        }
        m
    }

    /// Number of stored ranges.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The value at `x`.
    pub fn load(&self, x: usize) -> Option<u64> {
        btree_lookup(&self.map, x)
    }

    /// Make `[first, last]` empty, trimming partly covered ranges. Requires `first <= last`.
    pub fn punch(&mut self, first: usize, last: usize) {
        // A range starting before `first` that reaches into it is cut at `first - 1`, and
        // whatever went past `last` is kept as a new piece.
        if let Some((&s, &(e, v))) = self.map.range(..first).next_back() {
            if e >= first {
                self.map.insert(s, (first - 1, v));
                if e > last {
                    self.map.insert(last + 1, (e, v));
                    return;
                }
            }
        }
        // Ranges starting inside go; the last one may leave a tail past `last`.
        while let Some((&s, &(e, v))) = self.map.range(first..=last).next() {
            self.map.remove(&s);
            if e > last {
                self.map.insert(last + 1, (e, v));
                break;
            }
        }
    }

    /// Overwrite `[first, last]` with `value`. Requires `first <= last`.
    pub fn store_range(&mut self, first: usize, last: usize, value: u64) {
        self.punch(first, last);
        self.map.insert(first, (last, value));
    }

    /// Remove the whole range containing `x`; returns it.
    pub fn erase(&mut self, x: usize) -> Option<(usize, usize, u64)> {
        let (&s, &(e, v)) = self.map.range(..=x).next_back()?;
        if x > e {
            return None;
        }
        self.map.remove(&s);
        Some((s, e, v))
    }
}

/// The top-down first-fit gap scan that Rust VMMs run today: walk the stored ranges from the
/// top of `[lo, hi]` downwards and return the highest start `s` with `[s, s + size - 1]`
/// empty and inside the window. `None` when nothing fits (or `size == 0`, or `lo > hi`).
///
/// ```
/// use std::collections::BTreeMap;
/// use benches::peers::linear_gap_rev;
/// let mut m = BTreeMap::new();
/// m.insert(10, (19, 0u64));
/// m.insert(25, (29, 1u64));
/// assert_eq!(linear_gap_rev(&m, 0, 29, 5), Some(20));
/// assert_eq!(linear_gap_rev(&m, 0, 29, 6), Some(4));
/// assert_eq!(linear_gap_rev(&m, 5, 29, 11), None);
/// ```
pub fn linear_gap_rev(
    map: &BTreeMap<usize, (usize, u64)>,
    lo: usize,
    hi: usize,
    size: usize,
) -> Option<usize> {
    if size == 0 || lo > hi {
        return None;
    }
    // `top` is the highest index not yet known to be occupied, within the window.
    let mut top = hi;
    for (&s, &(e, _)) in map.range(..=hi).rev() {
        if e < top {
            let bottom = (e + 1).max(lo);
            if top - bottom >= size - 1 {
                return Some(top + 1 - size);
            }
        }
        if s <= lo {
            return None;
        }
        top = top.min(s - 1);
    }
    (top - lo >= size - 1).then(|| top + 1 - size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Layout;

    fn check<P: RangeLookup>(layout: &Layout) {
        let p = P::build(layout);
        let mut pts = layout.points();
        for _ in 0..20_000 {
            let x = pts.next_point();
            assert_eq!(p.lookup(x), layout.expected(x), "{} at {x:#x}", P::NAME);
        }
        for &(s, e) in layout.ranges().iter().step_by(37) {
            assert_eq!(p.lookup(s), layout.expected(s));
            assert_eq!(p.lookup(e), layout.expected(e));
            assert_eq!(p.lookup(e + 1), layout.expected(e + 1));
            assert_eq!(p.lookup(s - 1), layout.expected(s - 1));
        }
        assert_eq!(p.lookup(0), None);
        assert_eq!(p.lookup(usize::MAX), None);
    }

    #[test]
    fn every_peer_agrees_with_the_layout() {
        let layout = Layout::new(3000);
        check::<BTreePeer>(&layout);
        check::<RwLockBTreePeer>(&layout);
        check::<SkipMapPeer>(&layout);
        check::<TreeIndexPeer>(&layout);
        check::<RangeMapPeer>(&layout);
    }

    /// A dense model: one slot per index in a small universe.
    #[test]
    fn range_map_matches_a_dense_model() {
        let mut rng = crate::workload::SplitMix64::new(9);
        let mut m = BTreeRangeMap::default();
        let mut dense = [None::<u64>; 200];
        for op in 0..5000u64 {
            let a = rng.below(200) as usize;
            let b = (a + rng.below(12) as usize).min(199);
            match rng.below(3) {
                0 => {
                    m.store_range(a, b, op);
                    dense[a..=b].iter_mut().for_each(|d| *d = Some(op));
                }
                1 => {
                    m.punch(a, b);
                    dense[a..=b].iter_mut().for_each(|d| *d = None);
                }
                _ => {
                    if let Some((s, e, v)) = m.erase(a) {
                        assert!(dense[s..=e].iter().all(|d| *d == Some(v)));
                        dense[s..=e].iter_mut().for_each(|d| *d = None);
                    } else {
                        assert_eq!(dense[a], None);
                    }
                }
            }
            for (i, d) in dense.iter().enumerate() {
                assert_eq!(m.load(i), *d, "index {i} after op {op}");
            }
        }
    }

    #[test]
    fn gap_scan_matches_brute_force() {
        let mut rng = crate::workload::SplitMix64::new(5);
        for _ in 0..300 {
            let mut m = BTreeRangeMap::default();
            for _ in 0..rng.below(12) {
                let a = rng.below(100) as usize;
                let b = (a + rng.below(8) as usize).min(99);
                m.store_range(a, b, 0);
            }
            let lo = rng.below(100) as usize;
            let hi = (lo + rng.below(100) as usize).min(99);
            let size = rng.below(20) as usize;
            let brute = if size == 0 {
                None
            } else {
                (lo..=hi)
                    .rev()
                    .filter(|&s| s + size - 1 <= hi)
                    .find(|&s| (s..s + size).all(|i| m.load(i).is_none()))
            };
            assert_eq!(linear_gap_rev(&m.map, lo, hi, size), brute);
        }
    }
}
