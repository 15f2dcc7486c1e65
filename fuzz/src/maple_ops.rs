//! `maple_ops`: random writes and reads on a plain maple tree against a [`RangeOracle`].
//!
//! The first byte picks the entry type (`Value`, `Box<u64>`, `Arc<u64>`) and the
//! reclamation domain (`Seize`, `Epoch`); the rest is a list of operations (see
//! [`MapleHarness::step`]). After every operation the tree is validated and its whole
//! contents compared with the oracle.

use std::fmt::Debug;
use std::ops::RangeInclusive;
use std::sync::Arc;

use maple::{Entry, InsertErrorKind, MapleTree, Value};
use rcu::{Domain, Epoch, Seize};

use crate::avoid;
use crate::input::{Input, SplitMix64};
use crate::oracle::RangeOracle;

/// Longest operation log printed with a failure.
const LOG_TAIL: usize = 40;
/// Longest tree dump printed with a failure.
const DUMP_MAX: usize = 16_000;

/// An entry type the harness can create from an id and read an id back from.
pub trait TestEntry: Entry + Clone + Debug {
    /// A fresh entry carrying `id`.
    fn make(id: u64) -> Self;
    /// The id carried by a reader's reference.
    fn id_of(r: Self::Ref<'_>) -> u64;
    /// The id carried by an owned entry (one handed back by an error or `into_iter`).
    fn own_id(&self) -> u64;
    /// Whether the tree owns the value (pointer entries): then a value left in several
    /// pieces by a split is handed out once by `into_iter`, at its last piece.
    const OWNED: bool;
    /// Whether a clone of the entry is the same word (an `Arc` pointer), not a new one.
    const CLONE_SAME_WORD: bool;
}

impl TestEntry for Value {
    const OWNED: bool = false;
    const CLONE_SAME_WORD: bool = true;
    fn make(id: u64) -> Self {
        // Ids count operations, far below Value::MAX.
        Value::new(id as usize).unwrap_or(Value::new(0).unwrap_or_else(|| unreachable!()))
    }
    fn id_of(r: Value) -> u64 {
        r.get() as u64
    }
    fn own_id(&self) -> u64 {
        self.get() as u64
    }
}

impl TestEntry for Box<u64> {
    const OWNED: bool = true;
    const CLONE_SAME_WORD: bool = false;
    fn make(id: u64) -> Self {
        Box::new(id)
    }
    fn id_of(r: &u64) -> u64 {
        *r
    }
    fn own_id(&self) -> u64 {
        **self
    }
}

impl TestEntry for Arc<u64> {
    const OWNED: bool = true;
    const CLONE_SAME_WORD: bool = true;
    fn make(id: u64) -> Self {
        Arc::new(id)
    }
    fn id_of(r: &u64) -> u64 {
        *r
    }
    fn own_id(&self) -> u64 {
        **self
    }
}

/// A maple tree and its oracle, driven by decoded operations.
pub struct MapleHarness<E: TestEntry, D: Domain> {
    /// The tree under test.
    pub tree: MapleTree<E, D>,
    /// The model it must agree with.
    pub oracle: RangeOracle,
    /// Set whenever the tree is replaced by a freshly built one (rebuild, owned iteration).
    pub replaced: bool,
    next_id: u64,
    log: Vec<String>,
    reported: std::cell::Cell<bool>,
}

impl<E: TestEntry, D: Domain> Drop for MapleHarness<E, D> {
    /// A panic inside the engine itself (not a reported divergence) still shows the
    /// recent operations.
    fn drop(&mut self) {
        if std::thread::panicking() && !self.reported.get() {
            let from = self.log.len().saturating_sub(LOG_TAIL);
            eprintln!(
                "--- panicked; last operations ({} in all):\n{}",
                self.log.len(),
                self.log[from..].join("\n")
            );
        }
    }
}

impl<E: TestEntry, D: Domain> MapleHarness<E, D> {
    /// Wrap an empty `tree`.
    pub fn new(tree: MapleTree<E, D>) -> Self {
        MapleHarness {
            tree,
            oracle: RangeOracle::new(),
            replaced: false,
            next_id: 1,
            log: Vec::new(),
            reported: std::cell::Cell::new(false),
        }
    }

    /// A fresh id for a new entry.
    pub fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Record an operation for failure reports.
    pub fn note(&mut self, s: String) {
        self.log.push(s);
    }

