//! `maple_rcu`: one writer and one or two lock-free readers on a maple tree, every reader
//! result checked against the model at the versions its read overlapped.
//!
//! The input is decoded up front (see [`crate::concurrent`] for rounds, races and
//! versions) into
//!
//! - writer events: `store_range`, `punch`, `insert_range`, `erase`, `alloc_range`,
//!   `alloc_rrange`, `alloc_cyclic`, runs of stores under one lock (a VMA-like layout; an
//!   exact overwrite of a stored range; the range widened on both sides; a store strictly
//!   inside it; the range re-cut into pieces that cover the same indices), a full
//!   validation, a domain flush. The model ([`RangeOracle`]) is run at decode time, so the
//!   writer knows every expected result and the history of versions is known before any
//!   thread starts;
//! - reader events: `load`, `walk`, `find`, `find_rev`, `empty_area`, `empty_area_rev`,
//!   starting a range iterator, a few steps of it from either end (the input picks which),
//!   draining it, ending the read section.
//!
//! Values are boxed [`Canary`]s. Every reference a reader gets is checked at once and again
//! when its read section ends: a value destroyed while a section that reached it is still
//! running is reported as such (and under AddressSanitizer as a use-after-free).
//!
//! After the threads finish, every reader observation is checked against the model:
//!
//! - point reads (`load`, `walk`, `find`, `find_rev`, `empty_area(_rev)`) must equal the
//!   model's answer at some version in the observation's window;
//! - an iteration yields only ranges (with their values) stored at some version while it
//!   ran, each overlapping the requested range, strictly increasing from the front,
//!   strictly decreasing from the back, the two ends never crossing; and, if it ran to the
//!   end, every range stored unchanged through the whole iteration was yielded (no hole
//!   where coverage never changed).
//!
//! Finally the tree is validated and compared with the final model, the domain is
//! synchronised (after which exactly the canaries still in the tree may be alive), and the
//! tree is dropped (after which none may be). Both domains, plain and allocation trees.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use maple::{AllocErrorKind, GapError, InsertErrorKind, MapleTree};
use rcu::{Domain, Epoch, Seize};

use crate::avoid;
use crate::concurrent::{
    bounded, count_observation, delay, hang_limit, spawn, Baton, Canary, CanaryCount, Rounds,
    Shared, Turns, WRITER,
};
use crate::input::{Input, Span, SplitMix64};
use crate::oracle::RangeOracle;

/// Most events decoded from one input.
const MAX_EVENTS: usize = 512;
/// Most published writer changes per input.
const MAX_VERSIONS: usize = 2048;
/// The model history keeps a full copy every this many versions.
const CHECKPOINT: usize = 32;

type Tree<D> = MapleTree<Box<Canary>, D>;

/// A writer operation with the result the model expects.
#[derive(Clone, Debug)]
enum WOp {
    Store {
        span: Span,
        id: u64,
        ok: bool,
    },
    Punch {
        span: Span,
        ok: bool,
    },
    Insert {
        span: Span,
        id: u64,
        want: Result<(), InsertErrorKind>,
    },
    Erase {
        i: usize,
        want: Option<(RangeInclusive<usize>, u64)>,
    },
    /// Stores under one write lock, each published on its own.
    Stores {
        what: &'static str,
        items: Vec<(usize, usize, u64)>,
    },
    Alloc {
        rev: bool,
        size: usize,
        window: Span,
        id: u64,
        want: Result<usize, AllocErrorKind>,
    },
    Cyclic {
        window: Span,
        next: usize,
        id: u64,
        want: Result<(usize, bool), AllocErrorKind>,
        next_after: usize,
    },
    /// `validate()` and the whole contents.
    Check {
        want: Vec<(RangeInclusive<usize>, u64)>,
    },
    Flush,
}

/// A reader operation.
#[derive(Clone, Copy, Debug)]
enum ROp {
    Load(usize),
    Walk(usize),
    Find { span: Span, rev: bool },
    Gap { span: Span, size: usize, rev: bool },
    IterStart(Span),
    IterSteps { n: u8, pattern: u16 },
    IterDrain { pattern: u16 },
    EndSection,
}

/// One event of a thread: its round, a spin delay, the operation.
#[derive(Clone, Debug)]
struct Ev<T> {
    round: usize,
    delay: u32,
    op: T,
}

/// A change of the model; version `v` is the model after the first `v` deltas.
#[derive(Clone, Copy, Debug)]
enum Delta {
    Store(usize, usize, u64),
    Clear(usize, usize),
}

impl Delta {
    fn apply(self, m: &mut RangeOracle) {
        match self {
            Delta::Store(a, b, id) => m.store(a, b, id),
            Delta::Clear(a, b) => m.clear(a, b),
        }
    }
}

/// Every version of the model: deltas plus a checkpoint every [`CHECKPOINT`] versions.
#[derive(Debug, Default)]
struct History {
    deltas: Vec<Delta>,
    checkpoints: Vec<RangeOracle>,
}

impl History {
    fn versions(&self) -> u64 {
        self.deltas.len() as u64
    }
}

/// The model at any version, stepping forward from the last one asked for when it can.
struct Models<'h> {
    h: &'h History,
    v: usize,
    m: RangeOracle,
}

impl<'h> Models<'h> {
    fn new(h: &'h History) -> Self {
        Models {
            h,
            v: 0,
            m: RangeOracle::new(),
        }
    }

    fn at(&mut self, v: u64) -> &RangeOracle {
        let v = (v as usize).min(self.h.deltas.len());
        if v < self.v || v - self.v > CHECKPOINT {
            let c = v / CHECKPOINT;
            self.m = self.h.checkpoints[c].clone();
            self.v = c * CHECKPOINT;
        }
        while self.v < v {
            self.h.deltas[self.v].apply(&mut self.m);
            self.v += 1;
        }
        &self.m
    }
}

