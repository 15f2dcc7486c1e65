//! Differential test: random operation sequences applied to a `MapleTree` and to the
//! `BTreeMap` oracle of `common`, compared in full after every operation, with
//! `validate()` after every operation and point/range/gap queries at the indices each
//! operation touched.
//!
//! Index streams are either *clustered* (0..2000: many collisions, splits, merges and
//! rebalances) or *spread* (0, `usize::MAX`, values near powers of two, page multiples,
//! random words). A failing sequence is shrunk by quickcheck and printed with the failing
//! step and a dump of the tree.
//!
//! Runtime: a few seconds per property in debug builds; `MAPLE_STRESS=n` multiplies the
//! number of sequences by `n`.

mod common;

use common::{bounds, stress, Alloc, Gap, Oracle, SplitMix64};
use maple::{AllocErrorKind, GapError, InsertErrorKind, MapleTree, StoreKind, Value};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use std::ops::RangeInclusive;

/// Entry types the properties run on.
trait TestEntry: maple::Entry + Clone {
    fn make(v: usize) -> Self;
    fn get(r: Self::Ref<'_>) -> usize;
}

impl TestEntry for Value {
    fn make(v: usize) -> Self {
        Value::new(v).expect("small value")
    }
    fn get(r: Self::Ref<'_>) -> usize {
        r.get()
    }
}

impl TestEntry for Box<u64> {
    fn make(v: usize) -> Self {
        Box::new(v as u64)
    }
    fn get(r: Self::Ref<'_>) -> usize {
        *r as usize
    }
}

/// A range argument in every syntactic form the API accepts.
#[derive(Clone, Debug)]
enum R {
    Incl(usize, usize),
    Excl(usize, usize),
    From(usize),
    To(usize),
    ToExcl(usize),
    Full,
}

/// Run `$body` with `$x` bound to the concrete range type of `$r`.
macro_rules! with_range {
    ($r:expr, $x:ident => $body:expr) => {
        match *$r {
            R::Incl(a, b) => {
                let $x = a..=b;
                $body
            }
            R::Excl(a, b) => {
                let $x = a..b;
                $body
            }
            R::From(a) => {
                let $x = a..;
                $body
            }
            R::To(b) => {
                let $x = ..=b;
                $body
            }
            R::ToExcl(b) => {
                let $x = ..b;
                $body
            }
            R::Full => {
                let $x = ..;
                $body
            }
        }
    };
}

impl R {
    fn bounds(&self) -> Option<(usize, usize)> {
        with_range!(self, x => bounds(&x))
    }
}

#[derive(Clone, Debug)]
enum Op {
    Store(R, usize),
    Punch(R),
    Insert(R, usize),
    Erase(usize),
    /// Ascending stores of `count` ranges `width` wide, `gap` apart, from `start`.
    Fill {
        start: usize,
        count: usize,
        width: usize,
        gap: usize,
        v: usize,
    },
    AllocRange(usize, usize, R),
    AllocRRange(usize, usize, R),
    AllocCyclic(R, usize, usize),
    /// Replace the tree by its `Clone` (node-by-node duplication).
    Dup,
    /// Replace the tree by one collected from its own iterator (`FromIterator` bulk build;
    /// plain trees only).
    Rebuild,
}

#[derive(Clone, Debug)]
struct Ops {
    spread: bool,
    ops: Vec<Op>,
}

struct IdxGen {
    rng: SplitMix64,
    spread: bool,
}

impl IdxGen {
    fn idx(&mut self) -> usize {
        let r = &mut self.rng;
        if !self.spread {
            return r.below(2000) as usize;
        }
        match r.below(10) {
            0 => 0,
            1 => usize::MAX - r.below(300) as usize,
            2 | 3 => {
                let p = 1usize << r.below(64);
                let d = r.below(7) as usize;
                if r.below(2) == 0 {
                    p.wrapping_add(d)
                } else {
                    p.wrapping_sub(d)
                }
            }
            4 => (r.below(1 << 20) as usize) << 12,
            5 => (1usize << 49) - 4 + r.below(8) as usize,
            6 | 7 => r.below(1 << 16) as usize,
            _ => r.next_u64() as usize,
        }
    }

    fn width(&mut self) -> usize {
        let r = &mut self.rng;
        match r.below(20) {
            0..=9 => r.below(4) as usize,
            10..=15 => r.below(40) as usize,
            16..=17 => r.below(400) as usize,
            18 if self.spread => r.next_u64() as usize >> r.below(64),
            _ => usize::MAX,
        }
    }

