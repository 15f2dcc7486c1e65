//! Aligned gap search, aligned allocation and exact-range removal against brute-force
//! models.
//!
//! Two models, cross-checked against each other:
//! - [`brute_index`]: tries every start of the window, one index at a time (small windows
//!   only): the definition, with no arithmetic to get wrong;
//! - [`brute_runs`]: walks the free runs and rounds with 128-bit arithmetic (any window).
//!
//! Trees are built over small universes placed at 0, in the middle of the index space and
//! against `usize::MAX`, so every edge is exercised; every window of a small universe is
//! tried with every size, alignment and offset class. Larger trees (four levels and more)
//! are checked on random requests, and quickcheck shrinks failing write sequences.

mod common;

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use common::{stress, xv, SplitMix64};
use maple::{AreaError, GapError, MapleTree, RemoveError, Value};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

/// Stored ranges `start -> end` (inclusive), non-overlapping.
#[derive(Clone, Debug, Default)]
struct Model {
    map: BTreeMap<usize, usize>,
}

impl Model {
    fn is_free(&self, i: usize) -> bool {
        match self.map.range(..=i).next_back() {
            Some((_, &e)) => e < i,
            None => true,
        }
    }

    fn clear(&mut self, a: usize, b: usize) {
        let over: Vec<(usize, usize)> = self
            .map
            .range(..=b)
            .filter(|&(_, &e)| e >= a)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in over {
            self.map.remove(&s);
            if s < a {
                self.map.insert(s, a - 1);
            }
            if e > b {
                self.map.insert(b + 1, e);
            }
        }
    }

    fn store(&mut self, a: usize, b: usize) {
        self.clear(a, b);
        self.map.insert(a, b);
    }