/// The decoded input.
struct Program {
    /// `MAPLE_FUZZ_AVOID=i2`: no check that every index covered throughout is yielded.
    avoid_i2: bool,
    /// 0: plain/Seize, 1: alloc/Seize, 2: plain/Epoch, 3: alloc/Epoch.
    kind: u8,
    readers: usize,
    rounds: Rounds,
    writer: Vec<Ev<WOp>>,
    reader: [Vec<Ev<ROp>>; 2],
    /// Every event in decode order: (thread, index in that thread's list).
    order: Vec<(usize, usize)>,
    hist: History,
    final_model: RangeOracle,
}

impl Program {
    fn alloc(&self) -> bool {
        self.kind % 2 == 1
    }

    /// The decoded events, for failure reports (`around` marks one event).
    fn listing(&self, around: Option<(usize, usize)>) -> String {
        let mut s = String::new();
        let show = |t: usize, k: usize| -> String {
            if t == WRITER {
                let e = &self.writer[k];
                format!("r{:<4} W  {:?}", e.round, e.op)
            } else {
                let e = &self.reader[t - 1][k];
                format!("r{:<4} R{t} [{k}] {:?}", e.round, e.op)
            }
        };
        for &(t, k) in &self.order {
            let mark = if around == Some((t, k)) { ">>" } else { "  " };
            s.push_str(mark);
            s.push_str(&show(t, k));
            s.push('\n');
        }
        s
    }
}

/// The decoder: the model runs alongside so writer choices can aim at stored ranges.
struct Decoder<'a, 'b> {
    inp: &'b mut Input<'a>,
    model: RangeOracle,
    hist: History,
    next_id: u64,
    alloc: bool,
    cyclic_next: usize,
    cyclic_wrapped: bool,
    /// Per reader: the direction of its iteration (`MAPLE_FUZZ_AVOID=i1` only).
    iter_dir: [u16; 2],
    avoid_i1: bool,
}

impl Decoder<'_, '_> {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn mutate(&mut self, d: Delta) {
        d.apply(&mut self.model);
        self.hist.deltas.push(d);
        if self.hist.deltas.len() % CHECKPOINT == 0 {
            self.hist.checkpoints.push(self.model.clone());
        }
    }

    /// A stored range near a steered index, if any is stored.
    fn pick(&mut self) -> Option<(usize, usize)> {
        let i = self.inp.index();
        let r = self
            .model
            .get(i)
            .or_else(|| self.model.overlapping(i, usize::MAX).first().cloned())
            .or_else(|| self.model.overlapping(0, i).last().cloned())?;
        Some((*r.0.start(), *r.0.end()))
    }

    fn stores(&mut self, what: &'static str, ranges: Vec<(usize, usize)>) -> WOp {
        let mut items = Vec::new();
        for (a, b) in ranges {
            let id = self.id();
            self.mutate(Delta::Store(a, b, id));
            items.push((a, b, id));
        }
        WOp::Stores { what, items }
    }

    fn store(&mut self) -> WOp {
        let span = self.inp.range();
        let id = self.id();
        let ok = match span.inclusive() {
            Some((a, b)) => {
                self.mutate(Delta::Store(a, b, id));
                true
            }
            None => false,
        };
        WOp::Store { span, id, ok }
    }