    fn range(&mut self) -> R {
        let a = self.idx();
        let w = self.width();
        let b = a.saturating_add(w);
        match self.rng.below(24) {
            0 => R::Excl(a, b), // may be empty when w == 0: an InvalidRange case
            1 => R::From(a),
            2 => R::To(b),
            3 => R::ToExcl(b),
            4 => R::Full,
            5 => R::Incl(b, a), // inverted when w > 0
            _ => R::Incl(a, b),
        }
    }

    fn value(&mut self) -> usize {
        self.rng.below(40) as usize
    }

    fn size(&mut self) -> usize {
        match self.rng.below(10) {
            0 => 0,
            1..=5 => 1 + self.rng.below(4) as usize,
            6..=7 => 1 + self.rng.below(64) as usize,
            8 if self.spread => 1usize << self.rng.below(64),
            _ => 1 + self.rng.below(1000) as usize,
        }
    }

    fn op(&mut self) -> Op {
        match self.rng.below(100) {
            0..=34 => Op::Store(self.range(), self.value()),
            35..=46 => Op::Punch(self.range()),
            47..=58 => Op::Insert(self.range(), self.value()),
            59..=70 => Op::Erase(self.idx()),
            71..=73 => Op::Fill {
                start: self.idx(),
                count: self.rng.below(200) as usize,
                width: self.rng.below(8) as usize,
                gap: self.rng.below(4) as usize,
                v: self.value(),
            },
            74..=80 => Op::AllocRange(self.size(), self.value(), self.range()),
            81..=87 => Op::AllocRRange(self.size(), self.value(), self.range()),
            88..=96 => {
                let next = if self.rng.below(4) == 0 {
                    usize::MAX - self.rng.below(3) as usize
                } else {
                    self.idx()
                };
                Op::AllocCyclic(self.range(), next, self.value())
            }
            97..=98 => Op::Dup,
            _ => Op::Rebuild,
        }
    }
}

impl Arbitrary for Ops {
    fn arbitrary(g: &mut Gen) -> Self {
        let spread = bool::arbitrary(g);
        let mut ig = IdxGen {
            rng: SplitMix64(u64::arbitrary(g)),
            spread,
        };
        let len = 1 + ig.rng.below(MAX_OPS) as usize;
        Ops {
            spread,
            ops: (0..len).map(|_| ig.op()).collect(),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let me = self.clone();
        let n = me.ops.len();
        let mut chunks = Vec::new();
        let mut size = n / 2;
        while size > 0 {
            chunks.push(size);
            size /= 2;
        }
        Box::new(chunks.into_iter().flat_map(move |size| {
            let me = me.clone();
            (0..n.div_ceil(size)).map(move |k| {
                let mut ops = me.ops.clone();
                let from = k * size;
                ops.drain(from..(from + size).min(n));
                Ops {
                    spread: me.spread,
                    ops,
                }
            })
        }))
    }
}

fn gap_kind(e: GapError) -> Gap {
    match e {
        GapError::Busy => Gap::Busy,
        GapError::Invalid => Gap::Invalid,
    }
}

fn alloc_kind(k: AllocErrorKind) -> Alloc {
    match k {
        AllocErrorKind::Busy => Alloc::Busy,
        AllocErrorKind::Invalid => Alloc::Invalid,
        AllocErrorKind::NotAllocTree => Alloc::NotAllocTree,
    }
}

type Entries = Vec<(RangeInclusive<usize>, usize)>;

struct Harness<E: TestEntry> {
    tree: MapleTree<E>,
    o: Oracle,
    /// How many times each store kind ran (over every tree the harness has held).
    kinds: [usize; StoreKind::COUNT],
    /// The current tree's counts when last looked at.
    seen: [usize; StoreKind::COUNT],
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(format!($($fmt)*));
        }
    };
}

