//! Shared helpers for the public-API tests: a `BTreeMap` oracle with the maple tree's
//! semantics, range normalisation and a few comparison helpers.
//!
//! # Oracle semantics (decided from the kernel, lib/maple_tree.c and its test suites)
//!
//! * Every index maps to one entry or to nothing. A store over `[first, last]` trims the
//!   stored ranges it partly covers and removes the ones it covers completely.
//! * Adjacent stored ranges are **never merged**, even when they hold the same value: every
//!   store creates its own range (the kernel only merges *empty* ranges — a NULL store widens
//!   itself over neighbouring NULLs, `mas_wr_extend_null` — and never compares entries).
//!   Kernel evidence: `check_iteration` (lib/test_maple_tree.c) stores entry 78's own value
//!   over 780..=785 and then expects the next `mas_find` to return 786..=789 holding that
//!   same value — the two pieces stay separate ranges.
//!   Empty space therefore needs no bookkeeping here: it is simply "not in the map", and
//!   `walk` reports the maximal empty run around an index.
//! * `erase(i)` empties the whole stored range containing `i`.
//! * `empty_area*` follow `mas_empty_area` / `mas_empty_area_rev`: `Invalid` when the window
//!   is empty, the size is 0 or the window is narrower than the size; `Busy` when no empty run
//!   of that size lies inside the window.
//! * `alloc_cyclic` follows `mas_alloc_cyclic`, including the tree-wide "wrapped" flag: when
//!   an allocation hands out `usize::MAX` (so `next` wraps to 0) the *following* successful
//!   allocation reports `wrapped = true`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds, RangeInclusive};

/// Why a gap search failed (mirrors `maple::GapError`, kept separate so the oracle does not
/// depend on the engine's types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gap {
    /// No empty run of that size in the window.
    Busy,
    /// Size 0, empty window or window narrower than the size.
    Invalid,
}

/// Why an allocation failed (mirrors `maple::AllocErrorKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alloc {
    /// No room.
    Busy,
    /// Bad size or window.
    Invalid,
    /// The tree is not an allocation tree.
    NotAllocTree,
}

/// Normalise any range to an inclusive `(first, last)` pair; `None` when it is empty.
pub fn bounds(r: &impl RangeBounds<usize>) -> Option<(usize, usize)> {
    let first = match r.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let last = match r.end_bound() {
        Bound::Included(&e) => e,
        Bound::Excluded(&e) => e.checked_sub(1)?,
        Bound::Unbounded => usize::MAX,
    };
    (first <= last).then_some((first, last))
}

/// The oracle: start -> (last, value), non-overlapping.
#[derive(Clone, Debug, Default)]
pub struct Oracle {
    map: BTreeMap<usize, (usize, usize)>,
    alloc: bool,
    wrapped: bool,
}

impl Oracle {
    /// A plain range map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An allocation map (enables `alloc_*`).
    pub fn new_alloc() -> Self {
        Oracle {
            alloc: true,
            ..Self::default()
        }
    }

    /// Whether `alloc_*` are allowed.
    pub fn is_alloc(&self) -> bool {
        self.alloc
    }

    /// Number of stored ranges.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No stored range at all.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every stored range in order.
    pub fn entries(&self) -> Vec<(RangeInclusive<usize>, usize)> {
        self.map.iter().map(|(&s, &(e, v))| (s..=e, v)).collect()
    }

    /// The stored range containing `i`.
    fn containing(&self, i: usize) -> Option<(usize, usize, usize)> {
        let (&s, &(e, v)) = self.map.range(..=i).next_back()?;
        (e >= i).then_some((s, e, v))
    }

    /// Make `[first, last]` empty, trimming partly covered neighbours.
    fn clear(&mut self, first: usize, last: usize) {
        // A range starting before `first` may reach into the cleared span.
        if let Some((s, e, v)) = self.containing(first) {
            if s < first {
                self.map.insert(s, (first - 1, v));
                if e > last {
                    self.map.insert(last + 1, (e, v));
                    return;
                }
            }
        }
        let inside: Vec<usize> = self.map.range(first..=last).map(|(&s, _)| s).collect();
        for s in inside {
            let (e, v) = self.map.remove(&s).expect("present");
            if e > last {
                self.map.insert(last + 1, (e, v));
            }
        }
    }

