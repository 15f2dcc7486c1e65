//! Iteration under writes, checked step by step against a model (quickcheck).
//!
//! An iterator over a prefilled tree is driven from both ends while stores, hole punches
//! and erases land between its calls, aimed at the cursors (the interesting writes
//! straddle the index an end is about to resume at). Each write completes before the next
//! iterator call, so every call's answer is determined, and the model checks the rule of
//! `ReadGuard::range` exactly:
//!
//! * `next` resumes at the lowest index of the query range it has not passed, takes the
//!   stored range holding it (or the first one after it) and yields it clipped to start
//!   after the last front item and end before the last back item; `next_back` mirrors it;
//! * and, independently of that rule, the contract: items strictly increase (front) or
//!   decrease (back) and never overlap; each item's value is stored over the whole item
//!   when it is yielded; every index of the query range that holds an entry through the
//!   whole iteration ends up in exactly one item; with no writes, items are the stored
//!   ranges, whole.
//!
//! Two drivers: the writer iterating inside its own write section (one thread), and a
//! reader thread holding its own read section, commanded through channels while the test
//! thread writes (handshakes make each step deterministic). Both reclamation domains,
//! plain and allocation trees, and an index space at the top of `usize` (so ranges end at
//! `usize::MAX`). A `find`/`find_rev` loop is checked the same way against its documented
//! guarantee.

mod common;
mod concurrent;

use common::{Oracle, SplitMix64};
use concurrent::{run_bounded, Items};
use maple::{MapleTree, Value};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use rcu::Domain;
use std::cell::Cell;
use std::ops::RangeInclusive;
use std::sync::mpsc;
use std::time::Duration;

/// Indices used: `base .. base + SPACE`.
const SPACE: usize = 512;
/// Bound for one whole quickcheck run (debug builds on a loaded machine included).
const BOUND: Duration = Duration::from_secs(300);
/// Bound for one handshake with the reader thread.
const STEP: Duration = Duration::from_secs(60);

/// Where a write lands: relative to one of the iterator's cursors, or anywhere.
#[derive(Clone, Copy, Debug)]
enum At {
    Front(i16),
    Back(i16),
    Abs(u16),
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Next,
    Back,
    Store(At, u8),
    Punch(At, u8),
    Erase(At),
}