impl<E: TestEntry> Harness<E>
where
    MapleTree<E>: std::fmt::Debug + Clone + FromIterator<(RangeInclusive<usize>, E)>,
{
    fn new(alloc: bool) -> Self {
        if alloc {
            Harness {
                tree: MapleTree::new_alloc(),
                o: Oracle::new_alloc(),
                kinds: [0; StoreKind::COUNT],
                seen: [0; StoreKind::COUNT],
            }
        } else {
            Harness {
                tree: MapleTree::new(),
                o: Oracle::new(),
                kinds: [0; StoreKind::COUNT],
                seen: [0; StoreKind::COUNT],
            }
        }
    }

    /// Add the store kinds that ran since the last call (a replaced tree starts at 0).
    fn count_kinds(&mut self) {
        let now = self.tree.store_kind_counts();
        for ((total, now), seen) in self.kinds.iter_mut().zip(now).zip(self.seen) {
            *total += now.saturating_sub(seen);
        }
        self.seen = now;
    }

    fn contents(&self) -> Entries {
        self.tree
            .read()
            .iter()
            .map(|(r, v)| (r, E::get(v)))
            .collect()
    }

    /// Apply one operation to both sides and compare what they returned; returns the indices
    /// worth probing afterwards.
    fn apply(&mut self, op: &Op) -> Result<Vec<usize>, String> {
        let mut probes = Vec::new();
        let mut touch = |r: Option<(usize, usize)>| {
            if let Some((a, b)) = r {
                probes.extend([
                    a.wrapping_sub(1),
                    a,
                    a.saturating_add(1),
                    b.wrapping_sub(1),
                    b,
                    b.saturating_add(1),
                ]);
            }
        };
        match op {
            Op::Store(r, v) => {
                touch(r.bounds());
                let got = with_range!(r, x => self.tree.lock().store_range(x, E::make(*v)).is_ok());
                let want = with_range!(r, x => self.o.store(x, *v));
                ensure!(got == want, "store_range ok={got}, oracle ok={want}");
            }
            Op::Punch(r) => {
                touch(r.bounds());
                let got = with_range!(r, x => self.tree.lock().punch(x).is_ok());
                let want = with_range!(r, x => self.o.punch(x));
                ensure!(got == want, "punch ok={got}, oracle ok={want}");
            }
            Op::Insert(r, v) => {
                touch(r.bounds());
                let got = with_range!(r, x => self.tree.lock().insert_range(x, E::make(*v)).map_err(|e| e.kind));
                let want = with_range!(r, x => self.o.insert(x, *v));
                let want = want.map_err(|occ| {
                    if occ {
                        InsertErrorKind::Occupied
                    } else {
                        InsertErrorKind::InvalidRange
                    }
                });
                ensure!(got == want, "insert_range: tree {got:?}, oracle {want:?}");
            }
            Op::Erase(i) => {
                touch(Some((*i, *i)));
                let w = self.tree.lock();
                let got = w.erase(*i).map(|(r, v)| (r, E::get(v)));
                let want = self.o.erase(*i);
                if let Some((r, _)) = &want {
                    touch(Some((*r.start(), *r.end())));
                }
                ensure!(got == want, "erase({i}): tree {got:?}, oracle {want:?}");
            }
            Op::Fill {
                start,
                count,
                width,
                gap,
                v,
            } => {
                let w = self.tree.lock();
                let mut s = *start;
                for k in 0..*count {
                    let Some(e) = s.checked_add(*width) else {
                        break;
                    };
                    w.store_range(s..=e, E::make(v + k % 3))
                        .map_err(|e| format!("fill store: {e}"))?;
                    self.o.store(s..=e, v + k % 3);
                    touch(Some((s, e)));
                    match e.checked_add(1 + gap) {
                        Some(n) => s = n,
                        None => break,
                    }
                }
            }
            Op::AllocRange(size, v, r) | Op::AllocRRange(size, v, r) => {
                let rev = matches!(op, Op::AllocRRange(..));
                touch(r.bounds());
                let got = with_range!(r, x => {
                    let w = self.tree.lock();
                    if rev { w.alloc_rrange(*size, E::make(*v), x) } else { w.alloc_range(*size, E::make(*v), x) }
                        .map_err(|e| alloc_kind(e.kind))
                });
                let want = with_range!(r, x => if rev { self.o.alloc_rrange(*size, *v, x) } else { self.o.alloc_range(*size, *v, x) });
                if let Ok(s) = want {
                    touch(Some((s, s.saturating_add(size.saturating_sub(1)))));
                }
                ensure!(
                    got == want,
                    "alloc_{}range(size {size}): tree {got:?}, oracle {want:?}",
                    if rev { "r" } else { "" }
                );
            }
            Op::AllocCyclic(r, next, v) => {
                touch(r.bounds());
                let (mut n_tree, mut n_oracle) = (*next, *next);
                let got = with_range!(r, x => self.tree.lock().alloc_cyclic(x, &mut n_tree, E::make(*v)).map_err(|e| alloc_kind(e.kind)));
                let want = with_range!(r, x => self.o.alloc_cyclic(x, &mut n_oracle, *v));
                if let Ok((s, _)) = want {
                    touch(Some((s, s)));
                }
                ensure!(
                    got == want,
                    "alloc_cyclic(next {next}): tree {got:?}, oracle {want:?}"
                );
                ensure!(
                    n_tree == n_oracle,
                    "alloc_cyclic: next = {n_tree}, oracle {n_oracle}"
                );
            }
            Op::Dup => {
                let copy = self.tree.clone();
                copy.validate()
                    .map_err(|e| format!("clone does not validate: {e}"))?;
                let before = self.contents();
                drop(std::mem::replace(&mut self.tree, copy));
                ensure!(self.contents() == before, "clone differs from the original");
            }
            Op::Rebuild => {
                if !self.o.is_alloc() {
                    let items: Vec<(RangeInclusive<usize>, E)> = self
                        .tree
                        .read()
                        .iter()
                        .map(|(r, v)| (r, E::make(E::get(v))))
                        .collect();
                    self.tree = items.into_iter().collect();
                }
            }
        }
        Ok(probes)
    }

    /// Full comparison plus queries at `probes`.
    fn compare(&self, probes: &[usize]) -> Result<(), String> {
        self.compare_with(probes, true)
    }

    /// `full`: also validate and compare the whole contents (O(n)).
    fn compare_with(&self, probes: &[usize], full: bool) -> Result<(), String> {
        let mut probes = probes.to_vec();
        probes.sort_unstable();
        probes.dedup();
        if full {
            self.compare_contents()?;
        }
        self.compare_queries(&probes)
    }

    fn compare_contents(&self) -> Result<(), String> {
        self.tree.validate().map_err(|e| format!("validate: {e}"))?;
        let got = self.contents();
        let want = self.o.entries();
        if got != want {
            let at = got
                .iter()
                .zip(&want)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(want.len()));
            return Err(format!(
                "contents differ at entry {at}: tree {:?}, oracle {:?} ({} vs {} entries)",
                got.get(at),
                want.get(at),
                got.len(),
                want.len()
            ));
        }
        ensure!(
            self.tree.len() == self.o.len(),
            "len {} vs {}",
            self.tree.len(),
            self.o.len()
        );
        ensure!(
            self.tree.is_empty() == self.o.is_empty(),
            "is_empty {}",
            self.tree.is_empty()
        );
        ensure!(
            self.tree.is_empty() == (self.tree.height() == 0),
            "height {} with {} entries (an empty tree has height 0, a non-empty one more)",
            self.tree.height(),
            self.tree.len()
        );
        let back: Entries = self
            .tree
            .read()
            .iter()
            .rev()
            .map(|(r, v)| (r, E::get(v)))
            .collect();
        ensure!(
            back.iter().rev().eq(want.iter()),
            "iter().rev() disagrees with iter()"
        );
        Ok(())
    }

    fn compare_queries(&self, probes: &[usize]) -> Result<(), String> {
        let r = self.tree.read();
        for (n, &p) in probes.iter().chain([0, usize::MAX].iter()).enumerate() {
            let got = r.load(p).map(E::get);
            ensure!(
                got == self.o.load(p),
                "load({p}) = {got:?}, oracle {:?}",
                self.o.load(p)
            );
            let (span, v) = r.walk(p);
            let got = (span, v.map(E::get));
            ensure!(
                got == self.o.walk(p),
                "walk({p}) = {got:?}, oracle {:?}",
                self.o.walk(p)
            );
            for k in [0usize, 40, usize::MAX] {
                let (a, b) = (p, p.saturating_add(k));
                let got = r.find(a..=b).map(|(r, v)| (r, E::get(v)));
                ensure!(
                    got == self.o.find(a..=b),
                    "find({a}..={b}) = {got:?}, oracle {:?}",
                    self.o.find(a..=b)
                );
                let (a2, b2) = (p.saturating_sub(k), p);
                let got = r.find_rev(a2..=b2).map(|(r, v)| (r, E::get(v)));
                ensure!(
                    got == self.o.find_rev(a2..=b2),
                    "find_rev({a2}..={b2}) = {got:?}, oracle {:?}",
                    self.o.find_rev(a2..=b2)
                );
                if k != usize::MAX {
                    let want = self.o.range(a2..=b);
                    let fwd: Entries = r.range(a2..=b).map(|(r, v)| (r, E::get(v))).collect();
                    ensure!(fwd == want, "range({a2}..={b}) = {fwd:?}, oracle {want:?}");
                    let mut bwd: Entries =
                        r.range(a2..=b).rev().map(|(r, v)| (r, E::get(v))).collect();
                    bwd.reverse();
                    ensure!(
                        bwd == want,
                        "range({a2}..={b}).rev() = {bwd:?}, oracle {want:?}"
                    );
                }
            }
            if self.o.is_alloc() && (n < 6 || n >= probes.len()) {
                for (lo, hi, size) in [
                    (p.saturating_sub(50), p.saturating_add(50), 1),
                    (p.saturating_sub(50), p.saturating_add(50), 7),
                    (p.saturating_sub(3), p.saturating_add(3), 8),
                    (p, p, 1),
                    (0, p, 2),
                    (p, usize::MAX, 3),
                    (0, usize::MAX, p | 1),
                ] {
                    let got = r.empty_area(lo..=hi, size).map_err(gap_kind);
                    let want = self.o.empty_area(lo..=hi, size);
                    ensure!(
                        got == want,
                        "empty_area({lo}..={hi}, {size}) = {got:?}, oracle {want:?}"
                    );
                    let got = r.empty_area_rev(lo..=hi, size).map_err(gap_kind);
                    let want = self.o.empty_area_rev(lo..=hi, size);
                    ensure!(
                        got == want,
                        "empty_area_rev({lo}..={hi}, {size}) = {got:?}, oracle {want:?}"
                    );
                }
            }
        }
        if self.o.is_alloc() {
            // Gap search from inside the writer too.
            let w = self.tree.lock();
            for size in [1usize, 2, 100, usize::MAX] {
                let got = w.empty_area(.., size).map_err(gap_kind);
                ensure!(
                    got == self.o.empty_area(.., size),
                    "writer empty_area(.., {size}) = {got:?}"
                );
                let got = w.empty_area_rev(.., size).map_err(gap_kind);
                ensure!(
                    got == self.o.empty_area_rev(.., size),
                    "writer empty_area_rev(.., {size}) = {got:?}"
                );
            }
        }
        Ok(())
    }
}