    /// `store_range`; `false` when the range is empty (the tree returns `StoreError`).
    pub fn store(&mut self, r: impl RangeBounds<usize>, v: usize) -> bool {
        let Some((first, last)) = bounds(&r) else {
            return false;
        };
        self.clear(first, last);
        self.map.insert(first, (last, v));
        true
    }

    /// `punch`; `false` when the range is empty.
    pub fn punch(&mut self, r: impl RangeBounds<usize>) -> bool {
        let Some((first, last)) = bounds(&r) else {
            return false;
        };
        self.clear(first, last);
        true
    }

    /// Whether any index in `[first, last]` is occupied.
    pub fn occupied(&self, first: usize, last: usize) -> bool {
        self.find(first..=last).is_some()
    }

    /// `insert_range`: `Err(true)` = occupied, `Err(false)` = invalid range.
    pub fn insert(&mut self, r: impl RangeBounds<usize>, v: usize) -> Result<(), bool> {
        let (first, last) = bounds(&r).ok_or(false)?;
        if self.occupied(first, last) {
            return Err(true);
        }
        self.map.insert(first, (last, v));
        Ok(())
    }

    /// `erase(i)`: remove the whole range containing `i`.
    pub fn erase(&mut self, i: usize) -> Option<(RangeInclusive<usize>, usize)> {
        let (s, e, v) = self.containing(i)?;
        self.map.remove(&s);
        Some((s..=e, v))
    }

    /// `load(i)`.
    pub fn load(&self, i: usize) -> Option<usize> {
        self.containing(i).map(|(_, _, v)| v)
    }

    /// `walk(i)`: the stored range around `i`, or the maximal empty run around it.
    pub fn walk(&self, i: usize) -> (RangeInclusive<usize>, Option<usize>) {
        if let Some((s, e, v)) = self.containing(i) {
            return (s..=e, Some(v));
        }
        let lo = match self.map.range(..i).next_back() {
            Some((_, &(e, _))) => e + 1,
            None => 0,
        };
        let hi = match i.checked_add(1).and_then(|n| self.map.range(n..).next()) {
            Some((&s, _)) => s - 1,
            None => usize::MAX,
        };
        (lo..=hi, None)
    }

    /// `find(r)`: first stored range overlapping `r`.
    pub fn find(&self, r: impl RangeBounds<usize>) -> Option<(RangeInclusive<usize>, usize)> {
        let (first, last) = bounds(&r)?;
        if let Some((s, e, v)) = self.containing(first) {
            return Some((s..=e, v));
        }
        let (&s, &(e, v)) = self.map.range(first..=last).next()?;
        Some((s..=e, v))
    }

    /// `find_rev(r)`: last stored range overlapping `r`.
    pub fn find_rev(&self, r: impl RangeBounds<usize>) -> Option<(RangeInclusive<usize>, usize)> {
        let (first, last) = bounds(&r)?;
        let (&s, &(e, v)) = self.map.range(..=last).next_back()?;
        (e >= first).then_some((s..=e, v))
    }

    /// `range(r)`: every stored range overlapping `r`, in order.
    pub fn range(&self, r: impl RangeBounds<usize>) -> Vec<(RangeInclusive<usize>, usize)> {
        let Some((first, last)) = bounds(&r) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some((s, e, v)) = self.containing(first) {
            if s < first {
                out.push((s..=e, v));
            }
        }
        out.extend(self.map.range(first..=last).map(|(&s, &(e, v))| (s..=e, v)));
        out
    }

    fn check_window(window: &impl RangeBounds<usize>, size: usize) -> Result<(usize, usize), Gap> {
        let (first, last) = bounds(window).ok_or(Gap::Invalid)?;
        if size == 0 || last - first < size - 1 {
            return Err(Gap::Invalid);
        }
        Ok((first, last))
    }