    /// Panic with `msg`, the recent operations and a dump of the tree.
    #[track_caller]
    pub fn fail(&self, msg: &str) -> ! {
        self.reported.set(true);
        let from = self.log.len().saturating_sub(LOG_TAIL);
        let mut dump = self.tree.dump();
        if dump.len() > DUMP_MAX {
            let mut cut = DUMP_MAX;
            while !dump.is_char_boundary(cut) {
                cut -= 1;
            }
            dump.truncate(cut);
            dump.push_str("\n...");
        }
        panic!(
            "{msg}\n--- last operations ({} in all):\n{}\n--- oracle: {:?}\n--- tree:\n{dump}",
            self.log.len(),
            self.log[from..].join("\n"),
            self.oracle.ranges()
        );
    }

    /// Compare two values, failing with context.
    #[track_caller]
    pub fn check_eq<T: PartialEq + Debug>(&self, what: &str, got: T, want: T) {
        if got != want {
            self.fail(&format!("{what}: tree gave {got:?}, oracle wants {want:?}"));
        }
    }

    /// Validate the tree and compare its whole contents with the oracle.
    pub fn check_all(&self) {
        if let Err(e) = self.tree.validate() {
            self.fail(&format!("validate: {e}"));
        }
        let want = self.oracle.ranges();
        self.check_eq("len", self.tree.len(), want.len());
        self.check_eq("is_empty", self.tree.is_empty(), want.is_empty());
        if !want.is_empty() && self.tree.height() == 0 {
            self.fail("height 0 with entries stored");
        }
        let r = self.tree.read();
        let got: Vec<_> = r.iter().map(|(k, v)| (k, E::id_of(v))).collect();
        drop(r);
        self.check_eq("contents", got, want);
    }

    /// Decode and apply one operation of the shared set; returns false if `op` is not one
    /// of them (so a caller can add its own). Ops: 0-2 store, 3 punch, 4 insert, 5 erase,
    /// 6 load (sometimes overwriting the range while holding the loaded reference), 7 walk, 8 find, 9 find_rev, 10 range iteration, 11 clone, 12 extend
    /// (exclusive write path), 13 rebuild by bulk load, 14 owned iteration, 15 populate
    /// (a run of up to 64 stores laid out like VMAs, to grow deep trees quickly).
    pub fn step(&mut self, op: u8, inp: &mut Input<'_>, rebuild: fn() -> MapleTree<E, D>) -> bool {
        match op {
            0..=2 => self.op_store(inp),
            3 => self.op_punch(inp),
            4 => self.op_insert(inp),
            5 => self.op_erase(inp),
            6 => {
                let i = inp.index();
                let hold = inp.byte() % 4 == 0;
                let id = self.id();
                self.note(format!("load({i}, hold={hold}, {id})"));
                let want = self.oracle.get(i);
                let r = self.tree.read();
                let got = r.load(i);
                self.check_eq("load", got.map(E::id_of), want.as_ref().map(|w| w.1));
                if let (true, Some((range, old))) = (hold, want) {
                    // Overwrite the range while this reader still holds the old value: it
                    // is retired, not freed, so the reference must stay readable.
                    let res = self.tree.lock().store_range(range.clone(), E::make(id));
                    self.oracle.store(*range.start(), *range.end(), id);
                    self.check_eq("store under a reader", res.is_ok(), true);
                    self.check_eq("held reference", got.map(E::id_of), Some(old));
                    self.check_eq("reload", r.load(i).map(E::id_of), Some(id));
                }
                drop(r);
            }
            7 => {
                let i = inp.index();
                self.note(format!("walk({i})"));
                let r = self.tree.read();
                let (k, v) = r.walk(i);
                let got = (k, v.map(E::id_of));
                drop(r);
                self.check_eq("walk", got, self.oracle.walk(i));
            }
            8 | 9 => {
                let span = inp.range();
                let rev = op == 9;
                self.note(format!("find(rev={rev}, {span:?})"));
                let r = self.tree.read();
                let got = if rev {
                    r.find_rev(span.bounds())
                } else {
                    r.find(span.bounds())
                };
                let got = got.map(|(k, v)| (k, E::id_of(v)));
                drop(r);
                let want = span.inclusive().and_then(|(a, b)| {
                    let o = self.oracle.overlapping(a, b);
                    if rev {
                        o.last().cloned()
                    } else {
                        o.first().cloned()
                    }
                });
                self.check_eq("find", got, want);
            }
            10 => self.op_range(inp),
            11 => self.op_clone(inp),
            12 => self.op_extend(inp),
            13 => self.op_rebuild(rebuild),
            14 => self.op_into_iter(rebuild),
            15 => self.op_populate(inp),
            _ => return false,
        }
        true
    }