fn run<E: TestEntry>(ops: &Ops, alloc: bool) -> TestResult
where
    MapleTree<E>: std::fmt::Debug + Clone + FromIterator<(RangeInclusive<usize>, E)>,
{
    run_counting::<E>(ops, alloc).0
}

/// [`run`], also returning how many times each store kind ran.
fn run_counting<E: TestEntry>(ops: &Ops, alloc: bool) -> (TestResult, [usize; StoreKind::COUNT])
where
    MapleTree<E>: std::fmt::Debug + Clone + FromIterator<(RangeInclusive<usize>, E)>,
{
    let mut h = Harness::<E>::new(alloc);
    for (step, op) in ops.ops.iter().enumerate() {
        let res = h.apply(op).and_then(|probes| h.compare(&probes));
        h.count_kinds();
        if let Err(msg) = res {
            return (
                TestResult::error(format!(
                    "step {step} ({op:?}) of {} [{}]: {msg}\ntree: {}",
                    ops.ops.len(),
                    if ops.spread { "spread" } else { "clustered" },
                    common::dump(&h.tree)
                )),
                h.kinds,
            );
        }
    }
    (TestResult::passed(), h.kinds)
}

/// Longest generated sequence (quickcheck then shrinks failing ones).
const MAX_OPS: u64 = 160;