    /// `empty_area`: lowest start of an empty run of `size` inside `window` (linear scan).
    pub fn empty_area(&self, window: impl RangeBounds<usize>, size: usize) -> Result<usize, Gap> {
        let (first, last) = Self::check_window(&window, size)?;
        // `cursor`: lowest index not known to be occupied.
        let mut cursor = first;
        if let Some((_, e, _)) = self.containing(first) {
            cursor = e.checked_add(1).ok_or(Gap::Busy)?;
        }
        if cursor > last {
            return Err(Gap::Busy);
        }
        for (&s, &(e, _)) in self.map.range(cursor..=last) {
            if s - cursor >= size {
                return Ok(cursor);
            }
            cursor = e.checked_add(1).ok_or(Gap::Busy)?;
            if cursor > last {
                return Err(Gap::Busy);
            }
        }
        if last - cursor >= size - 1 {
            Ok(cursor)
        } else {
            Err(Gap::Busy)
        }
    }

    /// `empty_area_rev`: highest start of an empty run of `size` inside `window`.
    pub fn empty_area_rev(
        &self,
        window: impl RangeBounds<usize>,
        size: usize,
    ) -> Result<usize, Gap> {
        let (first, last) = Self::check_window(&window, size)?;
        // `end`: highest index not known to be occupied.
        let mut end = last;
        for (&s, &(e, _)) in self.map.range(..=last).rev() {
            if e < end {
                let lo = (e + 1).max(first);
                if end - lo >= size - 1 {
                    return Ok(end - (size - 1));
                }
            }
            if s <= first {
                return Err(Gap::Busy);
            }
            end = s - 1;
        }
        if end - first >= size - 1 {
            Ok(end - (size - 1))
        } else {
            Err(Gap::Busy)
        }
    }

    fn gap_to_alloc(g: Gap) -> Alloc {
        match g {
            Gap::Busy => Alloc::Busy,
            Gap::Invalid => Alloc::Invalid,
        }
    }

    /// `alloc_range`.
    pub fn alloc_range(
        &mut self,
        size: usize,
        v: usize,
        window: impl RangeBounds<usize>,
    ) -> Result<usize, Alloc> {
        if !self.alloc {
            return Err(Alloc::NotAllocTree);
        }
        let s = self.empty_area(window, size).map_err(Self::gap_to_alloc)?;
        self.map.insert(s, (s + (size - 1), v));
        Ok(s)
    }

    /// `alloc_rrange`.
    pub fn alloc_rrange(
        &mut self,
        size: usize,
        v: usize,
        window: impl RangeBounds<usize>,
    ) -> Result<usize, Alloc> {
        if !self.alloc {
            return Err(Alloc::NotAllocTree);
        }
        let s = self
            .empty_area_rev(window, size)
            .map_err(Self::gap_to_alloc)?;
        self.map.insert(s, (s + (size - 1), v));
        Ok(s)
    }

    /// `alloc_cyclic`, with `mas_alloc_cyclic`'s wrap reporting.
    pub fn alloc_cyclic(
        &mut self,
        window: impl RangeBounds<usize>,
        next: &mut usize,
        v: usize,
    ) -> Result<(usize, bool), Alloc> {
        if !self.alloc {
            return Err(Alloc::NotAllocTree);
        }
        let (min, max) = bounds(&window).ok_or(Alloc::Invalid)?;
        let lo = min.max(*next);
        let mut res = if lo > max {
            Err(Gap::Invalid)
        } else {
            self.empty_area(lo..=max, 1).map(|s| (s, false))
        };
        if res.is_ok() && self.wrapped {
            self.wrapped = false;
            res = res.map(|(s, _)| (s, true));
        }
        if res.is_err() && lo > min {
            res = self.empty_area(min..=max, 1).map(|s| (s, true));
        }
        let (s, wrapped) = res.map_err(Self::gap_to_alloc)?;
        self.map.insert(s, (s, v));
        *next = s.wrapping_add(1);
        if *next == 0 {
            self.wrapped = true;
        }
        Ok((s, wrapped))
    }
}