    fn op_store(&mut self, inp: &mut Input<'_>) {
        let span = inp.range();
        let id = self.id();
        self.note(format!("store({span:?}, {id})"));
        let res = self.tree.lock().store_range(span.bounds(), E::make(id));
        match (res, span.inclusive()) {
            (Ok(()), Some((a, b))) => self.oracle.store(a, b, id),
            (Err(e), None) => self.check_eq("returned value", e.value.own_id(), id),
            (res, want) => self.fail(&format!("store result {res:?}, range {want:?}")),
        }
    }

    fn op_punch(&mut self, inp: &mut Input<'_>) {
        let span = inp.range();
        self.note(format!("punch({span:?})"));
        let res = self.tree.lock().punch(span.bounds());
        match (res, span.inclusive()) {
            (Ok(()), Some((a, b))) => self.oracle.clear(a, b),
            (Err(_), None) => {}
            (res, want) => self.fail(&format!("punch result {res:?}, range {want:?}")),
        }
    }

    fn op_insert(&mut self, inp: &mut Input<'_>) {
        let span = inp.range();
        let id = self.id();
        self.note(format!("insert({span:?}, {id})"));
        let res = self.tree.lock().insert_range(span.bounds(), E::make(id));
        let want = match span.inclusive() {
            None => Err(InsertErrorKind::InvalidRange),
            Some((a, b)) if !self.oracle.overlapping(a, b).is_empty() => {
                Err(InsertErrorKind::Occupied)
            }
            Some((a, b)) => Ok((a, b)),
        };
        match (res, want) {
            (Ok(()), Ok((a, b))) => self.oracle.store(a, b, id),
            (Err(e), Err(k)) => {
                self.check_eq("insert error", e.kind, k);
                self.check_eq("returned value", e.value.own_id(), id);
            }
            (res, want) => self.fail(&format!("insert result {res:?}, want {want:?}")),
        }
    }

    fn op_erase(&mut self, inp: &mut Input<'_>) {
        let i = inp.index();
        self.note(format!("erase({i})"));
        let w = self.tree.lock();
        let got = w.erase(i).map(|(k, v)| (k, E::id_of(v)));
        drop(w);
        let want = self.oracle.get(i);
        if let Some((r, _)) = &want {
            self.oracle.clear(*r.start(), *r.end());
        }
        self.check_eq("erase", got, want);
    }

    fn op_populate(&mut self, inp: &mut Input<'_>) {
        let mut p = inp.index();
        let count = 1 + inp.byte() as usize % 64;
        let wmax = 1 + inp.byte() as u64 % 32;
        let hmax = 1 + inp.byte() as u64 % 4;
        let mut rng = SplitMix64(inp.byte() as u64);
        self.note(format!(
            "populate(from {p}, {count} ranges, width<={wmax}, hole<{hmax})"
        ));
        let w = self.tree.lock();
        for _ in 0..count {
            let a = p.saturating_add((rng.next_u64() % hmax) as usize);
            let b = a.saturating_add((rng.next_u64() % wmax) as usize);
            let id = self.next_id;
            self.next_id += 1;
            if w.store_range(a..=b, E::make(id)).is_err() {
                drop(w);
                self.fail("populate: store_range failed");
            }
            self.oracle.store(a, b, id);
            if b == usize::MAX {
                break;
            }
            p = b + 1;
        }
        drop(w);
    }

    fn op_range(&mut self, inp: &mut Input<'_>) {
        let span = inp.range();
        let pattern = inp.u16();
        self.note(format!("range({span:?}, pattern {pattern:#x})"));
        let want: Vec<(RangeInclusive<usize>, u64)> = match span.inclusive() {
            Some((a, b)) => self.oracle.overlapping(a, b),
            None => Vec::new(),
        };
        let mut failure = None;
        let r = self.tree.read();
        let mut it = r.range(span.bounds());
        let (mut lo, mut hi) = (0usize, want.len());
        // Consume from both ends as the pattern bits say, one step past the end.
        for bit in 0..=want.len().min(64) {
            let back = bit < 16 && pattern >> bit & 1 == 1;
            let got = if back { it.next_back() } else { it.next() };
            let got = got.map(|(k, v)| (k, E::id_of(v)));
            let expect = if lo == hi {
                None
            } else if back {
                hi -= 1;
                Some(want[hi].clone())
            } else {
                lo += 1;
                Some(want[lo - 1].clone())
            };
            if got != expect {
                failure = Some(format!(
                    "range step {bit} (back={back}): got {got:?}, want {expect:?}"
                ));
                break;
            }
            if expect.is_none() {
                break;
            }
        }
        drop(r);
        if let Some(msg) = failure {
            self.fail(&msg);
        }
    }