fn qc(tests: u64) -> QuickCheck {
    QuickCheck::new()
        .tests(tests * stress())
        .max_tests(tests * stress() * 10)
}

fn prop_value_plain(ops: Ops) -> TestResult {
    run::<Value>(&ops, false)
}

fn prop_value_alloc(ops: Ops) -> TestResult {
    run::<Value>(&ops, true)
}

fn prop_box_plain(ops: Ops) -> TestResult {
    run::<Box<u64>>(&ops, false)
}

fn prop_box_alloc(ops: Ops) -> TestResult {
    run::<Box<u64>>(&ops, true)
}

#[test]
fn differential_value_plain() {
    qc(40).quickcheck(prop_value_plain as fn(Ops) -> TestResult);
}

#[test]
fn differential_value_alloc() {
    qc(40).quickcheck(prop_value_alloc as fn(Ops) -> TestResult);
}

#[test]
fn differential_box_plain() {
    qc(20).quickcheck(prop_box_plain as fn(Ops) -> TestResult);
}

#[test]
fn differential_box_alloc() {
    qc(15).quickcheck(prop_box_alloc as fn(Ops) -> TestResult);
}

/// One long deterministic sequence per mode, so that trees grow several levels deep and
/// shrink again (quickcheck's sequences are short).
fn long_run(alloc: bool, spread: bool, seed: u64) -> [usize; StoreKind::COUNT] {
    let mut ig = IdxGen {
        rng: SplitMix64(seed),
        spread,
    };
    let n = 1500 * stress() as usize;
    let ops = Ops {
        spread,
        ops: (0..n).map(|_| ig.op()).collect(),
    };
    let (res, kinds) = run_counting::<Value>(&ops, alloc);
    assert!(
        !res.is_failure() && !res.is_error(),
        "long run (alloc {alloc}, spread {spread}, seed {seed}) failed: {res:?}"
    );
    kinds
}

/// Assert that every kind in `want` ran at least once.
fn assert_kinds(what: &str, kinds: [usize; StoreKind::COUNT], want: &[StoreKind]) {
    for &k in want {
        assert!(
            kinds[k as usize] > 0,
            "{what}: no {k:?} store ran; counts {:?}",
            StoreKind::ALL.iter().zip(kinds).collect::<Vec<_>>()
        );
    }
}