/// Deterministic SplitMix64, for reproducible pseudo-random streams in tests.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// Next 64-bit value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-ish value below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Multiplier from `MAPLE_STRESS` (unset or unparsable = 1).
pub fn stress() -> u64 {
    std::env::var("MAPLE_STRESS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n: &u64| n > 0)
        .unwrap_or(1)
}

// ---------------------------------------------------------------------------------------
// A tree and its oracle, driven together. Used by the kernel-scenario ports so that every
// scenario is also checked in full against the oracle, with `validate()` after each write.
// ---------------------------------------------------------------------------------------

use maple::{MapleTree, Value};

/// `xa_mk_value(x)`: a small integer entry.
pub fn xv(x: usize) -> Value {
    Value::new(x).unwrap_or_else(|| panic!("{x} does not fit in a Value (MAX {})", Value::MAX))
}

/// `xa_mk_value(index & LONG_MAX)` as the kernel's `mtree_insert_index` stores it.
pub fn xv_index(index: usize) -> Value {
    xv(index & Value::MAX)
}

/// Compare the whole tree with the oracle and run `validate()`; panics with a dump on a
/// mismatch.
pub fn assert_matches(tree: &MapleTree<Value>, o: &Oracle, what: &str) {
    if let Err(e) = tree.validate() {
        panic!("{what}: validate failed: {e}\n{}", dump(tree));
    }
    let got: Vec<(RangeInclusive<usize>, usize)> =
        tree.read().iter().map(|(r, v)| (r, v.get())).collect();
    let want = o.entries();
    if got != want {
        let at = got
            .iter()
            .zip(want.iter())
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: contents differ at entry {at}: tree {:?} oracle {:?} (tree has {}, oracle {})\n{}",
            got.get(at),
            want.get(at),
            got.len(),
            want.len(),
            dump(tree)
        );
    }
    assert_eq!(tree.len(), o.len(), "{what}: len()");
    assert_eq!(tree.is_empty(), o.is_empty(), "{what}: is_empty()");
    let rev: Vec<(RangeInclusive<usize>, usize)> = tree
        .read()
        .iter()
        .rev()
        .map(|(r, v)| (r, v.get()))
        .collect();
    assert!(
        rev.iter().rev().eq(want.iter()),
        "{what}: iter().rev() differs from iter()"
    );
}

/// The tree's `Debug` output, cut to a readable size.
pub fn dump<E: maple::Entry>(tree: &MapleTree<E>) -> String
where
    MapleTree<E>: std::fmt::Debug,
{
    let s = format!("{tree:?}");
    if s.len() > 20_000 {
        format!(
            "{}... ({} bytes of dump cut)",
            &s[..20_000],
            s.len() - 20_000
        )
    } else {
        s
    }
}

/// A `MapleTree<Value>` and its oracle, changed together.
pub struct Pair {
    /// The tree under test.
    pub tree: MapleTree<Value>,
    /// The model.
    pub o: Oracle,
    /// Validate (O(n)) after every write; turn off inside very long loops.
    pub validate_each: bool,
}

impl Pair {
    /// A plain tree (`mt_init_flags(mt, 0)`).
    pub fn new() -> Self {
        Pair {
            tree: MapleTree::new(),
            o: Oracle::new(),
            validate_each: true,
        }
    }

    /// An allocation tree (`MT_FLAGS_ALLOC_RANGE`).
    pub fn new_alloc() -> Self {
        Pair {
            tree: MapleTree::new_alloc(),
            o: Oracle::new_alloc(),
            validate_each: true,
        }
    }

    fn after_write(&self, what: &dyn Fn() -> String) {
        if self.validate_each {
            if let Err(e) = self.tree.validate() {
                panic!(
                    "validate after {} failed: {e}\n{}",
                    what(),
                    dump(&self.tree)
                );
            }
        }
    }

    /// `mtree_store_range(first, last, xa_mk_value(v))`.
    pub fn store(&mut self, first: usize, last: usize, v: usize) {
        self.tree
            .lock()
            .store_range(first..=last, xv(v))
            .unwrap_or_else(|e| panic!("store {first}..={last}: {e}"));
        assert!(self.o.store(first..=last, v));
        self.after_write(&|| format!("store {first}..={last} = {v}"));
    }