    fn writer_op(&mut self) -> WOp {
        match self.inp.byte() % 16 {
            0..=3 => self.store(),
            4 => {
                let span = self.inp.range();
                let ok = match span.inclusive() {
                    Some((a, b)) => {
                        self.mutate(Delta::Clear(a, b));
                        true
                    }
                    None => false,
                };
                WOp::Punch { span, ok }
            }
            5 => {
                let span = self.inp.range();
                let id = self.id();
                let want = match span.inclusive() {
                    None => Err(InsertErrorKind::InvalidRange),
                    Some((a, b)) if !self.model.overlapping(a, b).is_empty() => {
                        Err(InsertErrorKind::Occupied)
                    }
                    Some((a, b)) => {
                        self.mutate(Delta::Store(a, b, id));
                        Ok(())
                    }
                };
                WOp::Insert { span, id, want }
            }
            6 => {
                let i = match self.inp.byte() % 2 {
                    0 => self.pick().map_or(0, |r| r.0),
                    _ => self.inp.index(),
                };
                let want = self.model.get(i);
                if let Some((r, _)) = &want {
                    self.mutate(Delta::Clear(*r.start(), *r.end()));
                }
                WOp::Erase { i, want }
            }
            7 => {
                // A run of adjacent ranges with small holes, like a process's VMAs.
                let mut p = self.inp.index();
                let count = 1 + self.inp.byte() as usize % 32;
                let wmax = 1 + self.inp.byte() as u64 % 32;
                let hmax = 1 + self.inp.byte() as u64 % 4;
                let mut rng = SplitMix64(self.inp.byte() as u64);
                let mut ranges = Vec::new();
                for _ in 0..count {
                    let a = p.saturating_add((rng.next_u64() % hmax) as usize);
                    let b = a.saturating_add((rng.next_u64() % wmax) as usize);
                    ranges.push((a, b));
                    if b == usize::MAX {
                        break;
                    }
                    p = b + 1;
                }
                self.stores("populate", ranges)
            }
            8..=11 => {
                let op = self.inp.byte();
                let Some((a, b)) = self.pick() else {
                    return self.store();
                };
                let len = b - a;
                let x = self.inp.byte() as usize;
                match op % 4 {
                    // Same range, new value: the in-place exact fit.
                    0 => self.stores("exact", vec![(a, b)]),
                    // Widened on both sides at once: never seen widened on one side only.
                    1 => self.stores(
                        "widen",
                        vec![(a.saturating_sub(1 + x % 3), b.saturating_add(1 + x % 3))],
                    ),
                    // Strictly inside: the old value stays on both sides.
                    2 if len >= 2 => {
                        let lo = a + 1 + x % (len - 1);
                        let hi = lo + (x >> 4) % (b - lo);
                        self.stores("inside", vec![(lo, hi.min(b - 1))])
                    }
                    // Re-cut into pieces covering the same indices: never a hole.
                    _ if len >= 1 => {
                        let c1 = a + x % len;
                        let mut pieces = vec![(a, c1)];
                        if c1 + 1 < b && x & 0x80 != 0 {
                            let c2 = c1 + 1 + (x >> 3) % (b - c1 - 1);
                            pieces.push((c1 + 1, c2));
                            pieces.push((c2 + 1, b));
                        } else {
                            pieces.push((c1 + 1, b));
                        }
                        if x & 0x40 != 0 {
                            pieces.reverse();
                        }
                        self.stores("recut", pieces)
                    }
                    _ => self.stores("exact", vec![(a, b)]),
                }
            }
            12 => {
                let rev = self.inp.bool();
                let window = self.inp.range();
                let size = self.inp.size();
                let id = self.id();
                let want = if !self.alloc {
                    Err(AllocErrorKind::NotAllocTree)
                } else {
                    match want_gap(&self.model, window, size, rev) {
                        Ok(s) => {
                            self.mutate(Delta::Store(s, s + (size - 1), id));
                            Ok(s)
                        }
                        Err(GapError::Busy) => Err(AllocErrorKind::Busy),
                        Err(GapError::Invalid) => Err(AllocErrorKind::Invalid),
                    }
                };
                WOp::Alloc {
                    rev,
                    size,
                    window,
                    id,
                    want,
                }
            }
            13 => {
                if self.inp.bool() {
                    self.cyclic_next = self.inp.index();
                }
                let window = self.inp.range();
                let id = self.id();
                let next = self.cyclic_next;
                let want = self.cyclic(window, id);
                WOp::Cyclic {
                    window,
                    next,
                    id,
                    want,
                    next_after: self.cyclic_next,
                }
            }
            14 => WOp::Check {
                want: self.model.ranges(),
            },
            _ => WOp::Flush,
        }
    }

    /// `alloc_cyclic`'s model (as in `maple_alloc`): search from `max(lo, next)`, wrap to
    /// the window start once; a wrap of `next` past `usize::MAX` is reported by the next
    /// allocation that succeeds without wrapping.
    fn cyclic(&mut self, window: Span, id: u64) -> Result<(usize, bool), AllocErrorKind> {
        if !self.alloc {
            return Err(AllocErrorKind::NotAllocTree);
        }
        let (lo, hi) = window.inclusive().ok_or(AllocErrorKind::Invalid)?;
        let start = lo.max(self.cyclic_next);
        let first = if start > hi {
            None
        } else {
            self.model.gap_search(start, hi, 1, false)
        };
        let (s, wrapped, consumed) = match first {
            Some(s) => (s, self.cyclic_wrapped, self.cyclic_wrapped),
            None => {
                let s = self
                    .model
                    .gap_search(lo, hi, 1, false)
                    .ok_or(AllocErrorKind::Busy)?;
                (s, start > lo, false)
            }
        };
        self.mutate(Delta::Store(s, s, id));
        if consumed {
            self.cyclic_wrapped = false;
        }
        self.cyclic_next = s.wrapping_add(1);
        if self.cyclic_next == 0 {
            self.cyclic_wrapped = true;
        }
        Ok((s, wrapped))
    }

    /// The direction pattern of an iteration step; with `MAPLE_FUZZ_AVOID=i1` one
    /// direction per iteration (bit 0 of the pattern at its start).
    fn pattern(&mut self, t: usize, start: bool) -> u16 {
        let p = self.inp.u16();
        if !self.avoid_i1 {
            return p;
        }
        if start {
            self.iter_dir[t - 1] = if p & 1 == 1 { u16::MAX } else { 0 };
        }
        self.iter_dir[t - 1]
    }

    fn reader_op(&mut self, t: usize) -> ROp {
        match self.inp.byte() % 16 {
            0..=2 => ROp::Load(self.inp.index()),
            3 => ROp::Walk(self.inp.index()),
            4 => ROp::Find {
                span: self.inp.range(),
                rev: false,
            },
            5 => ROp::Find {
                span: self.inp.range(),
                rev: true,
            },
            6 | 7 => {
                let rev = self.inp.bool();
                ROp::Gap {
                    span: self.inp.range(),
                    size: self.inp.size(),
                    rev,
                }
            }
            8 | 9 => {
                self.pattern(t, true);
                ROp::IterStart(self.inp.range())
            }
            10..=12 => ROp::IterSteps {
                n: 1 + self.inp.byte() % 8,
                pattern: self.pattern(t, false),
            },
            13 => ROp::IterDrain {
                pattern: self.pattern(t, false),
            },
            _ => ROp::EndSection,
        }
    }
}

/// The model's answer to a gap search.
fn want_gap(m: &RangeOracle, window: Span, size: usize, rev: bool) -> Result<usize, GapError> {
    let (lo, hi) = window.inclusive().ok_or(GapError::Invalid)?;
    if size == 0 || hi - lo < size - 1 {
        return Err(GapError::Invalid);
    }
    m.gap_search(lo, hi, size, rev).ok_or(GapError::Busy)
}