impl Arbitrary for At {
    fn arbitrary(g: &mut Gen) -> At {
        let off = (i16::arbitrary(g) % 24) - 4;
        match u8::arbitrary(g) % 5 {
            0 | 1 => At::Front(-off),
            2 | 3 => At::Back(off),
            _ => At::Abs(u16::arbitrary(g)),
        }
    }
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Op {
        let len = |g: &mut Gen| match u8::arbitrary(g) % 4 {
            0 => 0,
            1 | 2 => u8::arbitrary(g) % 16,
            _ => u8::arbitrary(g) % 64,
        };
        match u8::arbitrary(g) % 10 {
            0..=2 => Op::Next,
            3..=4 => Op::Back,
            5..=7 => Op::Store(At::arbitrary(g), len(g)),
            8 => Op::Punch(At::arbitrary(g), len(g)),
            _ => Op::Erase(At::arbitrary(g)),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Op>> {
        match *self {
            Op::Store(at, l) if l > 0 => {
                Box::new([Op::Store(at, 0), Op::Store(at, l / 2)].into_iter())
            }
            Op::Punch(at, l) if l > 0 => {
                Box::new([Op::Punch(at, 0), Op::Punch(at, l / 2)].into_iter())
            }
            _ => Box::new(std::iter::empty()),
        }
    }
}

/// One test case: the prefill, the query range and the operations.
#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    /// Put the index space at the top of `usize` instead of at 0.
    top: bool,
    /// Query range, as offsets into the space; `hi == None` runs to the end of `usize`.
    lo: u16,
    hi: Option<u16>,
    ops: Vec<Op>,
}

impl Arbitrary for Case {
    fn arbitrary(g: &mut Gen) -> Case {
        let n = usize::arbitrary(g) % 60 + 1;
        let lo = u16::arbitrary(g) % SPACE as u16;
        let hi = match u8::arbitrary(g) % 6 {
            0 => None,
            // Occasionally an empty (inverted) range.
            1 => Some(lo.saturating_sub(u16::arbitrary(g) % 4)),
            _ => Some(lo.max(u16::arbitrary(g) % SPACE as u16)),
        };
        Case {
            seed: u64::arbitrary(g),
            top: bool::arbitrary(g),
            lo: if u8::arbitrary(g) % 4 == 0 { 0 } else { lo },
            hi,
            ops: (0..n).map(|_| Op::arbitrary(g)).collect(),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Case>> {
        let c = self.clone();
        Box::new(self.ops.shrink().map(move |ops| Case { ops, ..c.clone() }))
    }
}

impl Case {
    fn base(&self) -> usize {
        if self.top {
            usize::MAX - (SPACE - 1)
        } else {
            0
        }
    }

    /// The query range in absolute indices.
    fn query(&self) -> (usize, usize) {
        let b = self.base();
        let lo = b + self.lo as usize;
        let hi = match self.hi {
            Some(h) => b + h as usize,
            None => usize::MAX,
        };
        (lo, hi)
    }
}

/// The model of the iterator state (`maple::Iter`'s documented rule, run on the oracle).
#[derive(Clone, Copy, Debug)]
struct ModelIter {
    front: usize,
    back: usize,
    lo: usize,
    hi: usize,
    done: bool,
}

impl ModelIter {
    fn new(q: (usize, usize)) -> ModelIter {
        ModelIter {
            front: q.0,
            back: q.1,
            lo: 0,
            hi: usize::MAX,
            done: q.0 > q.1,
        }
    }

    fn next(&mut self, o: &Oracle) -> Option<(RangeInclusive<usize>, usize)> {
        while !self.done {
            let (span, v) = o.walk(self.front);
            if *span.end() >= self.back {
                self.done = true;
            } else {
                self.front = span.end() + 1;
            }
            if let Some(v) = v {
                let (a, b) = ((*span.start()).max(self.lo), (*span.end()).min(self.hi));
                self.lo = b.wrapping_add(1);
                return Some((a..=b, v));
            }
        }
        None
    }

    fn next_back(&mut self, o: &Oracle) -> Option<(RangeInclusive<usize>, usize)> {
        while !self.done {
            let (span, v) = o.walk(self.back);
            if *span.start() <= self.front {
                self.done = true;
            } else {
                self.back = span.start() - 1;
            }
            if let Some(v) = v {
                let (a, b) = ((*span.start()).max(self.lo), (*span.end()).min(self.hi));
                self.hi = a.wrapping_sub(1);
                return Some((a..=b, v));
            }
        }
        None
    }
}

/// How the test reaches the iterator under test.
trait Driver {
    fn step(&mut self, back: bool) -> Option<(RangeInclusive<usize>, usize)>;
    fn store(&mut self, a: usize, b: usize, v: usize);
    fn punch(&mut self, a: usize, b: usize);
    fn erase(&mut self, i: usize) -> Option<(RangeInclusive<usize>, usize)>;
    fn validate(&mut self) -> Result<(), String>;
}

/// Prefill from the seed: pieces of 1..=6 indices with holes of 0..=3 between them.
fn prefill(seed: u64, base: usize) -> Vec<(usize, usize, usize)> {
    let mut rng = SplitMix64(seed);
    let mut out = Vec::new();
    let mut i = rng.below(3) as usize;
    while i < SPACE {
        let len = 1 + rng.below(6) as usize;
        let end = (i + len - 1).min(SPACE - 1);
        out.push((base + i, base + end, out.len() + 1));
        i = end + 1 + rng.below(4) as usize;
    }
    out
}

/// The index a write aimed at `at` lands on, given the cursors.
fn pos(at: At, base: usize, front: usize, back: usize) -> usize {
    let off = |p: usize, d: i16| {
        let x = p.saturating_sub(base).min(SPACE) as i64 + d as i64;
        base + x.clamp(0, SPACE as i64 - 1) as usize
    };
    match at {
        At::Front(d) => off(front, d),
        At::Back(d) => off(back, d),
        At::Abs(x) => base + x as usize % SPACE,
    }
}

/// `[a, a + len]` cut to the index space.
fn span_of(base: usize, a: usize, len: u8) -> (usize, usize) {
    (a, a.saturating_add(len as usize).min(base + (SPACE - 1)))
}

/// Run one case through `d` (already prefilled as `o`) and check everything.
fn check(case: &Case, o: &mut Oracle, d: &mut dyn Driver) -> Result<(), String> {
    let base = case.base();
    let q = case.query();
    let mut model = ModelIter::new(q);
    let mut items = Items::new();
    // covered[x]: index base + x has held an entry at every step so far.
    let mut covered: Vec<bool> = (0..SPACE).map(|x| o.load(base + x).is_some()).collect();
    let mut next_value = 1_000_000usize;
    let mut wrote = false;
    let step = |back: bool,
                o: &Oracle,
                model: &mut ModelIter,
                items: &mut Items,
                d: &mut dyn Driver|
     -> Result<bool, String> {
        let want = if back {
            model.next_back(o)
        } else {
            model.next(o)
        };
        let got = d.step(back);
        if got != want {
            return Err(format!(
                "{} returned {got:?}, the rule says {want:?} (model {model:?}, items {:?})",
                if back { "next_back" } else { "next" },
                items.in_order()
            ));
        }
        let Some((span, v)) = got else {
            return Ok(false);
        };
        let item = items.push("iter", back, span.clone(), v).clone();
        // The item's value is stored over the whole item right now...
        let (piece, pv) = o.walk(*span.start());
        if pv != Some(v) || piece.end() < span.end() {
            return Err(format!(
                "item {span:?} = {v} is not stored whole: {piece:?} = {pv:?}"
            ));
        }
        // ... and the item is that stored range cut to what was not yielded yet.
        if item.expected(&piece) != span {
            return Err(format!(
                "item {span:?} from {piece:?} is not clipped to {item:?}"
            ));
        }
        if span != piece {
            CLIPPED.with(|c| c[back as usize].set(c[back as usize].get() + 1));
        }
        Ok(true)
    };

    for &op in &case.ops {
        match op {
            Op::Next | Op::Back => {
                step(matches!(op, Op::Back), o, &mut model, &mut items, d)?;
                continue;
            }
            Op::Store(at, len) => {
                let (a, b) = span_of(base, pos(at, base, model.front, model.back), len);
                next_value += 1;
                o.store(a..=b, next_value);
                d.store(a, b, next_value);
            }
            Op::Punch(at, len) => {
                let (a, b) = span_of(base, pos(at, base, model.front, model.back), len);
                o.punch(a..=b);
                d.punch(a, b);
            }
            Op::Erase(at) => {
                let i = pos(at, base, model.front, model.back);
                let want = o.erase(i);
                let got = d.erase(i);
                if got != want {
                    return Err(format!("erase({i}) = {got:?}, oracle {want:?}"));
                }
            }
        }
        wrote = true;
        for (x, c) in covered.iter_mut().enumerate() {
            *c &= o.load(base + x).is_some();
        }
        d.validate()?;
    }
    // Finish from alternating ends.
    let mut back = false;
    while step(back, o, &mut model, &mut items, d)? {
        back = !back;
    }
    if step(true, o, &mut model, &mut items, d)? || step(false, o, &mut model, &mut items, d)? {
        return Err("items after the end".into());
    }

    // No skipped live index: every index of the query that held an entry throughout is in
    // exactly one item (items never overlap: `Items::push` checked that).
    let all = items.in_order();
    for (x, &c) in covered.iter().enumerate() {
        let i = base + x;
        if c && (q.0..=q.1).contains(&i) && !all.iter().any(|it| it.span.contains(&i)) {
            return Err(format!("live index {i} never yielded; items {all:?}"));
        }
    }
    if !wrote {
        let whole: Vec<_> = all.iter().map(|it| (it.span.clone(), it.value)).collect();
        let want = if q.0 <= q.1 {
            o.range(q.0..=q.1)
        } else {
            Vec::new()
        };
        if whole != want {
            return Err(format!("without writes: {whole:?}, stored {want:?}"));
        }
    }
    Ok(())
}

/// The writer's own iterator, used across its writes on one thread.
fn single_thread<D: Domain>(case: &Case, alloc: bool) -> Result<(), String> {
    let t = tree::<D>(alloc);
    let mut o = Oracle::new();
    fill(&t, &mut o, case);
    let w = t.lock();
    struct Own<'g, 't, D: Domain> {
        t: &'t MapleTree<Value, D>,
        w: &'g maple::WriteGuard<'t, Value, D>,
        it: maple::Iter<'g, 't, Value, D>,
    }
    impl<D: Domain> Driver for Own<'_, '_, D> {
        fn step(&mut self, back: bool) -> Option<(RangeInclusive<usize>, usize)> {
            let r = if back {
                self.it.next_back()
            } else {
                self.it.next()
            };
            r.map(|(k, v)| (k, v.get()))
        }
        fn store(&mut self, a: usize, b: usize, v: usize) {
            self.w.store_range(a..=b, Value::new(v).unwrap()).unwrap();
        }
        fn punch(&mut self, a: usize, b: usize) {
            self.w.punch(a..=b).unwrap();
        }
        fn erase(&mut self, i: usize) -> Option<(RangeInclusive<usize>, usize)> {
            self.w.erase(i).map(|(k, v)| (k, v.get()))
        }
        fn validate(&mut self) -> Result<(), String> {
            // `validate` runs directly inside this thread's own write section.
            self.t
                .validate()
                .map_err(|e| format!("{e}\n{}", self.t.dump()))
        }
    }
    let (lo, hi) = case.query();
    let mut d = Own {
        t: &t,
        w: &w,
        it: w.range(lo..=hi),
    };
    check(case, &mut o, &mut d)
}

/// A reader thread with its own read section and iterator; the test thread writes
/// between its steps.
fn two_threads<D: Domain>(case: &Case, alloc: bool) -> Result<(), String> {
    let t = tree::<D>(alloc);
    let mut o = Oracle::new();
    fill(&t, &mut o, case);
    let (lo, hi) = case.query();
    type Answer = Option<(RangeInclusive<usize>, usize)>;
    let (cmd_tx, cmd_rx) = mpsc::channel::<bool>();
    let (ans_tx, ans_rx) = mpsc::channel::<Answer>();
    std::thread::scope(|s| {
        let t = &t;
        s.spawn(move || {
            let r = t.read();
            let mut it = r.range(lo..=hi);
            // Each command is one call; the sender hangs up when the case is over (or
            // failed), which ends this thread.
            while let Ok(back) = cmd_rx.recv_timeout(STEP) {
                let got = if back { it.next_back() } else { it.next() };
                if ans_tx.send(got.map(|(k, v)| (k, v.get()))).is_err() {
                    break;
                }
            }
        });
        struct Remote<'a, D: Domain> {
            t: &'a MapleTree<Value, D>,
            cmd: mpsc::Sender<bool>,
            ans: mpsc::Receiver<Answer>,
        }
        impl<D: Domain> Driver for Remote<'_, D> {
            fn step(&mut self, back: bool) -> Answer {
                self.cmd.send(back).expect("reader thread alive");
                // The channels order this step after every write the test thread has
                // completed (and its reply before the next one).
                self.ans
                    .recv_timeout(STEP)
                    .expect("reader thread answers in time")
            }
            fn store(&mut self, a: usize, b: usize, v: usize) {
                self.t
                    .lock()
                    .store_range(a..=b, Value::new(v).unwrap())
                    .unwrap();
            }
            fn punch(&mut self, a: usize, b: usize) {
                self.t.lock().punch(a..=b).unwrap();
            }
            fn erase(&mut self, i: usize) -> Answer {
                self.t.lock().erase(i).map(|(k, v)| (k, v.get()))
            }
            fn validate(&mut self) -> Result<(), String> {
                self.t
                    .validate()
                    .map_err(|e| format!("{e}\n{}", self.t.dump()))
            }
        }
        let mut d = Remote {
            t,
            cmd: cmd_tx,
            ans: ans_rx,
        };
        check(case, &mut o, &mut d)
        // `d` drops here: the reader sees the hang-up and ends before the scope joins it.
    })
}

/// A hand-written `find` loop from the front and a `find_rev` loop from the back, with
/// writes between their calls, checked against their documented guarantee: each result is
/// the whole stored range (what `find`/`find_rev` return on the tree at that moment), the
/// ends strictly increase (the starts strictly decrease), and no index holding an entry
/// through the whole loop is skipped. Results may overlap the previous one; the loop
/// counts how often, to show that the documented caveat is real.
fn find_loops<D: Domain>(case: &Case, alloc: bool) -> Result<(), String> {
    let t = tree::<D>(alloc);
    let mut o = Oracle::new();
    fill(&t, &mut o, case);
    let base = case.base();
    let (qa, qb) = case.query();
    let w = t.lock();
    if qa > qb {
        return match (w.find(qa..=qb), w.find_rev(qa..=qb)) {
            (None, None) => Ok(()),
            got => Err(format!("find on an empty range: {got:?}")),
        };
    }
    let mut covered: Vec<bool> = (0..SPACE).map(|x| o.load(base + x).is_some()).collect();
    // Next index each loop asks about; None once it is finished.
    let (mut i, mut j) = (Some(qa), Some(qb));
    let (mut fwd, mut bwd): (Vec<RangeInclusive<usize>>, Vec<RangeInclusive<usize>>) =
        Default::default();
    let mut value = 2_000_000usize;
    let step = |back: bool,
                w: &maple::WriteGuard<'_, Value, D>,
                o: &Oracle,
                i: &mut Option<usize>,
                j: &mut Option<usize>,
                fwd: &mut Vec<RangeInclusive<usize>>,
                bwd: &mut Vec<RangeInclusive<usize>>|
     -> Result<bool, String> {
        if !back {
            let Some(x) = *i else { return Ok(false) };
            let got = w.find(x..=qb).map(|(k, v)| (k, v.get()));
            if got != o.find(x..=qb) {
                return Err(format!(
                    "find({x}..={qb}) = {got:?}, stored {:?}",
                    o.find(x..=qb)
                ));
            }
            let Some((k, _)) = got else {
                *i = None;
                return Ok(false);
            };
            if *k.start() < x {
                OVERLAPS.with(|c| {
                    c.set(c.get() + (fwd.last().is_some_and(|p| p.end() >= k.start()) as usize))
                });
            }
            *i = k.end().checked_add(1).filter(|&n| n <= qb);
            fwd.push(k);
        } else {
            let Some(y) = *j else { return Ok(false) };
            let got = w.find_rev(qa..=y).map(|(k, v)| (k, v.get()));
            if got != o.find_rev(qa..=y) {
                return Err(format!(
                    "find_rev({qa}..={y}) = {got:?}, stored {:?}",
                    o.find_rev(qa..=y)
                ));
            }
            let Some((k, _)) = got else {
                *j = None;
                return Ok(false);
            };
            if *k.end() > y {
                OVERLAPS.with(|c| {
                    c.set(c.get() + (bwd.last().is_some_and(|p| p.start() <= k.end()) as usize))
                });
            }
            *j = k.start().checked_sub(1).filter(|&n| n >= qa);
            bwd.push(k);
        }
        Ok(true)
    };
    for &op in &case.ops {
        let (f, b) = (i.unwrap_or(qb), j.unwrap_or(qa));
        match op {
            Op::Next | Op::Back => {
                step(
                    matches!(op, Op::Back),
                    &w,
                    &o,
                    &mut i,
                    &mut j,
                    &mut fwd,
                    &mut bwd,
                )?;
                continue;
            }
            Op::Store(at, len) => {
                let (a, b) = span_of(base, pos(at, base, f, b), len);
                value += 1;
                o.store(a..=b, value);
                w.store_range(a..=b, Value::new(value).unwrap()).unwrap();
            }
            Op::Punch(at, len) => {
                let (a, b) = span_of(base, pos(at, base, f, b), len);
                o.punch(a..=b);
                w.punch(a..=b).unwrap();
            }
            Op::Erase(at) => {
                let x = pos(at, base, f, b);
                let (got, want) = (w.erase(x).map(|(k, v)| (k, v.get())), o.erase(x));
                if got != want {
                    return Err(format!("erase({x}) = {got:?}, oracle {want:?}"));
                }
            }
        }
        for (x, c) in covered.iter_mut().enumerate() {
            *c &= o.load(base + x).is_some();
        }
    }
    while step(false, &w, &o, &mut i, &mut j, &mut fwd, &mut bwd)? {}
    while step(true, &w, &o, &mut i, &mut j, &mut fwd, &mut bwd)? {}
    for pair in fwd.windows(2) {
        if pair[1].end() <= pair[0].end() {
            return Err(format!("find loop ends do not increase: {fwd:?}"));
        }
    }
    for pair in bwd.windows(2) {
        if pair[1].start() >= pair[0].start() {
            return Err(format!("find_rev loop starts do not decrease: {bwd:?}"));
        }
    }
    for (x, &c) in covered.iter().enumerate() {
        let x = base + x;
        if c && (qa..=qb).contains(&x) {
            if !fwd.iter().any(|k| k.contains(&x)) {
                return Err(format!("find loop skipped live index {x}: {fwd:?}"));
            }
            if !bwd.iter().any(|k| k.contains(&x)) {
                return Err(format!("find_rev loop skipped live index {x}: {bwd:?}"));
            }
        }
    }
    Ok(())
}

fn tree<D: Domain>(alloc: bool) -> MapleTree<Value, D> {
    if alloc {
        MapleTree::alloc_with_domain(D::default())
    } else {
        MapleTree::with_domain(D::default())
    }
}

fn fill<D: Domain>(t: &MapleTree<Value, D>, o: &mut Oracle, case: &Case) {
    let w = t.lock();
    for (a, b, v) in prefill(case.seed, case.base()) {
        w.store_range(a..=b, Value::new(v).unwrap()).unwrap();
        o.store(a..=b, v);
    }
    drop(w);
    t.validate().unwrap();
    assert!(t.height() >= 2, "the prefill should span several leaves");
}

thread_local! {
    /// Items that came out clipped (from the front, from the back) on this thread: proof
    /// that the cases reach the interesting path.
    static CLIPPED: [Cell<usize>; 2] = const { [Cell::new(0), Cell::new(0)] };
    /// `find`/`find_rev` loop results that overlapped the previous result.
    static OVERLAPS: Cell<usize> = const { Cell::new(0) };
}

fn quickcheck_bounded(name: &'static str, prop: fn(Case) -> TestResult) {
    run_bounded(name, BOUND, move || {
        let tests = if cfg!(miri) { 4 } else { 300 };
        QuickCheck::new().tests(tests).quickcheck(prop);
        let [f, b] = CLIPPED.with(|c| [c[0].get(), c[1].get()]);
        eprintln!("{name}: {f} items clipped at the front, {b} at the back");
        if !cfg!(miri) {
            assert!(
                f > 0 && b > 0,
                "{name}: no case clipped an item at both ends"
            );
        }
    });
}

fn result(r: Result<(), String>) -> TestResult {
    match r {
        Ok(()) => TestResult::passed(),
        Err(e) => TestResult::error(e),
    }
}

#[test]
fn iter_model_own_writer_seize_plain() {
    quickcheck_bounded("own writer, seize, plain", |c| {
        result(single_thread::<rcu::Seize>(&c, false))
    });
}

#[test]
fn iter_model_own_writer_epoch_alloc() {
    quickcheck_bounded("own writer, epoch, alloc", |c| {
        result(single_thread::<rcu::Epoch>(&c, true))
    });
}

#[test]
fn iter_model_reader_thread_seize_alloc() {
    quickcheck_bounded("reader thread, seize, alloc", |c| {
        result(two_threads::<rcu::Seize>(&c, true))
    });
}

#[test]
fn iter_model_reader_thread_epoch_plain() {
    quickcheck_bounded("reader thread, epoch, plain", |c| {
        result(two_threads::<rcu::Epoch>(&c, false))
    });
}

#[test]
fn find_loops_under_writes() {
    run_bounded("find loops", BOUND, || {
        let tests = if cfg!(miri) { 4 } else { 300 };
        QuickCheck::new().tests(tests).quickcheck(
            (|c| result(find_loops::<rcu::Seize>(&c, false))) as fn(Case) -> TestResult,
        );
        QuickCheck::new()
            .tests(tests)
            .quickcheck((|c| result(find_loops::<rcu::Epoch>(&c, true))) as fn(Case) -> TestResult);
        let n = OVERLAPS.with(Cell::get);
        eprintln!("find loops: {n} results overlapped the previous one");
        if !cfg!(miri) {
            assert!(n > 0, "no case showed the documented overlap");
        }
    });
}
