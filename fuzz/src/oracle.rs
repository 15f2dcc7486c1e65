//! The reference model for maple trees: stored ranges in a `BTreeMap`, answered by scans.
//!
//! Nothing here is clever on purpose: every answer is the obvious one computed from the
//! list of stored ranges, so a disagreement with the tree is a tree bug (or a bug in the
//! few lines below).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

/// Non-overlapping stored ranges `start -> (end, id)`, all inclusive.
///
/// Each range also carries a *word* number, the identity of the slot word the tree holds
/// for it: the two pieces left of a range that a later store cut in the middle share its
/// word, and every fresh value gets a new one. For owning entries the tree then holds fewer
/// references than ranges; `dups` counts the difference per word (a split adds one, removing
/// a whole piece uses one up before a reference is dropped), which decides where an owning
/// iteration hands each reference out (the last `ranges - dups` ranges of each word).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeOracle {
    map: BTreeMap<usize, (usize, u64)>,
    words: BTreeMap<usize, u64>,
    dups: BTreeMap<u64, usize>,
    next_word: u64,
}

impl RangeOracle {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of stored ranges.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every stored range in order.
    pub fn ranges(&self) -> Vec<(RangeInclusive<usize>, u64)> {
        self.map.iter().map(|(&s, &(e, id))| (s..=e, id)).collect()
    }

    /// Stored ranges overlapping `[a, b]`, in order.
    pub fn overlapping(&self, a: usize, b: usize) -> Vec<(RangeInclusive<usize>, u64)> {
        let mut out = Vec::new();
        if let Some((&s, &(e, id))) = self.map.range(..a).next_back() {
            if e >= a {
                out.push((s..=e, id));
            }
        }
        for (&s, &(e, id)) in self.map.range(a..=b) {
            out.push((s..=e, id));
        }
        out
    }

    /// Make `[a, b]` empty, trimming partly covered ranges.
    pub fn clear(&mut self, a: usize, b: usize) {
        for (r, id) in self.overlapping(a, b) {
            let (s, e) = (*r.start(), *r.end());
            self.map.remove(&s);
            let word = self.words.remove(&s).unwrap_or_default();
            let (left, right) = (s < a, e > b);
            if left {
                self.map.insert(s, (a - 1, id));
                self.words.insert(s, word);
            }
            if right {
                self.map.insert(b + 1, (e, id));
                self.words.insert(b + 1, word);
            }
            if left && right {
                *self.dups.entry(word).or_insert(0) += 1;
            } else if !left && !right {
                if let Some(d) = self.dups.get_mut(&word) {
                    *d -= 1;
                    if *d == 0 {
                        self.dups.remove(&word);
                    }
                }
            }
        }
    }

    /// Overwrite `[a, b]` with a fresh value carrying `id`.
    pub fn store(&mut self, a: usize, b: usize, id: u64) {
        self.clear(a, b);
        self.map.insert(a, (b, id));
        self.next_word += 1;
        self.words.insert(a, self.next_word);
    }

    /// Every range now holds a reference of its own (after a clone, a rebuild or storing
    /// back what an owning iteration handed out): ranges for which `keep(start)` says so
    /// keep their word (the same pointer, e.g. an `Arc` clone), the others get a fresh one.
    pub fn own_all(&mut self, keep: impl Fn(usize) -> bool) {
        for (&s, w) in self.words.iter_mut() {
            if !keep(s) {
                self.next_word += 1;
                *w = self.next_word;
            }
        }
        self.dups.clear();
    }

    /// What an owning iteration yields: for each word, its last `ranges - dups` ranges
    /// (every reference handed out once), in index order.
    pub fn last_pieces(&self) -> Vec<(RangeInclusive<usize>, u64)> {
        let mut skip = self.dups.clone();
        let mut out = Vec::new();
        for (&s, &(e, id)) in &self.map {
            let w = self.words.get(&s).copied().unwrap_or_default();
            match skip.get_mut(&w) {
                Some(d) if *d > 0 => *d -= 1,
                _ => out.push((s..=e, id)),
            }
        }
        out
    }

    /// The stored range containing `i`.
    pub fn get(&self, i: usize) -> Option<(RangeInclusive<usize>, u64)> {
        let (&s, &(e, id)) = self.map.range(..=i).next_back()?;
        (e >= i).then_some((s..=e, id))
    }

    /// What `walk(i)` must return: the stored range containing `i`, or the maximal empty
    /// range around it.
    pub fn walk(&self, i: usize) -> (RangeInclusive<usize>, Option<u64>) {
        if let Some((r, id)) = self.get(i) {
            return (r, Some(id));
        }
        let lo = match self.map.range(..i).next_back() {
            Some((_, &(e, _))) => e + 1,
            None => 0,
        };
        let hi = match self.map.range(i..).next() {
            Some((&s, _)) => s - 1,
            None => usize::MAX,
        };
        (lo..=hi, None)
    }

    /// The maximal empty runs, in order.
    pub fn gaps(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut next = Some(0usize);
        for (&s, &(e, _)) in &self.map {
            if let Some(n) = next {
                if s > n {
                    out.push((n, s - 1));
                }
            }
            next = e.checked_add(1);
        }
        if let Some(n) = next {
            out.push((n, usize::MAX));
        }
        out
    }

    /// Linear-scan gap search: the lowest (or, with `rev`, highest) start `s` such that
    /// `[s, s + size - 1]` is empty and inside `[lo, hi]`; `None` if nothing fits. The
    /// caller has checked `size >= 1` and `hi - lo >= size - 1`.
    pub fn gap_search(&self, lo: usize, hi: usize, size: usize, rev: bool) -> Option<usize> {
        let fits = |&(x, y): &(usize, usize)| {
            let a = x.max(lo);
            let b = y.min(hi);
            (a <= b && b - a >= size - 1).then_some((a, b))
        };
        let gaps = self.gaps();
        if rev {
            gaps.iter()
                .rev()
                .find_map(fits)
                .map(|(_, b)| b - (size - 1))
        } else {
            gaps.iter().find_map(fits).map(|(a, _)| a)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_trims_and_walk_merges_empties() {
        let mut o = RangeOracle::new();
        o.store(10, 20, 1);
        o.store(15, 16, 2);
        assert_eq!(o.ranges(), [(10..=14, 1), (15..=16, 2), (17..=20, 1)]);
        o.clear(14, 17);
        assert_eq!(o.walk(15), (14..=17, None));
        assert_eq!(o.walk(0), (0..=9, None));
        assert_eq!(o.gaps(), [(0, 9), (14, 17), (21, usize::MAX)]);
        assert_eq!(o.gap_search(0, 100, 4, false), Some(0));
        assert_eq!(o.gap_search(10, 100, 4, false), Some(14));
        assert_eq!(o.gap_search(10, 19, 4, true), Some(14));
        assert_eq!(o.gap_search(10, 19, 5, true), None);
        // The two pieces of the first store share its value.
        assert_eq!(o.last_pieces(), [(18..=20, 1)]);
        o.own_all(|_| false);
        assert_eq!(o.last_pieces(), [(10..=13, 1), (18..=20, 1)]);
        o.store(usize::MAX, usize::MAX, 3);
        assert_eq!(o.walk(usize::MAX - 1), (21..=usize::MAX - 1, None));
    }
}