fn decode(data: &[u8], avoiding: &dyn Fn(&str) -> bool) -> Program {
    let mut inp = Input::new(data);
    let cfg = inp.byte();
    let kind = cfg % 4;
    let readers = 1 + (cfg >> 2) as usize % 2;
    let mut d = Decoder {
        inp: &mut inp,
        model: RangeOracle::new(),
        hist: History::default(),
        next_id: 0,
        alloc: kind % 2 == 1,
        cyclic_next: 0,
        cyclic_wrapped: false,
        iter_dir: [0; 2],
        avoid_i1: avoiding("i1"),
    };
    d.hist.checkpoints.push(RangeOracle::new());
    let mut rounds = Rounds::default();
    let mut writer = Vec::new();
    let mut reader: [Vec<Ev<ROp>>; 2] = [Vec::new(), Vec::new()];
    let mut order = Vec::new();
    while !d.inp.is_empty() && order.len() < MAX_EVENTS && d.hist.deltas.len() < MAX_VERSIONS {
        let sel = d.inp.byte();
        let t = match sel % 8 {
            0..=3 => WRITER,
            4 | 5 => 1,
            _ => readers,
        };
        // About one event in four races the round before it.
        let join = sel & 0xc0 == 0xc0;
        let delay = if join && sel & 0x20 != 0 {
            let b = d.inp.byte() as u32;
            b * b / 4
        } else {
            0
        };
        let round = rounds.place(t, join);
        if t == WRITER {
            let op = d.writer_op();
            order.push((t, writer.len()));
            writer.push(Ev { round, delay, op });
        } else {
            let op = d.reader_op(t);
            order.push((t, reader[t - 1].len()));
            reader[t - 1].push(Ev { round, delay, op });
        }
    }
    let final_model = d.model.clone();
    Program {
        avoid_i2: avoiding("i2"),
        kind,
        readers,
        rounds,
        writer,
        reader,
        order,
        hist: d.hist,
        final_model,
    }
}

/// What a reader saw, with the versions it may have seen it at.
#[derive(Debug)]
struct Obs {
    /// The reader (1 or 2) and its event that made the observation.
    at: (usize, usize),
    lo: u64,
    hi: u64,
    /// The version count moved while the read ran: it really overlapped a writer change.
    moved: bool,
    what: What,
}

#[derive(Debug)]
enum What {
    Load {
        i: usize,
        got: Option<u64>,
    },
    Walk {
        i: usize,
        got: (RangeInclusive<usize>, Option<u64>),
    },
    Find {
        span: Span,
        rev: bool,
        got: Option<(RangeInclusive<usize>, u64)>,
    },
    Gap {
        span: Span,
        size: usize,
        rev: bool,
        got: Result<usize, GapError>,
    },
    Iter {
        span: Span,
        /// (from the back, range, value id)
        items: Vec<(bool, RangeInclusive<usize>, u64)>,
        complete: bool,
    },
    /// A value reached through the section was not alive.
    Dead {
        msg: String,
    },
}

/// A canary's id, or a `Dead` observation.
fn id_of(c: &Canary, at: (usize, usize), v: u64, obs: &mut Vec<Obs>) -> u64 {
    match c.read() {
        Ok(id) => id,
        Err(msg) => {
            obs.push(Obs {
                at,
                lo: v,
                hi: v,
                moved: false,
                what: What::Dead {
                    msg: format!("read: {msg}"),
                },
            });
            u64::MAX
        }
    }
}

fn run_writer<D: Domain>(
    tree: &Tree<D>,
    shared: &Shared,
    baton: &Baton,
    evs: &[Ev<WOp>],
    count: &Arc<CanaryCount>,
) {
    let mut turns = Turns::new(baton, WRITER);
    let canary = |id| Canary::new(id, count);
    for (k, ev) in evs.iter().enumerate() {
        if turns.enter(ev.round).is_err() {
            return;
        }
        delay(ev.delay);
        let fail = |msg: String| -> ! { panic!("writer event {k} {:?}: {msg}", ev.op) };
        match &ev.op {
            WOp::Store { span, id, ok } => {
                let r = tree.lock().store_range(span.bounds(), canary(*id));
                if r.is_ok() != *ok {
                    fail(format!("store_range returned {r:?}"));
                }
                if *ok {
                    shared.publish();
                }
            }
            WOp::Punch { span, ok } => {
                let r = tree.lock().punch(span.bounds());
                if r.is_ok() != *ok {
                    fail(format!("punch returned {r:?}"));
                }
                if *ok {
                    shared.publish();
                }
            }
            WOp::Insert { span, id, want } => {
                let r = tree.lock().insert_range(span.bounds(), canary(*id));
                let got = r.as_ref().map(|_| ()).map_err(|e| e.kind);
                if got != *want {
                    fail(format!("insert_range returned {got:?}"));
                }
                if want.is_ok() {
                    shared.publish();
                }
            }
            WOp::Erase { i, want } => {
                let w = tree.lock();
                let got = w.erase(*i).map(|(r, c)| (r, c.read()));
                drop(w);
                let ok = match (&got, want) {
                    (None, None) => true,
                    (Some((r, Ok(id))), Some((wr, wid))) => r == wr && id == wid,
                    _ => false,
                };
                if !ok {
                    fail(format!("erase returned {got:?}"));
                }
                if want.is_some() {
                    shared.publish();
                }
            }
            WOp::Stores { what, items } => {
                let w = tree.lock();
                for &(a, b, id) in items {
                    if let Err(e) = w.store_range(a..=b, canary(id)) {
                        drop(w);
                        fail(format!("{what}: store_range({a}..={b}) failed: {e:?}"));
                    }
                    shared.publish();
                }
            }
            WOp::Alloc {
                rev,
                size,
                window,
                id,
                want,
            } => {
                let w = tree.lock();
                let r = if *rev {
                    w.alloc_rrange(*size, canary(*id), window.bounds())
                } else {
                    w.alloc_range(*size, canary(*id), window.bounds())
                };
                drop(w);
                let got = r.map_err(|e| e.kind);
                if got != *want {
                    fail(format!("returned {got:?}"));
                }
                if want.is_ok() {
                    shared.publish();
                }
            }
            WOp::Cyclic {
                window,
                next,
                id,
                want,
                next_after,
            } => {
                let mut n = *next;
                let r = tree
                    .lock()
                    .alloc_cyclic(window.bounds(), &mut n, canary(*id));
                let got = r.map_err(|e| e.kind);
                if got != *want || n != *next_after {
                    fail(format!("returned {got:?}, next {n}"));
                }
                if want.is_ok() {
                    shared.publish();
                }
            }
            WOp::Check { want } => {
                if let Err(e) = tree.validate() {
                    fail(format!("validate: {e}\n{}", tree.dump()));
                }
                let r = tree.read();
                let got: Vec<_> = r
                    .iter()
                    .map(|(k, c)| (k, c.read().unwrap_or(u64::MAX)))
                    .collect();
                drop(r);
                if got != *want {
                    fail(format!("contents {got:?}"));
                }
            }
            WOp::Flush => tree.domain().flush(),
        }
    }
    turns.finish();
}