/// The kinds a clustered run through the locked (RCU-mode) API reaches: all of them (an
/// allocation tree appends in place only without readers, so not here).
fn rcu_kinds(alloc: bool) -> Vec<StoreKind> {
    StoreKind::ALL
        .into_iter()
        .filter(|&k| !(alloc && k == StoreKind::Append))
        .collect()
}

/// Random operations on trees four to five levels deep: 20 000 ranges stored in ascending
/// order, then random stores, punches, inserts and erases whose widths reach tens of
/// thousands of indices, so spanning stores cross several levels and rebalances cascade.
/// The full contents are compared every 20 operations, the touched indices after each.
fn deep_run(alloc: bool, seed: u64) -> [usize; StoreKind::COUNT] {
    let mut h = Harness::<Value>::new(alloc);
    let mut rng = SplitMix64(seed);
    let mut at = 0usize;
    {
        let w = h.tree.lock();
        for i in 0..20_000usize {
            at += rng.below(4) as usize;
            let e = at + rng.below(16) as usize;
            w.store_range(at..=e, Value::new(i % 97).unwrap()).unwrap();
            h.o.store(at..=e, i % 97);
            at = e + 1;
        }
    }
    let space = at + 1000;
    h.compare(&[])
        .unwrap_or_else(|e| panic!("after the fill: {e}"));
    assert!(
        h.tree.height() >= 4,
        "deep run wants a deep tree (height {})",
        h.tree.height()
    );
    let n = 600 * stress() as usize;
    for step in 0..n {
        let a = rng.below(space as u64) as usize;
        let w = match rng.below(10) {
            0..=5 => rng.below(30),
            6..=7 => rng.below(3000),
            _ => rng.below(60_000),
        } as usize;
        let r = R::Incl(a, a + w);
        let op = match rng.below(10) {
            0..=3 => Op::Store(r, rng.below(97) as usize),
            4..=5 => Op::Punch(r),
            6 => Op::Insert(r, rng.below(97) as usize),
            7..=8 => Op::Erase(a),
            _ if alloc => Op::AllocRRange(1 + rng.below(50) as usize, 1, R::Incl(a, a + w)),
            _ => Op::Store(R::Incl(a, a), 3),
        };
        let mut res = h
            .apply(&op)
            .and_then(|probes| h.compare_with(&probes, step % 20 == 19));
        if alloc && res.is_ok() {
            // Gap searches over random windows of the deep tree, both directions.
            let r = h.tree.read();
            for _ in 0..3 {
                let lo = rng.below(space as u64) as usize;
                let hi = lo + rng.below(100_000) as usize;
                let cap = if rng.below(2) == 0 { 8 } else { 400 };
                let size = 1 + rng.below(cap) as usize;
                let got = (
                    r.empty_area(lo..=hi, size).map_err(gap_kind),
                    r.empty_area_rev(lo..=hi, size).map_err(gap_kind),
                );
                let want = (
                    h.o.empty_area(lo..=hi, size),
                    h.o.empty_area_rev(lo..=hi, size),
                );
                if got != want {
                    res = Err(format!(
                        "gap search {lo}..={hi} size {size}: tree {got:?}, oracle {want:?}"
                    ));
                    break;
                }
            }
        }
        if let Err(msg) = res {
            panic!("deep run (alloc {alloc}, seed {seed}) step {step} {op:?}: {msg}");
        }
    }
    h.compare(&[]).unwrap_or_else(|e| panic!("at the end: {e}"));
    h.count_kinds();
    h.kinds
}

/// Deep trees: splits, rebalances and spanning stores across several levels.
const DEEP_KINDS: [StoreKind; 5] = [
    StoreKind::ExactFit,
    StoreKind::NodeStore,
    StoreKind::Split,
    StoreKind::Rebalance,
    StoreKind::Spanning,
];

#[test]
fn deep_plain() {
    assert_kinds("deep plain", deep_run(false, 31), &DEEP_KINDS);
}

#[test]
fn deep_alloc() {
    assert_kinds("deep alloc", deep_run(true, 32), &DEEP_KINDS);
}

#[test]
fn long_clustered_plain() {
    assert_kinds(
        "long clustered plain",
        long_run(false, false, 1),
        &rcu_kinds(false),
    );
}

#[test]
fn long_clustered_alloc() {
    assert_kinds(
        "long clustered alloc",
        long_run(true, false, 2),
        &rcu_kinds(true),
    );
}

#[test]
fn long_spread_alloc() {
    assert_kinds(
        "long spread alloc",
        long_run(true, true, 3),
        &rcu_kinds(true),
    );
}

mod oracle_self_test {
    use super::common::*;

