//! A dumb oracle: a BTreeMap from range start to (end, value), with the tree's semantics.

use std::collections::BTreeMap;

#[derive(Default, Clone, Debug)]
pub(crate) struct Model {
    pub(crate) m: BTreeMap<usize, (usize, usize)>,
}

impl Model {
    /// Store `v` (0 = empty) over [a, b].
    pub(crate) fn store(&mut self, a: usize, b: usize, v: usize) {
        // Trim anything overlapping.
        let overlapping: Vec<(usize, (usize, usize))> = self
            .m
            .range(..=b)
            .rev()
            .take_while(|(_, (e, _))| *e >= a)
            .map(|(s, x)| (*s, *x))
            .collect();
        for (s, (e, val)) in overlapping {
            self.m.remove(&s);
            if s < a {
                self.m.insert(s, (a - 1, val));
            }
            if e > b {
                self.m.insert(b + 1, (e, val));
            }
        }
        if v != 0 {
            self.m.insert(a, (b, v));
        }
    }

    pub(crate) fn load(&self, i: usize) -> Option<usize> {
        self.m
            .range(..=i)
            .next_back()
            .filter(|(_, (e, _))| *e >= i)
            .map(|(_, (_, v))| *v)
    }

    pub(crate) fn walk(&self, i: usize) -> (usize, usize, Option<usize>) {
        if let Some((s, (e, v))) = self.m.range(..=i).next_back() {
            if *e >= i {
                return (*s, *e, Some(*v));
            }
        }
        let lo = self
            .m
            .range(..i)
            .next_back()
            .map(|(_, (e, _))| e + 1)
            .unwrap_or(0);
        let hi = self
            .m
            .range(i..)
            .next()
            .map(|(s, _)| s - 1)
            .unwrap_or(usize::MAX);
        (lo, hi, None)
    }

    pub(crate) fn entries(&self) -> Vec<(usize, usize, usize)> {
        self.m.iter().map(|(s, (e, v))| (*s, *e, *v)).collect()
    }

    pub(crate) fn empty_area(&self, lo: usize, hi: usize, size: usize, rev: bool) -> Option<usize> {
        // Free runs intersected with the window.
        let mut runs = Vec::new();
        let mut cur = Some(0usize);
        for (s, (e, _)) in &self.m {
            if let Some(c) = cur {
                if *s > c {
                    runs.push((c, s - 1));
                }
            }
            cur = e.checked_add(1);
        }
        if let Some(c) = cur {
            runs.push((c, usize::MAX));
        }
        let fits = |&(a, b): &(usize, usize)| {
            let a = a.max(lo);
            let b = b.min(hi);
            (a <= b && b - a >= size - 1).then(|| if rev { b - (size - 1) } else { a })
        };
        if rev {
            runs.iter().rev().find_map(fits)
        } else {
            runs.iter().find_map(fits)
        }
    }
}