/// An iteration in progress.
struct ItRun<'g, 't, D: Domain> {
    it: maple::Iter<'g, 't, Box<Canary>, D>,
    span: Span,
    items: Vec<(bool, RangeInclusive<usize>, u64)>,
    lo: u64,
    hi: u64,
    moved: bool,
    at: (usize, usize),
    complete: bool,
}

impl<D: Domain> ItRun<'_, '_, D> {
    fn into_obs(self) -> Obs {
        Obs {
            at: self.at,
            lo: self.lo,
            hi: self.hi,
            moved: self.moved,
            what: What::Iter {
                span: self.span,
                items: self.items,
                complete: self.complete,
            },
        }
    }
}

fn run_reader<D: Domain>(
    tree: &Tree<D>,
    shared: &Shared,
    baton: &Baton,
    me: usize,
    evs: &[Ev<ROp>],
) -> Vec<Obs> {
    let mut turns = Turns::new(baton, me);
    let mut obs = Vec::new();
    let mut k = 0;
    while k < evs.len() {
        let g = tree.read();
        // Every value reached in this section, re-checked when it ends.
        let mut held: Vec<(&Canary, u64, usize)> = Vec::new();
        let mut iter: Option<ItRun<'_, '_, D>> = None;
        while k < evs.len() {
            let ev = &evs[k];
            let at = (me, k);
            k += 1;
            let Ok(writer_on) = turns.enter(ev.round) else {
                return obs;
            };
            delay(ev.delay);
            let extra = writer_on as u64;
            let v0 = shared.now();
            let what = match ev.op {
                ROp::EndSection => break,
                ROp::Load(i) => {
                    let got = g.load(i);
                    let v1 = shared.now();
                    let got = got.map(|c| {
                        let id = id_of(c, at, v1, &mut obs);
                        held.push((c, id, k - 1));
                        id
                    });
                    (What::Load { i, got }, v1)
                }
                ROp::Walk(i) => {
                    let (r, c) = g.walk(i);
                    let v1 = shared.now();
                    let id = c.map(|c| {
                        let id = id_of(c, at, v1, &mut obs);
                        held.push((c, id, k - 1));
                        id
                    });
                    (What::Walk { i, got: (r, id) }, v1)
                }
                ROp::Find { span, rev } => {
                    let got = if rev {
                        g.find_rev(span.bounds())
                    } else {
                        g.find(span.bounds())
                    };
                    let v1 = shared.now();
                    let got = got.map(|(r, c)| {
                        let id = id_of(c, at, v1, &mut obs);
                        held.push((c, id, k - 1));
                        (r, id)
                    });
                    (What::Find { span, rev, got }, v1)
                }
                ROp::Gap { span, size, rev } => {
                    let got = if rev {
                        g.empty_area_rev(span.bounds(), size)
                    } else {
                        g.empty_area(span.bounds(), size)
                    };
                    let v1 = shared.now();
                    (
                        What::Gap {
                            span,
                            size,
                            rev,
                            got,
                        },
                        v1,
                    )
                }
                ROp::IterStart(span) => {
                    if let Some(old) = iter.take() {
                        obs.push(old.into_obs());
                    }
                    iter = Some(ItRun {
                        it: g.range(span.bounds()),
                        span,
                        items: Vec::new(),
                        lo: v0,
                        hi: v0 + extra,
                        moved: false,
                        at,
                        complete: false,
                    });
                    continue;
                }
                ROp::IterSteps { .. } | ROp::IterDrain { .. } => {
                    let (n, pattern) = match ev.op {
                        ROp::IterSteps { n, pattern } => (n as usize, pattern),
                        ROp::IterDrain { pattern } => (usize::MAX, pattern),
                        _ => (0, 0),
                    };
                    let Some(run) = iter.as_mut() else {
                        continue;
                    };
                    let mut s = 0usize;
                    while s < n && !run.complete {
                        let back = pattern >> (s % 16) & 1 == 1;
                        let item = if back {
                            run.it.next_back()
                        } else {
                            run.it.next()
                        };
                        match item {
                            None => run.complete = true,
                            Some((r, c)) => {
                                let id = id_of(c, at, shared.now(), &mut obs);
                                held.push((c, id, k - 1));
                                run.items.push((back, r, id));
                            }
                        }
                        s += 1;
                    }
                    let now = shared.now();
                    run.hi = now + extra;
                    run.moved = now > run.lo;
                    if run.complete {
                        if let Some(done) = iter.take() {
                            obs.push(done.into_obs());
                        }
                    }
                    continue;
                }
            };
            let (what, v1) = what;
            obs.push(Obs {
                at,
                lo: v0,
                hi: v1 + extra,
                moved: v1 > v0,
                what,
            });
        }
        // The section ends: everything reached in it must still be alive.
        if let Some(run) = iter.take() {
            obs.push(run.into_obs());
        }
        let v = shared.now();
        for (c, id, ev) in held.drain(..) {
            if id == u64::MAX {
                continue;
            }
            if let Err(msg) = c.read() {
                obs.push(Obs {
                    at: (me, ev),
                    lo: v,
                    hi: v,
                    moved: false,
                    what: What::Dead {
                        msg: format!(
                            "at the end of the read section: {msg} while the section still held it"
                        ),
                    },
                });
            }
        }
        drop(g);
    }
    turns.finish();
    obs
}