    /// Maximal free runs, ascending.
    fn runs(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut next = Some(0usize);
        for (&s, &e) in &self.map {
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

    /// The first stored range overlapping `[a, b]`.
    fn first_overlap(&self, a: usize, b: usize) -> Option<(usize, usize)> {
        if let Some((&s, &e)) = self.map.range(..a).next_back() {
            if e >= a {
                return Some((s, e));
            }
        }
        self.map.range(a..=b).next().map(|(&s, &e)| (s, e))
    }
}

/// Argument checks, in the order the tree makes them.
fn check_args(
    window: Option<(usize, usize)>,
    size: usize,
    align: usize,
) -> Result<(usize, usize), AreaError> {
    let (lo, hi) = window.ok_or(AreaError::EmptyWindow)?;
    if size == 0 {
        return Err(AreaError::ZeroSize);
    }
    if align == 0 || align & (align - 1) != 0 {
        return Err(AreaError::BadAlign);
    }
    if (hi as u128) - (lo as u128) + 1 < size as u128 {
        return Err(AreaError::WindowTooSmall);
    }
    Ok((lo, hi))
}

/// Whether `s` satisfies `(s - offset) % align == 0` in exact integer arithmetic.
fn aligned(s: usize, align: usize, offset: usize) -> bool {
    (s as i128 - offset as i128).rem_euclid(align as i128) == 0
}

/// Every start of the window, one at a time, every index of the run checked.
fn brute_index(
    m: &Model,
    window: Option<(usize, usize)>,
    size: usize,
    align: usize,
    offset: usize,
    rev: bool,
) -> Result<usize, AreaError> {
    let (lo, hi) = check_args(window, size, align)?;
    let last_start = hi - (size - 1);
    let ok = |s: usize| aligned(s, align, offset) && (s..=s + (size - 1)).all(|i| m.is_free(i));
    let found = if rev {
        (lo..=last_start).rev().find(|&s| ok(s))
    } else {
        (lo..=last_start).find(|&s| ok(s))
    };
    found.ok_or(AreaError::Busy)
}

/// The free runs, clipped to the window, rounded in 128-bit arithmetic.
fn brute_runs(
    m: &Model,
    window: Option<(usize, usize)>,
    size: usize,
    align: usize,
    offset: usize,
    rev: bool,
) -> Result<usize, AreaError> {
    let (lo, hi) = check_args(window, size, align)?;
    let (al, off, sz) = (align as u128, (offset % align) as u128, size as u128);
    let fit = |(x, y): (usize, usize)| -> Option<usize> {
        let a = x.max(lo) as u128;
        let b = y.min(hi) as u128;
        if a > b || b - a + 1 < sz {
            return None;
        }
        let s = if rev {
            let top = b + 1 - sz;
            top.checked_sub((top % al + al - off) % al)?
        } else {
            a + (off + al - a % al) % al
        };
        (s >= a && s + sz - 1 <= b).then_some(s as usize)
    };
    let runs = m.runs();
    let found = if rev {
        runs.into_iter().rev().find_map(fit)
    } else {
        runs.into_iter().find_map(fit)
    };
    found.ok_or(AreaError::Busy)
}

/// The tree's answer to the aligned search.
fn tree_aligned(
    t: &MapleTree<Value>,
    window: Option<(usize, usize)>,
    size: usize,
    align: usize,
    offset: usize,
    rev: bool,
) -> Result<usize, AreaError> {
    let r = t.read();
    match window {
        Some((lo, hi)) if rev => r.empty_area_rev_aligned(lo..=hi, size, align, offset),
        Some((lo, hi)) => r.empty_area_aligned(lo..=hi, size, align, offset),
        #[allow(clippy::reversed_empty_ranges)]
        None if rev => r.empty_area_rev_aligned(5..5, size, align, offset),
        None => r.empty_area_aligned(5..5, size, align, offset),
    }
}

/// Check one request against both models (the index model only where the window is
/// small); also the unaligned calls when `align == 1`.
fn check_one(
    t: &MapleTree<Value>,
    m: &Model,
    window: (usize, usize),
    size: usize,
    align: usize,
    offset: usize,
    rev: bool,
) {
    let w = Some(window);
    let want = brute_runs(m, w, size, align, offset, rev);
    if window.1 - window.0 < 4096 {
        assert_eq!(
            brute_index(m, w, size, align, offset, rev),
            want,
            "the two models disagree: {window:x?} size {size} align {align} offset {offset} rev {rev}"
        );
    }
    let got = tree_aligned(t, w, size, align, offset, rev);
    if got != want {
        panic!(
            "aligned search: window {window:x?} size {size:#x} align {align:#x} offset {offset:#x} \
             rev {rev}: tree {got:x?}, model {want:x?}\n{}",
            t.dump()
        );
    }
    if align == 1 {
        let (lo, hi) = window;
        let r = t.read();
        let plain = if rev {
            r.empty_area_rev(lo..=hi, size)
        } else {
            r.empty_area(lo..=hi, size)
        };
        assert_eq!(plain, want.map_err(GapError::from), "unaligned search");
    }
}

/// A random tree over `[base, base + span - 1]` with ranges of width up to `wmax`.
fn random_tree(
    alloc: bool,
    base: usize,
    span: usize,
    ops: usize,
    wmax: usize,
    rng: &mut SplitMix64,
) -> (MapleTree<Value>, Model) {
    let t: MapleTree<Value> = if alloc {
        MapleTree::new_alloc()
    } else {
        MapleTree::new()
    };
    let mut m = Model::default();
    for i in 0..ops {
        let a = base + rng.below(span as u64) as usize;
        let w = rng.below(wmax as u64) as usize;
        let b = a.saturating_add(w).min(base + (span - 1));
        let wg = t.lock();
        if rng.below(4) == 0 {
            wg.punch(a..=b).unwrap();
            m.clear(a, b);
        } else {
            wg.store_range(a..=b, xv(i)).unwrap();
            m.store(a, b);
        }
    }
    t.validate().unwrap();
    (t, m)
}

/// Every window of a small universe, every size up to 6, alignments 1..=16 with every
/// offset, both directions; universes at 0, in the middle and against `usize::MAX`.
#[test]
fn every_window_of_small_universes() {
    const SPAN: usize = 40;
    let mut rng = SplitMix64(12);
    for base in [0, 1 << 40, usize::MAX - (SPAN - 1)] {
        for (alloc, ops, wmax) in [(true, 30, 3), (false, 30, 3), (true, 12, 6)] {
            let (t, m) = random_tree(alloc, base, SPAN, ops, wmax, &mut rng);
            for lo in base..=base + (SPAN - 1) {
                for hi in lo..=base + (SPAN - 1) {
                    for size in 1..=6.min(hi - lo + 1) {
                        for align in [1usize, 2, 4, 8, 16] {
                            for offset in 0..align {
                                for rev in [false, true] {
                                    check_one(&t, &m, (lo, hi), size, align, offset, rev);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Windows reaching outside a universe (into the free space around it) and the whole index
/// space, with large alignments and offsets beyond the alignment.
#[test]
fn windows_around_universes() {
    const SPAN: usize = 64;
    let mut rng = SplitMix64(13);
    for base in [0, 1 << 33, usize::MAX - (SPAN - 1)] {
        for alloc in [true, false] {
            let (t, m) = random_tree(alloc, base, SPAN, 40, 4, &mut rng);
            let edges = [
                0,
                1,
                base.saturating_sub(100),
                base,
                base + 7,
                base + SPAN / 2,
                base + (SPAN - 1),
                (base + (SPAN - 1)).saturating_add(1),
                (base + (SPAN - 1)).saturating_add(1000),
                usize::MAX - 1,
                usize::MAX,
            ];
            for &lo in &edges {
                for &hi in &edges {
                    if lo > hi {
                        continue;
                    }
                    for size in [1, 2, 3, 5, 17, 64, 1 << 20] {
                        if hi - lo < size - 1 {
                            continue;
                        }
                        for align in [1usize, 2, 16, 64, 1 << 12, 1 << 21, 1 << 63] {
                            for offset in [0, 1, align - 1, align, 12345, usize::MAX] {
                                for rev in [false, true] {
                                    check_one(&t, &m, (lo, hi), size, align, offset, rev);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Trees four levels deep and more: random requests over the layout and around it.
#[test]
fn random_requests_on_deep_trees() {
    let mut rng = SplitMix64(14);
    for (alloc, base) in [
        (true, 0x1000),
        (false, 0x1000),
        (true, usize::MAX - 0xf_ffff),
    ] {
        let span = 0x10_0000;
        let (t, m) = random_tree(alloc, base, span, 3000, 600, &mut rng);
        assert!(t.height() >= 3, "height {}", t.height());
        for _ in 0..4000 * stress() {
            let lo = base
                .saturating_sub(0x100)
                .saturating_add(rng.below(span as u64 + 0x200) as usize);
            let hi = lo.saturating_add(rng.below(span as u64) as usize);
            let class = match rng.below(3) {
                0 => 8,
                1 => 300,
                _ => 5000,
            };
            let size = 1 + rng.below(class) as usize;
            let align = 1usize << rng.below(14);
            let offset = match rng.below(3) {
                0 => 0,
                1 => rng.below(align as u64) as usize,
                _ => rng.next_u64() as usize,
            };
            if hi - lo < size - 1 {
                continue;
            }
            check_one(&t, &m, (lo, hi), size, align, offset, rng.below(2) == 0);
        }
    }
}

/// Every bad input is its own error value; none panics.
#[test]
fn bad_input_is_an_error_value() {
    let t: MapleTree<Value> = MapleTree::new_alloc();
    t.lock().store_range(100..=199, xv(1)).unwrap();
    let r = t.read();
    for rev in [false, true] {
        let f = |w: RangeInclusive<usize>, size, align, offset| {
            if rev {
                r.empty_area_rev_aligned(w, size, align, offset)
            } else {
                r.empty_area_aligned(w, size, align, offset)
            }
        };
        assert_eq!(f(0..=99, 0, 1, 0), Err(AreaError::ZeroSize));
        assert_eq!(f(0..=99, 4, 0, 0), Err(AreaError::BadAlign));
        assert_eq!(f(0..=99, 4, 3, 0), Err(AreaError::BadAlign));
        assert_eq!(f(0..=99, 4, usize::MAX, 0), Err(AreaError::BadAlign));
        assert_eq!(f(0..=2, 4, 1, 0), Err(AreaError::WindowTooSmall));
        assert_eq!(
            f(usize::MAX..=usize::MAX, 2, 1, 0),
            Err(AreaError::WindowTooSmall)
        );
        assert_eq!(
            f(2..=usize::MAX, usize::MAX, 1, 0),
            Err(AreaError::WindowTooSmall)
        );
        assert_eq!(f(1..=usize::MAX, usize::MAX, 1, 0), Err(AreaError::Busy));
        assert_eq!(f(100..=199, 1, 1, 0), Err(AreaError::Busy));
        // The whole index space as one request.
        assert_eq!(
            f(0..=usize::MAX, usize::MAX, 1, 0),
            Err(AreaError::Busy),
            "a tree with an entry has no free run of usize::MAX indices"
        );
        // Inverted and empty windows.
        #[allow(clippy::reversed_empty_ranges)]
        {
            assert_eq!(f(9..=8, 1, 1, 0), Err(AreaError::EmptyWindow));
        }
        let g = if rev {
            r.empty_area_rev_aligned(7..7, 1, 1, 0)
        } else {
            r.empty_area_aligned(7..7, 1, 1, 0)
        };
        assert_eq!(g, Err(AreaError::EmptyWindow));
    }
    drop(r);
    // An empty tree: the whole space is one run.
    let e: MapleTree<Value> = MapleTree::new_alloc();
    let r = e.read();
    assert_eq!(r.empty_area_aligned(.., usize::MAX, 1, 0), Ok(0));
    assert_eq!(r.empty_area_rev_aligned(.., usize::MAX, 1, 0), Ok(1));
    assert_eq!(
        r.empty_area_rev_aligned(.., 1, 1 << 63, 5),
        Ok((1 << 63) + 5)
    );
    assert_eq!(r.empty_area_aligned(.., 1, 1 << 63, 5), Ok(5));
    assert_eq!(
        r.empty_area_rev_aligned(..=4, 1, 1 << 63, 5),
        Err(AreaError::Busy)
    );
    // Every error formats and is a std error.
    for e in [
        AreaError::Busy,
        AreaError::ZeroSize,
        AreaError::BadAlign,
        AreaError::EmptyWindow,
        AreaError::WindowTooSmall,
        AreaError::NotAllocTree,
    ] {
        let b: Box<dyn std::error::Error> = Box::new(e);
        assert!(!b.to_string().is_empty());
    }
}

/// A hole of exactly `size` at an aligned start is found; over-asking (`size + align - 1`,
/// then rounding) misses it and lands lower.
#[test]
fn exact_fit_that_over_asking_misses() {
    let t: MapleTree<Value> = MapleTree::new_alloc();
    let w = t.lock();
    let page = 0x1000;
    // [0, 0x20_0000) free; 0x20_0000..0x40_0000 mapped except a 4-page hole at 0x30_0000.
    w.store_range(0x20_0000..0x30_0000, xv(1)).unwrap();
    w.store_range(0x30_4000..0x40_0000, xv(2)).unwrap();
    let size = 4 * page;
    let align = 0x10_0000;
    assert_eq!(
        w.empty_area_rev_aligned(..0x40_0000, size, align, 0),
        Ok(0x30_0000)
    );
    // Over-asking: the highest run of size + align - 1 is below the mappings.
    let over = w.empty_area_rev(..0x40_0000, size + align - 1).unwrap();
    let rounded = (over + align - 1) & !(align - 1);
    assert_eq!(rounded, 0x10_0000);
    assert_eq!(
        w.empty_area_aligned(0x20_0000..0x40_0000, size, align, 0),
        Ok(0x30_0000)
    );
}

/// Aligned allocation stores where the search says, hands the value back on failure and
/// refuses plain trees.
#[test]
fn aligned_allocation() {
    let t: MapleTree<Box<u64>> = MapleTree::new_alloc();
    let mut m = Model::default();
    let mut rng = SplitMix64(15);
    let w = t.lock();
    for i in 0..3000u64 {
        let size = 1 + rng.below(40) as usize;
        let align = 1usize << rng.below(8);
        let offset = rng.below(300) as usize;
        let (lo, hi) = (rng.below(1000) as usize, 20_000 + rng.below(1000) as usize);
        let rev = rng.below(2) == 0;
        let want = brute_runs(&m, Some((lo, hi)), size, align, offset, rev);
        let got = if rev {
            w.alloc_rrange_aligned(size, align, offset, Box::new(i), lo..=hi)
        } else {
            w.alloc_range_aligned(size, align, offset, Box::new(i), lo..=hi)
        };
        match (got, want) {
            (Ok(s), Ok(x)) => {
                assert_eq!(s, x);
                m.store(s, s + size - 1);
                let (range, v) = w.walk(s);
                assert_eq!((range, v.copied()), (s..=s + size - 1, Some(i)));
            }
            (Err(e), Err(k)) => {
                assert_eq!(e.kind, k);
                assert_eq!(*e.value, i, "the value comes back");
            }
            (got, want) => panic!("alloc: tree {:?}, model {want:?}", got.map_err(|e| e.kind)),
        }
        if i % 7 == 0 {
            // Free a random allocation exactly.
            let k = rng.below(m.map.len() as u64 + 1) as usize;
            if let Some((&s, &e)) = m.map.iter().nth(k) {
                assert!(w.remove_exact(s..=e).is_ok());
                m.clear(s, e);
            }
        }
    }
    drop(w);
    t.validate().unwrap();
    let e = t
        .lock()
        .alloc_range_aligned(4, 3, 0, Box::new(7), ..)
        .unwrap_err();
    assert_eq!((e.kind, *e.value), (AreaError::BadAlign, 7));
    let plain: MapleTree<Value> = MapleTree::new();
    let e = plain
        .lock()
        .alloc_rrange_aligned(4, 4, 0, xv(3), ..)
        .unwrap_err();
    assert_eq!((e.kind, e.value.get()), (AreaError::NotAllocTree, 3));
    assert!(e.to_string().contains("not an allocation tree"));
    assert!(format!("{e:?}").contains("NotAllocTree"));
}

/// `remove_exact` against the model: removes only exact matches, otherwise names what is
/// there and leaves the tree unchanged.
#[test]
fn remove_exact_differential() {
    for alloc in [true, false] {
        let mut rng = SplitMix64(16 + alloc as u64);
        let (t, mut m) = random_tree(alloc, 0, 5000, 1500, 30, &mut rng);
        for _ in 0..3000 * stress() {
            // Half the requests name a stored range exactly, half are random.
            let (a, b) = if rng.below(2) == 0 && !m.map.is_empty() {
                let k = rng.below(m.map.len() as u64) as usize;
                let (&s, &e) = m.map.iter().nth(k).unwrap();
                (s, e)
            } else {
                let a = rng.below(5100) as usize;
                (a, a + rng.below(40) as usize)
            };
            let before = m.map.len();
            let got = t.lock().remove_exact(a..=b).map(|v| v.get());
            match m.first_overlap(a, b) {
                Some((s, e)) if (s, e) == (a, b) => {
                    assert!(got.is_ok(), "remove_exact({a}..={b}): {got:?}");
                    m.clear(a, b);
                }
                Some((s, e)) => assert_eq!(got, Err(RemoveError::Mismatch { found: s..=e })),
                None => assert_eq!(got, Err(RemoveError::Vacant)),
            }
            if got.is_err() {
                assert_eq!(m.map.len(), before);
            }
            assert_eq!(t.len(), m.map.len());
            if rng.below(50) == 0 {
                t.validate().unwrap();
                let tree: Vec<(usize, usize)> = t
                    .read()
                    .iter()
                    .map(|(r, _)| (*r.start(), *r.end()))
                    .collect();
                let model: Vec<(usize, usize)> = m.map.iter().map(|(&s, &e)| (s, e)).collect();
                assert_eq!(tree, model);
            }
        }
    }
    // Bad ranges and index-space edges.
    let t: MapleTree<Value> = MapleTree::new();
    let w = t.lock();
    #[allow(clippy::reversed_empty_ranges)]
    {
        assert_eq!(w.remove_exact(5..=4), Err(RemoveError::InvalidRange));
    }
    assert_eq!(w.remove_exact(5..5), Err(RemoveError::InvalidRange));
    assert_eq!(w.remove_exact(..), Err(RemoveError::Vacant));
    w.store_range(usize::MAX - 3..=usize::MAX, xv(1)).unwrap();
    w.store_range(0..=0, xv(2)).unwrap();
    assert_eq!(
        w.remove_exact(usize::MAX - 4..),
        Err(RemoveError::Mismatch {
            found: usize::MAX - 3..=usize::MAX
        })
    );
    assert_eq!(w.remove_exact(usize::MAX - 3..).map(|v| v.get()), Ok(1));
    assert_eq!(
        w.remove_exact(..),
        Err(RemoveError::Mismatch { found: 0..=0 })
    );
    assert_eq!(w.remove_exact(0..1).map(|v| v.get()), Ok(2));
    drop(w);
    assert!(t.is_empty());
    t.validate().unwrap();
    let e: Box<dyn std::error::Error> = Box::new(RemoveError::Vacant);
    assert_eq!(e.to_string(), "nothing is stored in that range");
}

// ---------------------------------------------------------------------------------------
// quickcheck: write sequences, then every request class checked against the model.

/// A write (`store` or `punch`) over a small universe placed at `base`.
#[derive(Clone, Debug)]
struct Ops {
    base: u8,
    alloc: bool,
    writes: Vec<(bool, u16, u8)>,
    queries: Vec<(u16, u16, u8, u8, u16, bool)>,
}

impl Arbitrary for Ops {
    fn arbitrary(g: &mut Gen) -> Self {
        let n = usize::arbitrary(g) % 120;
        let k = 1 + usize::arbitrary(g) % 60;
        Ops {
            base: u8::arbitrary(g) % 3,
            alloc: bool::arbitrary(g),
            writes: (0..n)
                .map(|_| {
                    (
                        bool::arbitrary(g),
                        u16::arbitrary(g) % 600,
                        u8::arbitrary(g) % 12,
                    )
                })
                .collect(),
            queries: (0..k)
                .map(|_| {
                    (
                        u16::arbitrary(g) % 700,
                        u16::arbitrary(g) % 700,
                        u8::arbitrary(g) % 24,
                        u8::arbitrary(g) % 10,
                        u16::arbitrary(g),
                        bool::arbitrary(g),
                    )
                })
                .collect(),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let me = self.clone();
        Box::new(
            self.writes
                .shrink()
                .map({
                    let me = me.clone();
                    move |w| Ops {
                        writes: w,
                        ..me.clone()
                    }
                })
                .chain(self.queries.shrink().map(move |q| Ops {
                    queries: q,
                    ..me.clone()
                })),
        )
    }
}

fn prop(ops: Ops) -> TestResult {
    let base = match ops.base {
        0 => 0,
        1 => 1 << 50,
        _ => usize::MAX - 699,
    };
    let t: MapleTree<Value> = if ops.alloc {
        MapleTree::new_alloc()
    } else {
        MapleTree::new()
    };
    let mut m = Model::default();
    for (i, &(store, a, w)) in ops.writes.iter().enumerate() {
        let a = base + a as usize;
        let b = (a + w as usize).min(base + 699);
        if store {
            t.lock().store_range(a..=b, xv(i)).unwrap();
            m.store(a, b);
        } else {
            t.lock().punch(a..=b).unwrap();
            m.clear(a, b);
        }
    }
    if let Err(e) = t.validate() {
        return TestResult::error(format!("validate: {e}"));
    }
    for &(x, y, size, align_log, offset, rev) in &ops.queries {
        let (lo, hi) = (base + x.min(y) as usize, base + x.max(y) as usize);
        let size = size as usize;
        let align = 1usize << align_log;
        let offset = offset as usize;
        let window = Some((lo, hi));
        let want = brute_index(&m, window, size, align, offset, rev);
        let got = tree_aligned(&t, window, size, align, offset, rev);
        if got != want {
            return TestResult::error(format!(
                "window {lo:#x}..={hi:#x} size {size} align {align} offset {offset} rev {rev}: \
                 tree {got:?}, model {want:?}\n{}",
                t.dump()
            ));
        }
    }
    TestResult::passed()
}

#[test]
fn quickcheck_aligned_search() {
    QuickCheck::new()
        .tests(150 * stress())
        .max_tests(1500 * stress())
        .quickcheck(prop as fn(Ops) -> TestResult);
}