    #[test]
    fn oracle_trims_and_keeps_equal_neighbours_apart() {
        let mut o = Oracle::new();
        assert!(o.store(10..=19, 1));
        assert!(o.store(20..=29, 1));
        assert_eq!(o.len(), 2, "equal adjacent values are not merged");
        assert!(o.store(15..=24, 2));
        assert_eq!(o.entries(), vec![(10..=14, 1), (15..=24, 2), (25..=29, 1)]);
        assert!(o.punch(12..=26));
        assert_eq!(o.entries(), vec![(10..=11, 1), (27..=29, 1)]);
        assert_eq!(o.walk(20), (12..=26, None));
        assert_eq!(o.walk(0), (0..=9, None));
        assert_eq!(o.walk(usize::MAX), (30..=usize::MAX, None));
        assert!(o.store(40..=49, 3));
        assert!(o.store(42..=44, 4), "split one range in three");
        assert_eq!(o.range(43..=46), vec![(42..=44, 4), (45..=49, 3)]);
        assert_eq!(o.find_rev(..=41), Some((40..=41, 3)));
        assert_eq!(o.erase(43), Some((42..=44, 4)));
        assert_eq!(o.insert(41..=45, 9), Err(true));
        assert_eq!(o.insert(42..=44, 9), Ok(()));
        assert!(!o.store(7..7, 1));
    }

    #[test]
    fn oracle_gap_search() {
        let mut o = Oracle::new_alloc();
        for i in 1..=20 {
            o.store(i * 10..=i * 10 + 9, i);
        }
        o.punch(160..=169);
        assert_eq!(o.empty_area_rev(5..=217, 9), Ok(161));
        assert_eq!(o.empty_area(0..=8, 10), Err(Gap::Invalid));
        assert_eq!(o.empty_area(5..=100, 6), Err(Gap::Busy));
        assert_eq!(o.empty_area(.., 1), Ok(0));
        assert_eq!(o.empty_area_rev(.., 1), Ok(usize::MAX));
        assert_eq!(o.empty_area(.., usize::MAX), Err(Gap::Busy));
        assert_eq!(o.empty_area(.., usize::MAX - 300), Ok(210));
        assert_eq!(
            o.empty_area_rev(..=usize::MAX - 1, usize::MAX - 300),
            Ok(usize::MAX - 1 - (usize::MAX - 301))
        );
        let mut next = usize::MAX - 1;
        let mut o = Oracle::new_alloc();
        assert_eq!(
            o.alloc_cyclic(2..=usize::MAX, &mut next, 0),
            Ok((usize::MAX - 1, false))
        );
        assert_eq!(
            o.alloc_cyclic(2..=usize::MAX, &mut next, 0),
            Ok((usize::MAX, false))
        );
        assert_eq!(next, 0);
        assert_eq!(o.alloc_cyclic(2..=usize::MAX, &mut next, 0), Ok((2, true)));
        assert_eq!(o.alloc_cyclic(2..=usize::MAX, &mut next, 0), Ok((3, false)));
    }

    /// The oracle's gap search against a dense brute force on small random maps.
    #[test]
    fn oracle_gap_search_brute_force() {
        let mut rng = SplitMix64(7);
        for _ in 0..40 {
            let mut o = Oracle::new_alloc();
            for _ in 0..rng.below(12) {
                let a = rng.below(64) as usize;
                let b = a + rng.below(6) as usize;
                o.store(a..=b, 1);
            }
            let used: Vec<bool> = (0..80).map(|i| o.load(i).is_some()).collect();
            let used = |i: usize| used[i];
            for first in 0..72usize {
                for last in first..72usize {
                    for size in 1..=(last - first + 1).min(9) {
                        let fits = |st: usize| (st..st + size).all(|i| !used(i));
                        let fwd = (first..=last + 1 - size)
                            .find(|&st| fits(st))
                            .ok_or(Gap::Busy);
                        let rev = (first..=last + 1 - size)
                            .rev()
                            .find(|&st| fits(st))
                            .ok_or(Gap::Busy);
                        // Beyond 72 everything is empty, so windows ending at 71 are exact.
                        assert_eq!(
                            o.empty_area(first..=last, size),
                            fwd,
                            "fwd {first}..={last} size {size} in {:?}",
                            o.entries()
                        );
                        assert_eq!(
                            o.empty_area_rev(first..=last, size),
                            rev,
                            "rev {first}..={last} size {size} in {:?}",
                            o.entries()
                        );
                    }
                }
            }
        }
    }
}

/// `FromIterator` on sorted, disjoint input (the O(n) bulk build, parallel above its size
/// threshold) and on unsorted, overlapping input (documented to behave like storing the
/// items in order), both checked against the oracle; `Extend` likewise.
mod bulk {
    use super::common::{assert_matches, xv, Oracle, SplitMix64};
    use maple::{MapleTree, Value};
    use std::ops::RangeInclusive;