/// Check one observation against the model history; `Err` says why it is impossible.
fn check(o: &Obs, models: &mut Models<'_>, avoid_i2: bool) -> Result<(), String> {
    let hi = o.hi.min(models.h.versions());
    let lo = o.lo.min(hi);
    let any = |models: &mut Models<'_>, f: &dyn Fn(&RangeOracle) -> bool| {
        (lo..=hi).any(|v| f(models.at(v)))
    };
    let ok = match &o.what {
        What::Dead { msg } => return Err(msg.clone()),
        What::Load { i, got } => any(models, &|m| m.get(*i).map(|w| w.1) == *got),
        What::Walk { i, got } => {
            if !got.0.contains(i) {
                return Err(format!(
                    "walk({i}) returned {got:?}, which does not contain {i}"
                ));
            }
            any(models, &|m| m.walk(*i) == *got)
        }
        What::Find { span, rev, got } => any(models, &|m| {
            let want = span.inclusive().and_then(|(a, b)| {
                let o = m.overlapping(a, b);
                if *rev {
                    o.last().cloned()
                } else {
                    o.first().cloned()
                }
            });
            want == *got
        }),
        What::Gap {
            span,
            size,
            rev,
            got,
        } => any(models, &|m| want_gap(m, *span, *size, *rev) == *got),
        What::Iter {
            span,
            items,
            complete,
        } => return check_iter(*span, items, *complete, (lo, hi), models, avoid_i2),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "no version in [{lo}, {hi}] gives this result; the model there:\n{}",
            window_dump(models, lo, hi)
        ))
    }
}

fn window_dump(models: &mut Models<'_>, lo: u64, hi: u64) -> String {
    let mut s = String::new();
    for v in lo..=hi.min(lo + 3) {
        s.push_str(&format!("  v{v}: {:?}\n", models.at(v).ranges()));
    }
    if hi > lo + 3 {
        s.push_str("  ...\n");
    }
    s
}