    fn op_clone(&mut self, inp: &mut Input<'_>) {
        let swap = inp.bool();
        self.note(format!("clone(swap={swap})"));
        let copy = self.tree.clone();
        if let Err(e) = copy.validate() {
            self.fail(&format!("validate clone: {e}"));
        }
        let r = copy.read();
        let got: Vec<_> = r.iter().map(|(k, v)| (k, E::id_of(v))).collect();
        drop(r);
        self.check_eq("clone contents", got, self.oracle.ranges());
        self.check_eq("clone alloc", copy.is_alloc(), self.tree.is_alloc());
        if swap {
            // A clone carries the tree's flags (like the kernel's `__mt_dup`), so this is
            // not a fresh tree for `swapped`; it clones a shared value once per range.
            self.tree = copy;
            self.oracle.own_all(|_| E::CLONE_SAME_WORD);
        }
    }

    /// The tree was replaced by a freshly built one: per-tree state such as
    /// `alloc_cyclic`'s wrap flag starts over.
    fn swapped(&mut self) {
        self.replaced = true;
    }

    fn op_extend(&mut self, inp: &mut Input<'_>) {
        let n = inp.byte() % 8;
        let mut items = Vec::new();
        for _ in 0..n {
            let span = inp.range();
            let id = self.id();
            let (a, b) = span.inclusive().unwrap_or((1, 0));
            items.push((a..=b, id));
        }
        self.note(format!("extend({items:?})"));
        self.tree
            .extend(items.iter().map(|(r, id)| (r.clone(), E::make(*id))));
        for (r, id) in items {
            if r.start() <= r.end() {
                self.oracle.store(*r.start(), *r.end(), id);
            }
        }
    }

    fn op_rebuild(&mut self, rebuild: fn() -> MapleTree<E, D>) {
        self.note("rebuild (bulk)".to_string());
        let mut t = rebuild();
        t.extend(
            self.oracle
                .ranges()
                .into_iter()
                .map(|(r, id)| (r, E::make(id))),
        );
        self.tree = t;
        self.oracle.own_all(|_| false);
        self.swapped();
    }

    fn op_into_iter(&mut self, rebuild: fn() -> MapleTree<E, D>) {
        self.note("into_iter".to_string());
        let old = std::mem::replace(&mut self.tree, rebuild());
        self.swapped();
        let owned: Vec<(RangeInclusive<usize>, E)> = old.into_iter().collect();
        let got: Vec<_> = owned.iter().map(|(r, e)| (r.clone(), e.own_id())).collect();
        let want = if <E as TestEntry>::OWNED {
            self.oracle.last_pieces()
        } else {
            self.oracle.ranges()
        };
        self.check_eq("into_iter", got, want);
        // Store the handed-out values back one by one (not the bulk path), in reverse
        // order, and fresh values at the pieces that were not handed out.
        let handed: std::collections::BTreeSet<usize> =
            owned.iter().map(|(r, _)| *r.start()).collect();
        let w = self.tree.lock();
        let mut ok = true;
        for (r, e) in owned.into_iter().rev() {
            ok &= w.store_range(r, e).is_ok();
        }
        for (r, id) in self.oracle.ranges() {
            if !handed.contains(r.start()) {
                ok &= w.store_range(r, E::make(id)).is_ok();
            }
        }
        drop(w);
        self.oracle.own_all(|s| handed.contains(&s));
        if !ok {
            self.fail("store_range of an owned range failed");
        }
    }
}

/// Run the `maple_ops` target on `data`. Panics on any divergence.
///
/// The first byte picks the entry type and domain: `% 6` = 0, 1: `Value`/`Seize`;
/// 2: `Box<u64>`/`Seize`; 3: `Arc<u64>`/`Seize`; 4: `Value`/`Epoch`; 5: `Box<u64>`/`Epoch`.
pub fn run_maple_ops(data: &[u8]) {
    let mut inp = Input::new(data);
    let mut kind = inp.byte() % 6;
    if avoid("f1") && matches!(kind, 2 | 3 | 5) {
        kind = if kind == 5 { 4 } else { 0 };
    }
    match kind {
        0 | 1 => drive::<Value, Seize>(&mut inp),
        2 => drive::<Box<u64>, Seize>(&mut inp),
        3 => drive::<Arc<u64>, Seize>(&mut inp),
        4 => drive::<Value, Epoch>(&mut inp),
        _ => drive::<Box<u64>, Epoch>(&mut inp),
    }
}

fn drive<E: TestEntry, D: Domain>(inp: &mut Input<'_>) {
    let mut h = MapleHarness::new(MapleTree::<E, D>::default());
    while !inp.is_empty() {
        let op = inp.byte() % 16;
        crate::count_ops(1);
        h.step(op, inp, MapleTree::default);
        h.check_all();
    }
}