    fn sorted(n: usize, seed: u64) -> Vec<(RangeInclusive<usize>, usize)> {
        let mut rng = SplitMix64(seed);
        let mut at = rng.below(1000) as usize;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            at += rng.below(3) as usize; // sometimes adjacent, sometimes a hole
            let w = rng.below(20) as usize;
            out.push((at..=at + w, i % 50));
            at += w + 1;
        }
        out
    }

    #[test]
    fn from_iter_sorted_small_and_large() {
        for (n, seed) in [
            (0, 1),
            (1, 2),
            (15, 3),
            (16, 4),
            (17, 5),
            (300, 6),
            (100_000, 7),
        ] {
            let items = sorted(n, seed);
            let mut o = Oracle::new();
            for (r, v) in &items {
                o.store(r.clone(), *v);
            }
            let t: MapleTree<Value> = items.into_iter().map(|(r, v)| (r, xv(v))).collect();
            assert_matches(&t, &o, &format!("bulk build of {n}"));
            assert!(!t.is_alloc());
            // The built tree takes further writes normally.
            t.lock().store_range(0..=5, xv(1)).unwrap();
            o.store(0..=5, 1);
            t.lock().punch(500..=20_000).unwrap();
            o.punch(500..=20_000);
            assert_matches(&t, &o, &format!("writes after bulk build of {n}"));
        }
    }

    #[test]
    fn from_iter_unsorted_overlapping_is_sequential_stores() {
        let mut rng = SplitMix64(99);
        for round in 0..20 {
            let n = 1 + rng.below(400) as usize;
            let items: Vec<(RangeInclusive<usize>, usize)> = (0..n)
                .map(|i| {
                    let a = rng.below(3000) as usize;
                    (a..=a + rng.below(40) as usize, i % 7)
                })
                .collect();
            let mut o = Oracle::new();
            for (r, v) in &items {
                o.store(r.clone(), *v);
            }
            let t: MapleTree<Value> = items.iter().map(|(r, v)| (r.clone(), xv(*v))).collect();
            assert_matches(&t, &o, &format!("unsorted collect, round {round}"));

            let mut e: MapleTree<Value> = MapleTree::new();
            e.lock().store_range(1000..=1999, xv(6)).unwrap();
            let mut o = Oracle::new();
            o.store(1000..=1999, 6);
            e.extend(items.iter().map(|(r, v)| (r.clone(), xv(*v))));
            for (r, v) in &items {
                o.store(r.clone(), *v);
            }
            assert_matches(&e, &o, &format!("extend, round {round}"));
        }
    }

    #[test]
    fn clone_keeps_contents_and_kind() {
        for alloc in [false, true] {
            let t: MapleTree<Value> = if alloc {
                MapleTree::new_alloc()
            } else {
                MapleTree::new()
            };
            let mut o = if alloc {
                Oracle::new_alloc()
            } else {
                Oracle::new()
            };
            for (r, v) in sorted(20_000, 11) {
                t.lock().store_range(r.clone(), xv(v)).unwrap();
                o.store(r, v);
            }
            let c = t.clone();
            assert_eq!(c.is_alloc(), alloc);
            assert_eq!(
                c.height(),
                t.height(),
                "a node-by-node copy has the same shape"
            );
            assert_matches(&c, &o, "clone");
            // The copy and the original are independent.
            t.lock().punch(..).unwrap();
            assert!(t.is_empty());
            assert_matches(&c, &o, "clone after clearing the original");
            if alloc {
                let got = c.lock().alloc_rrange(7, xv(1), ..).unwrap();
                assert_eq!(Ok(got), o.alloc_rrange(7, 1, ..).map_err(|_| ()));
                assert_matches(&c, &o, "alloc in the clone");
            }
        }
    }

    #[test]
    fn arc_entries_are_shared_not_copied() {
        use std::sync::Arc;
        let a = Arc::new(5u32);
        let t: MapleTree<Arc<u32>> = MapleTree::new();
        t.lock().store_range(0..=99, a.clone()).unwrap();
        t.lock().store_range(10..=19, Arc::new(6)).unwrap(); // splits the first range
        t.lock().punch(50..=50).unwrap(); // and again
        assert_eq!(t.len(), 4);
        assert_eq!(t.read().load(5).copied(), Some(5));
        assert_eq!(t.read().load(60).copied(), Some(5));
        assert_eq!(t.read().load(15).copied(), Some(6));
        t.validate().unwrap();
        let c = t.clone();
        drop(t);
        assert_eq!(c.read().load(99).copied(), Some(5));
        drop(c);
        assert_eq!(
            Arc::strong_count(&a),
            1,
            "every clone of the Arc was released"
        );
    }
}