    /// `mtree_store_range(first, last, NULL)`.
    pub fn punch(&mut self, first: usize, last: usize) {
        self.tree
            .lock()
            .punch(first..=last)
            .unwrap_or_else(|e| panic!("punch {first}..={last}: {e}"));
        assert!(self.o.punch(first..=last));
        self.after_write(&|| format!("punch {first}..={last}"));
    }

    /// `mtree_insert_range`; returns whether it was inserted (false = occupied, like
    /// `-EEXIST`), and checks the tree agrees with the oracle.
    pub fn insert(&mut self, first: usize, last: usize, v: usize) -> bool {
        let got = self.tree.lock().insert_range(first..=last, xv(v));
        let want = self.o.insert(first..=last, v);
        match (&got, want) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(true)) => assert_eq!(
                e.kind,
                maple::InsertErrorKind::Occupied,
                "insert {first}..={last}"
            ),
            (Err(e), Err(false)) => {
                assert_eq!(
                    e.kind,
                    maple::InsertErrorKind::InvalidRange,
                    "insert {first}..={last}"
                )
            }
            (g, w) => panic!(
                "insert {first}..={last}: tree {:?} oracle {w:?}",
                g.as_ref().map_err(|e| e.kind)
            ),
        }
        self.after_write(&|| format!("insert {first}..={last} = {v}"));
        got.is_ok()
    }

    /// `mtree_erase(index)`: returns the erased value; checks range and value with the
    /// oracle.
    pub fn erase(&mut self, index: usize) -> Option<usize> {
        let got = self.tree.lock().erase(index).map(|(r, v)| (r, v.get()));
        let want = self.o.erase(index);
        assert_eq!(got, want, "erase({index})");
        self.after_write(&|| format!("erase {index}"));
        got.map(|(_, v)| v)
    }

    /// `mtree_load(index)`, checked against the oracle.
    pub fn load(&self, index: usize) -> Option<usize> {
        let got = self.tree.read().load(index).map(Value::get);
        assert_eq!(got, self.o.load(index), "load({index})");
        got
    }

    /// `mas_walk` at `index`, checked against the oracle.
    pub fn walk(&self, index: usize) -> (RangeInclusive<usize>, Option<usize>) {
        let r = self.tree.read();
        let (span, v) = r.walk(index);
        let got = (span, v.map(Value::get));
        assert_eq!(got, self.o.walk(index), "walk({index})");
        got
    }

    /// `find(first..=last)`, checked against the oracle.
    pub fn find(&self, first: usize, last: usize) -> Option<(RangeInclusive<usize>, usize)> {
        let got = self
            .tree
            .read()
            .find(first..=last)
            .map(|(r, v)| (r, v.get()));
        assert_eq!(got, self.o.find(first..=last), "find({first}..={last})");
        got
    }

    /// `find_rev(first..=last)`, checked against the oracle.
    pub fn find_rev(&self, first: usize, last: usize) -> Option<(RangeInclusive<usize>, usize)> {
        let got = self
            .tree
            .read()
            .find_rev(first..=last)
            .map(|(r, v)| (r, v.get()));
        assert_eq!(
            got,
            self.o.find_rev(first..=last),
            "find_rev({first}..={last})"
        );
        got
    }

    /// Full comparison with the oracle (contents, len, validate).
    pub fn check(&self, what: &str) {
        assert_matches(&self.tree, &self.o, what);
    }

    /// `mtree_destroy` + re-init with the same flags.
    pub fn destroy(&mut self) {
        *self = if self.o.is_alloc() {
            Pair::new_alloc()
        } else {
            Pair::new()
        };
    }

    /// The kernel's `check_seq(mt, max)`: insert singletons `0..=max` (value = index), checking
    /// every index inserted so far after each insert for small `max`, and the neighbour above.
    pub fn check_seq(&mut self, max: usize) {
        assert!(self.o.is_empty(), "check_seq needs an empty tree");
        for i in 0..=max {
            assert!(self.insert(i, i, i), "insert {i}");
            if max <= 400 {
                for j in 0..=i {
                    assert_eq!(self.load(j), Some(j));
                }
            }
            if i > 0 {
                assert!(self.tree.height() > 0);
            }
            assert_eq!(self.load(i + 1), None);
        }
        self.check("check_seq");
    }
}