/// Merge sorted inclusive intervals that touch or overlap.
fn merge(v: impl IntoIterator<Item = (usize, usize)>) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if last.1.checked_add(1).map_or(true, |n| a <= n) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// The intersection of two sorted lists of disjoint inclusive intervals.
fn intersect(x: &[(usize, usize)], y: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < x.len() && j < y.len() {
        let a = x[i].0.max(y[j].0);
        let b = x[i].1.min(y[j].1);
        if a <= b {
            out.push((a, b));
        }
        if x[i].1 < y[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// The first part of `x` that `y` does not cover (both sorted, disjoint, inclusive).
fn first_uncovered(x: &[(usize, usize)], y: &[(usize, usize)]) -> Option<(usize, usize)> {
    'outer: for &(a, b) in x {
        // `cur`: the first index of [a, b] not yet known to be covered.
        let mut cur = a;
        for &(c, d) in y {
            if d < cur {
                continue;
            }
            if c > cur {
                return Some((cur, b.min(c - 1)));
            }
            if d >= b {
                continue 'outer;
            }
            cur = d + 1;
        }
        return Some((cur, b));
    }
    None
}

/// The indices of `[a, b]` covered by `m`, as merged intervals.
fn coverage(m: &RangeOracle, a: usize, b: usize) -> Vec<(usize, usize)> {
    merge(
        m.overlapping(a, b)
            .into_iter()
            .map(|(r, _)| ((*r.start()).max(a), (*r.end()).min(b))),
    )
}

/// Check an iteration. Items may be whole stored ranges or pieces of one clipped where
/// the iteration already was (the span's ends, the end of the last item from the front,
/// the start of the last item from the back — from either end: an item taken from the
/// back may start where the front stopped, and the reverse): a rule that yields "the
/// piece that now holds the next index" passes as well as one that yields whole ranges.
fn check_iter(
    span: Span,
    items: &[(bool, RangeInclusive<usize>, u64)],
    complete: bool,
    (lo, hi): (u64, u64),
    models: &mut Models<'_>,
    avoid_i2: bool,
) -> Result<(), String> {
    let Some((a, b)) = span.inclusive() else {
        return match items.first() {
            None => Ok(()),
            Some(x) => Err(format!("an empty range yielded {x:?}")),
        };
    };
    // Order: strictly increasing from the front, strictly decreasing from the back, and
    // the two ends never meet in one range. Also note where each item may be clipped.
    let mut front_end: Option<usize> = None;
    let mut back_start: Option<usize> = None;
    let mut clip = Vec::with_capacity(items.len());
    for (n, (back, r, _)) in items.iter().enumerate() {
        if *r.end() < a || *r.start() > b || r.start() > r.end() {
            return Err(format!("item {n} {r:?} does not overlap {a}..={b}"));
        }
        clip.push((
            front_end.map_or(a, |e| e.wrapping_add(1)),
            back_start.map_or(b, |s| s.wrapping_sub(1)),
        ));
        if *back {
            if back_start.is_some_and(|s| *r.end() >= s) {
                return Err(format!(
                    "item {n} {r:?} (from the back) is not below the previous back item"
                ));
            }
            back_start = Some(*r.start());
        } else {
            if front_end.is_some_and(|e| *r.start() <= e) {
                return Err(format!(
                    "item {n} {r:?} (from the front) is not above the previous front item"
                ));
            }
            front_end = Some(*r.end());
        }
        if let (Some(e), Some(s)) = (front_end, back_start) {
            if e >= s {
                return Err(format!(
                    "item {n} {r:?}: the front ({e}) and the back ({s}) crossed"
                ));
            }
        }
    }
    // Every item was stored, with that value, at some version while the iteration ran
    // (whole, or clipped as above). With `complete`: every index covered at every version
    // is yielded (no skipped live index), and in any case every range stored unchanged
    // throughout is yielded whole.
    let mut seen = vec![false; items.len()];
    let mut always: Option<Vec<(usize, usize)>> = None;
    let mut unchanged: Option<BTreeSet<(usize, usize, u64)>> = None;
    for v in lo..=hi {
        let m = models.at(v);
        for (n, (_, r, id)) in items.iter().enumerate() {
            if seen[n] {
                continue;
            }
            if let Some((whole, wid)) = m.get(*r.start()) {
                let (s, e) = (*whole.start(), *whole.end());
                let (cs, ce) = clip[n];
                seen[n] = wid == *id
                    && *r.end() <= e
                    && (*r.start() == s || *r.start() == cs.max(a) || *r.start() == a)
                    && (*r.end() == e || *r.end() == ce.min(b) || *r.end() == b);
            }
        }
        if complete {
            let cov = coverage(m, a, b);
            always = Some(match always {
                None => cov,
                Some(x) => intersect(&x, &cov),
            });
            let now: BTreeSet<_> = m
                .overlapping(a, b)
                .into_iter()
                .map(|(r, id)| (*r.start(), *r.end(), id))
                .collect();
            unchanged = Some(match unchanged {
                None => now,
                Some(x) => x.intersection(&now).copied().collect(),
            });
        }
    }
    if let Some(n) = seen.iter().position(|s| !s) {
        return Err(format!(
            "item {n} {:?} was not stored (nor a piece of a stored range clipped where the \
             iteration already was) at any version in [{lo}, {hi}]; the model there:\n{}",
            items[n],
            window_dump(models, lo, hi)
        ));
    }
    let got: HashSet<(usize, usize, u64)> = items
        .iter()
        .map(|(_, r, id)| (*r.start(), *r.end(), *id))
        .collect();
    for r in unchanged.unwrap_or_default() {
        if !got.contains(&r) {
            return Err(format!(
                "the iteration missed {:?} = {}, stored unchanged through versions [{lo}, {hi}]",
                r.0..=r.1,
                r.2
            ));
        }
    }
    if !avoid_i2 {
        let yielded = merge({
            let mut v: Vec<_> = items
                .iter()
                .map(|(_, r, _)| (*r.start(), *r.end()))
                .collect();
            v.sort_unstable();
            v
        });
        if let Some((x, y)) = first_uncovered(&always.unwrap_or_default(), &yielded) {
            return Err(format!(
                "the iteration skipped {x}..={y}, covered at every version in [{lo}, {hi}]; \
                 the model there:\n{}",
                window_dump(models, lo, hi)
            ));
        }
    }
    Ok(())
}

/// Run the `maple_rcu` target on `data`. Panics on any divergence, impossible read,
/// destroyed value, leak or hang.
///
/// The first byte picks the tree (`% 4`: 0 plain/`Seize`, 1 alloc/`Seize`, 2 plain/`Epoch`,
/// 3 alloc/`Epoch`) and the number of readers (bit 2: two); the rest is the event list (see
/// the module docs).
pub fn run_maple_rcu(data: &[u8]) {
    run_maple_rcu_avoiding(data, &[]);
}

/// [`run_maple_rcu`], steering clear of the open bugs `skip` as well as those named in
/// `MAPLE_FUZZ_AVOID` (ids from `regressions/README.md`): the replay test's seeded inputs
/// use it so that a known, pending bug does not fail CI.
pub fn run_maple_rcu_avoiding(data: &[u8], skip: &[&str]) {
    let prog = decode(data, &|id| avoid(id) || skip.contains(&id));
    if std::env::var_os("MAPLE_FUZZ_TRACE").is_some() {
        eprintln!("{}", prog.listing(None));
    }
    crate::count_ops((prog.order.len() + prog.hist.deltas.len()) as u64);
    match prog.kind {
        0 | 1 => run::<Seize>(prog),
        _ => run::<Epoch>(prog),
    }
}

fn run<D: Domain>(prog: Program) {
    let prog = Arc::new(prog);
    let count = Arc::new(CanaryCount::default());
    let tree: Arc<Tree<D>> = Arc::new(if prog.alloc() {
        MapleTree::alloc_with_domain(D::default())
    } else {
        MapleTree::with_domain(D::default())
    });
    let shared = Arc::new(Shared::default());
    let baton = Arc::new(Baton::new(prog.rounds.clone()));
    let w = {
        let (tree, shared, prog, count) =
            (tree.clone(), shared.clone(), prog.clone(), count.clone());
        spawn("maple_rcu writer", baton.clone(), move |b| {
            run_writer(&tree, &shared, b, &prog.writer, &count)
        })
    };
    let readers: Vec<_> = (1..=prog.readers)
        .map(|me| {
            let (tree, shared, prog) = (tree.clone(), shared.clone(), prog.clone());
            spawn("maple_rcu reader", baton.clone(), move |b| {
                run_reader(&tree, &shared, b, me, &prog.reader[me - 1])
            })
        })
        .collect();
    if let Err(msg) = baton.wait_all(hang_limit()) {
        panic!("{msg}\n--- events:\n{}", prog.listing(None));
    }
    let mut failures = Vec::new();
    if let Err(msg) = w
        .join()
        .unwrap_or_else(|_| Err("writer thread died".into()))
    {
        failures.push(msg);
    }
    let mut all_obs = Vec::new();
    for h in readers {
        match h
            .join()
            .unwrap_or_else(|_| Err("reader thread died".into()))
        {
            Ok(obs) => all_obs.extend(obs),
            Err(msg) => failures.push(msg),
        }
    }
    if !failures.is_empty() {
        panic!(
            "{}\n--- events:\n{}",
            failures.join("\n"),
            prog.listing(None)
        );
    }
    // Check the observations in order of their first version, so the model mostly steps
    // forward.
    all_obs.sort_by_key(|o| o.lo);
    let mut models = Models::new(&prog.hist);
    for o in &all_obs {
        count_observation(o.moved);
        if let Err(msg) = check(o, &mut models, prog.avoid_i2) {
            panic!(
                "{msg}\n--- reader {} event {}, version window [{}, {}]: {:?}\n--- events (>> marks it):\n{}",
                o.at.0,
                o.at.1,
                o.lo,
                o.hi,
                o.what,
                prog.listing(Some(o.at))
            );
        }
    }
    drop(models);
    // The final state, the grace period, and the drop: each bounded, so a hang fails.
    let p = prog.clone();
    bounded("maple_rcu final checks", hang_limit(), move || {
        final_checks(tree, &p, &count)
    });
}

fn final_checks<D: Domain>(tree: Arc<Tree<D>>, prog: &Program, count: &Arc<CanaryCount>) {
    let Ok(tree) = Arc::try_unwrap(tree) else {
        panic!("the tree is still shared after every thread ended");
    };
    if let Err(e) = tree.validate() {
        panic!("final validate: {e}\n{}", tree.dump());
    }
    let want = prog.final_model.ranges();
    let r = tree.read();
    let got: Vec<_> = r
        .iter()
        .map(|(k, c)| (k, c.read().unwrap_or(u64::MAX)))
        .collect();
    drop(r);
    assert_eq!(got, want, "final contents");
    // After a grace period every value no longer in the tree has been destroyed.
    tree.domain().synchronize();
    let ids: HashSet<u64> = want.iter().map(|(_, id)| *id).collect();
    // Relaxed: every drop happened on a thread that has been joined or inside
    // `synchronize`, both of which synchronise with this thread.
    let live = count.live.load(Ordering::Relaxed);
    assert_eq!(
        live,
        ids.len(),
        "values alive after synchronize (want exactly the {} still stored)",
        ids.len()
    );
    drop(tree);
    assert_eq!(
        count.live.load(Ordering::Relaxed),
        0,
        "values leaked by drop"
    );
    assert_eq!(
        count.bad_drops.load(Ordering::Relaxed),
        0,
        "values dropped twice"
    );
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.listing(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_helpers() {
        assert_eq!(merge([(0, 3), (4, 5), (7, 9), (8, 12)]), [(0, 5), (7, 12)]);
        assert_eq!(merge([(0, usize::MAX), (5, 6)]), [(0, usize::MAX)]);
        assert_eq!(
            intersect(&[(0, 10), (20, 30)], &[(5, 25)]),
            [(5, 10), (20, 25)]
        );
        assert_eq!(
            first_uncovered(&[(0, 10)], &[(0, 3), (5, 10)]),
            Some((4, 4))
        );
        assert_eq!(first_uncovered(&[(0, 10)], &[(0, 10)]), None);
        assert_eq!(first_uncovered(&[(0, 10)], &[(2, 20)]), Some((0, 1)));
        assert_eq!(first_uncovered(&[(0, 10)], &[(0, 8)]), Some((9, 10)));
        assert_eq!(
            first_uncovered(&[(5, usize::MAX)], &[(0, usize::MAX)]),
            None
        );
        assert_eq!(
            first_uncovered(&[(5, 9), (20, 30)], &[(0, 9), (25, 40)]),
            Some((20, 24))
        );
    }

    /// Random inputs run clean and produce observations that get checked.
    #[test]
    fn seeded_inputs_run_clean() {
        let mut rng = SplitMix64(11);
        for _ in 0..50 {
            run_maple_rcu_avoiding(&rng.bytes(600), crate::OPEN_BUGS);
        }
        assert!(
            crate::concurrent::RACE_STATS
                .observations
                .load(Ordering::Relaxed)
                > 0
        );
    }

    #[test]
    fn history_replays_versions() {
        let mut data = vec![1u8];
        let mut rng = SplitMix64(5);
        data.extend(rng.bytes(2000));
        let p = decode(&data, &|_| false);
        let mut m = RangeOracle::new();
        let mut models = Models::new(&p.hist);
        for (v, d) in p.hist.deltas.iter().enumerate() {
            assert_eq!(models.at(v as u64).ranges(), m.ranges());
            d.apply(&mut m);
        }
        assert_eq!(
            models.at(p.hist.versions()).ranges(),
            p.final_model.ranges()
        );
        assert_eq!(models.at(0).ranges(), Vec::new());
    }
}
