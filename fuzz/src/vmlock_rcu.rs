//! `vmlock_rcu`: a writer changing address spaces (`mmap`, `munmap`, `mprotect`,
//! `mremap`, `fork`) while one or two readers fault, speculate, lock VMAs under RCU and
//! list `vmas()`, every reader result checked against the page-granular model
//! ([`PageModel`]) at the versions the read overlapped.
//!
//! Rounds, races and versions work as in [`crate::concurrent`]; the writer's expected
//! results and the listing of every address space at every version are computed at decode
//! time. Two address-space slots exist; `fork` replaces the other slot with the child (a
//! reader that still holds the old one keeps reading it). Each system call is one version.
//!
//! Checks, for a read whose version window is `[lo, hi]`:
//!
//! - `lookup`, a `Found`/`Unmapped` speculation, a successful `lock_vma_under_rcu`, the
//!   result of `fault`, `find_vma` with `vma_lookup` under one `mmap_read_lock`, and a whole
//!   `vmas()` listing equal the model at some version in the window;
//! - in a round where the writer does not run (nothing can interfere) speculation never
//!   says `Retry`, `lock_vma_under_rcu` succeeds wherever something is mapped, and `fault`
//!   never falls back to the `mmap_lock`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use vmlock::{
    Access, Backing, Errno, FaultPath, FileId, MapFlags, MapRequest, Mm, MmConfig, Prot,
    RemapFlags, Speculation, VmaInfo,
};

use crate::concurrent::{
    bounded, count_observation, delay, hang_limit, spawn, Baton, Rounds, Shared, Turns, WRITER,
};
use crate::input::Input;
use crate::vmlock_ops::PageModel;

const PAGE: usize = 4096;
/// Most events decoded from one input.
const MAX_EVENTS: usize = 400;
/// Address-space slots.
const SLOTS: usize = 2;

/// A writer operation with the result the model expects.
#[derive(Clone, Debug)]
enum WOp {
    Mmap {
        slot: usize,
        req: MapRequest,
        want: Result<usize, Errno>,
    },
    Munmap {
        slot: usize,
        addr: usize,
        len: usize,
        want: Result<(), Errno>,
    },
    Mprotect {
        slot: usize,
        addr: usize,
        len: usize,
        prot: Prot,
        want: Result<(), Errno>,
    },
    Mremap {
        slot: usize,
        old_addr: usize,
        old_len: usize,
        new_len: usize,
        flags: RemapFlags,
        new_addr: Option<usize>,
        want: Result<usize, Errno>,
    },
    /// Fork `from` into slot `to`, as address space `space`.
    Fork { from: usize, to: usize, space: u64 },
    /// `validate()` and the whole listing.
    Check { slot: usize, want: Vec<VmaInfo> },
}

/// A reader operation on a slot.
#[derive(Clone, Copy, Debug)]
enum ROp {
    Lookup(usize),
    Speculate(usize),
    LockVma(usize),
    Fault(usize, Access),
    Locked(usize),
    Vmas,
}

#[derive(Clone, Debug)]
struct Ev<T> {
    round: usize,
    delay: u32,
    op: T,
}

type Listing = Arc<Vec<VmaInfo>>;

/// The listing of every address space over time: `(first version, listing)` per space.
#[derive(Debug, Default)]
struct History {
    spaces: HashMap<u64, Vec<(u64, Listing)>>,
    versions: u64,
}

impl History {
    fn at(&self, space: u64, v: u64) -> Option<&Listing> {
        let h = self.spaces.get(&space)?;
        let i = h.partition_point(|(from, _)| *from <= v);
        i.checked_sub(1).map(|i| &h[i].1)
    }

    fn record(&mut self, space: u64, vmas: Vec<VmaInfo>) {
        let v = self.versions;
        let h = self.spaces.entry(space).or_default();
        if h.last().map(|(_, l)| l.as_slice()) != Some(vmas.as_slice()) {
            h.push((v, Arc::new(vmas)));
        }
    }
}

fn vma_at(l: &[VmaInfo], addr: usize) -> Option<VmaInfo> {
    l.iter().find(|v| v.start <= addr && addr < v.end).copied()
}

fn vma_after(l: &[VmaInfo], addr: usize) -> Option<VmaInfo> {
    l.iter().find(|v| v.end > addr).copied()
}

struct Program {
    cfg: MmConfig,
    readers: usize,
    rounds: Rounds,
    writer: Vec<Ev<WOp>>,
    reader: [Vec<Ev<(usize, ROp)>>; 2],
    order: Vec<(usize, usize)>,
    hist: History,
}

impl Program {
    fn listing(&self, mark: Option<(usize, usize)>) -> String {
        let mut s = String::new();
        for &(t, k) in &self.order {
            s.push_str(if mark == Some((t, k)) { ">>" } else { "  " });
            if t == WRITER {
                let e = &self.writer[k];
                s.push_str(&format!("r{:<4} W  {:x?}\n", e.round, e.op));
            } else {
                let e = &self.reader[t - 1][k];
                s.push_str(&format!("r{:<4} R{t} [{k}] {:x?}\n", e.round, e.op));
            }
        }
        s
    }
}

struct Decoder<'a, 'b> {
    inp: &'b mut Input<'a>,
    cfg: MmConfig,
    /// The model of each slot's address space, and its space id.
    slots: [(u64, PageModel); SLOTS],
    next_space: u64,
    hist: History,
}

impl Decoder<'_, '_> {
    /// An address steered towards the layout's edges and the VMA boundaries of `slot`.
    fn addr(&mut self, slot: usize) -> usize {
        let cfg = self.cfg;
        let sel = self.inp.byte();
        let k = (self.inp.byte() % 16) as usize * PAGE;
        let base = match sel % 8 {
            0 => cfg.min_addr.wrapping_add(k),
            1 => cfg.mmap_base.wrapping_sub(k),
            2..=5 => {
                let v = self.slots[slot].1.vmas();
                if v.is_empty() {
                    cfg.mmap_base.wrapping_sub(k)
                } else {
                    let r = v[self.inp.byte() as usize % v.len()];
                    let edge = if sel & 0x10 == 0 { r.start } else { r.end };
                    if sel & 0x20 == 0 {
                        edge.wrapping_add(k)
                    } else {
                        edge.wrapping_sub(k)
                    }
                }
            }
            6 => (self.inp.u16() as usize % (cfg.task_size / PAGE + 2)) * PAGE,
            _ => self.inp.index() & !(PAGE - 1),
        };
        if sel & 0xe0 == 0xe0 {
            base.wrapping_add(1 + (sel as usize & 0x7))
        } else {
            base
        }
    }

    /// A reader's address: inside or just outside a VMA mostly.
    fn read_addr(&mut self, slot: usize) -> usize {
        let a = self.addr(slot);
        match self.inp.byte() % 4 {
            0 => a.wrapping_add(PAGE / 2),
            1 => a.wrapping_sub(1),
            _ => a,
        }
    }

    fn len(&mut self) -> usize {
        let sel = self.inp.byte();
        let pages = 1 + (sel >> 4) as usize;
        match sel % 16 {
            0 => 0,
            1..=11 => pages * PAGE,
            12 => pages * PAGE - 1 - (self.inp.byte() as usize % 100),
            13 => (1 + self.inp.byte() as usize) * PAGE,
            14 => usize::MAX - (sel >> 4) as usize * PAGE,
            _ => (self.inp.u16() as usize) * PAGE,
        }
    }

    fn prot(&mut self) -> Prot {
        Prot::from_bits_truncate(self.inp.byte() as u32 & 7)
    }

    fn writer_op(&mut self) -> WOp {
        let op = self.inp.byte();
        let slot = (op >> 4) as usize % SLOTS;
        let wop = match op % 16 {
            0..=4 => {
                let fsel = self.inp.byte();
                let mut flags = if fsel & 1 == 0 {
                    MapFlags::PRIVATE
                } else {
                    MapFlags::SHARED
                };
                match (fsel >> 1) % 8 {
                    0 | 1 => flags |= MapFlags::FIXED,
                    2 => flags |= MapFlags::FIXED_NOREPLACE,
                    3 => flags |= MapFlags::NORESERVE,
                    _ => {}
                }
                let addr = match (fsel >> 4) % 4 {
                    0 if !flags.intersects(MapFlags::FIXED | MapFlags::FIXED_NOREPLACE) => None,
                    _ => Some(self.addr(slot)),
                };
                let len = self.len();
                let prot = self.prot();
                let backing = if fsel & 0x40 == 0 {
                    Backing::Anonymous
                } else {
                    let b = self.inp.byte();
                    Backing::File {
                        file: FileId((b % 3) as u64),
                        pgoff: (b >> 2) as u64,
                    }
                };
                let req = MapRequest {
                    addr,
                    len,
                    prot,
                    flags,
                    backing,
                };
                let want = self.slots[slot].1.mmap(&req);
                WOp::Mmap { slot, req, want }
            }
            5..=7 => {
                let addr = self.addr(slot);
                let len = self.len();
                let want = self.slots[slot].1.munmap(addr, len);
                WOp::Munmap {
                    slot,
                    addr,
                    len,
                    want,
                }
            }
            8..=10 => {
                let addr = self.addr(slot);
                let len = self.len();
                let prot = self.prot();
                let want = self.slots[slot].1.mprotect(addr, len, prot);
                WOp::Mprotect {
                    slot,
                    addr,
                    len,
                    prot,
                    want,
                }
            }
            11..=13 => {
                let old_addr = self.addr(slot);
                let old_len = self.len();
                let new_len = self.len();
                let f = self.inp.byte();
                let flags = RemapFlags::from_bits_retain((f % 4) as u32);
                let new_addr = (f & 0x10 != 0).then(|| self.addr(slot));
                let want = self.slots[slot]
                    .1
                    .mremap(old_addr, old_len, new_len, flags, new_addr);
                WOp::Mremap {
                    slot,
                    old_addr,
                    old_len,
                    new_len,
                    flags,
                    new_addr,
                    want,
                }
            }
            14 => {
                let to = (slot + 1 + (op >> 5) as usize % SLOTS) % SLOTS;
                self.next_space += 1;
                let space = self.next_space;
                self.slots[to] = (space, self.slots[slot].1.clone());
                WOp::Fork {
                    from: slot,
                    to,
                    space,
                }
            }
            _ => {
                return WOp::Check {
                    slot,
                    want: self.slots[slot].1.vmas(),
                }
            }
        };
        // One system call, one version.
        self.hist.versions += 1;
        let (to, space) = match &wop {
            WOp::Fork { to, space, .. } => (*to, *space),
            _ => (slot, self.slots[slot].0),
        };
        let vmas = self.slots[to].1.vmas();
        self.hist.record(space, vmas);
        wop
    }

    fn reader_op(&mut self) -> (usize, ROp) {
        let sel = self.inp.byte();
        let slot = (sel >> 4) as usize % SLOTS;
        let op = match sel % 8 {
            0 | 1 => ROp::Lookup(self.read_addr(slot)),
            2 => ROp::Speculate(self.read_addr(slot)),
            3 => ROp::LockVma(self.read_addr(slot)),
            4 | 5 => {
                let access =
                    [Access::Read, Access::Write, Access::Exec][self.inp.byte() as usize % 3];
                ROp::Fault(self.read_addr(slot), access)
            }
            6 => ROp::Locked(self.read_addr(slot)),
            _ => ROp::Vmas,
        };
        (slot, op)
    }
}

/// A small address space where placement runs out and every boundary is close.
fn tiny_config() -> MmConfig {
    MmConfig {
        min_addr: 16 * PAGE,
        mmap_base: 256 * PAGE,
        task_size: 320 * PAGE,
    }
}

fn decode(data: &[u8]) -> Program {
    let mut inp = Input::new(data);
    let c = inp.byte();
    let cfg = if c & 1 == 1 {
        tiny_config()
    } else {
        MmConfig::default()
    };
    let readers = 1 + (c >> 1) as usize % 2;
    let mut d = Decoder {
        inp: &mut inp,
        cfg,
        slots: [(0, PageModel::new(cfg)), (1, PageModel::new(cfg))],
        next_space: 1,
        hist: History::default(),
    };
    d.hist.record(0, Vec::new());
    d.hist.record(1, Vec::new());
    let mut rounds = Rounds::default();
    let mut writer = Vec::new();
    let mut reader: [Vec<Ev<(usize, ROp)>>; 2] = [Vec::new(), Vec::new()];
    let mut order = Vec::new();
    while !d.inp.is_empty() && order.len() < MAX_EVENTS {
        let sel = d.inp.byte();
        let t = match sel % 8 {
            0..=3 => WRITER,
            4 | 5 => 1,
            _ => readers,
        };
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
            let op = d.reader_op();
            order.push((t, reader[t - 1].len()));
            reader[t - 1].push(Ev { round, delay, op });
        }
    }
    Program {
        cfg,
        readers,
        rounds,
        writer,
        reader,
        order,
        hist: d.hist,
    }
}

/// The address-space slots the threads share: (space id, address space).
type Slots = [Mutex<(u64, Arc<Mm>)>; SLOTS];

fn slot(slots: &Slots, i: usize) -> (u64, Arc<Mm>) {
    let g = slots[i].lock().unwrap_or_else(|e| e.into_inner());
    (g.0, g.1.clone())
}

fn run_writer(slots: &Slots, shared: &Shared, baton: &Baton, evs: &[Ev<WOp>]) {
    let mut turns = Turns::new(baton, WRITER);
    for (k, ev) in evs.iter().enumerate() {
        if turns.enter(ev.round).is_err() {
            return;
        }
        delay(ev.delay);
        let fail = |msg: String| -> ! { panic!("writer event {k} {:x?}: {msg}", ev.op) };
        let check = |got: String, want: String| {
            if got != want {
                fail(format!("Mm gave {got}, the model wants {want}"));
            }
        };
        match &ev.op {
            WOp::Mmap { slot: s, req, want } => {
                check(
                    format!("{:x?}", slot(slots, *s).1.mmap(req)),
                    format!("{want:x?}"),
                );
            }
            WOp::Munmap {
                slot: s,
                addr,
                len,
                want,
            } => check(
                format!("{:?}", slot(slots, *s).1.munmap(*addr, *len)),
                format!("{want:?}"),
            ),
            WOp::Mprotect {
                slot: s,
                addr,
                len,
                prot,
                want,
            } => check(
                format!("{:?}", slot(slots, *s).1.mprotect(*addr, *len, *prot)),
                format!("{want:?}"),
            ),
            WOp::Mremap {
                slot: s,
                old_addr,
                old_len,
                new_len,
                flags,
                new_addr,
                want,
            } => check(
                format!(
                    "{:x?}",
                    slot(slots, *s)
                        .1
                        .mremap(*old_addr, *old_len, *new_len, *flags, *new_addr)
                ),
                format!("{want:x?}"),
            ),
            WOp::Fork { from, to, space } => {
                let child = Arc::new(slot(slots, *from).1.fork());
                let old = std::mem::replace(
                    &mut *slots[*to].lock().unwrap_or_else(|e| e.into_inner()),
                    (*space, child),
                );
                // The replaced space may still be read; it drops with its last reader.
                drop(old);
            }
            WOp::Check { slot: s, want } => {
                let mm = slot(slots, *s).1;
                if let Err(e) = mm.validate() {
                    fail(format!("validate: {e}"));
                }
                check(format!("{:x?}", mm.vmas()), format!("{want:x?}"));
            }
        }
        if !matches!(ev.op, WOp::Check { .. }) {
            shared.publish();
        }
    }
    turns.finish();
}

#[derive(Debug)]
enum What {
    Lookup(usize, Option<VmaInfo>),
    Speculate(usize, Speculation),
    LockVma(usize, Option<VmaInfo>),
    Fault(usize, Access, Result<FaultPath, Errno>),
    Locked {
        addr: usize,
        find: Option<VmaInfo>,
        lookup: Option<VmaInfo>,
    },
    Vmas(Vec<VmaInfo>),
}

#[derive(Debug)]
struct Obs {
    at: (usize, usize),
    space: u64,
    lo: u64,
    hi: u64,
    /// The writer did not run in this round.
    quiet: bool,
    /// The version count moved while the read ran: it really overlapped a writer change.
    moved: bool,
    what: What,
}

fn run_reader(
    slots: &Slots,
    shared: &Shared,
    baton: &Baton,
    me: usize,
    evs: &[Ev<(usize, ROp)>],
) -> Vec<Obs> {
    let mut turns = Turns::new(baton, me);
    let mut obs = Vec::new();
    for (k, ev) in evs.iter().enumerate() {
        let Ok(writer_on) = turns.enter(ev.round) else {
            return obs;
        };
        delay(ev.delay);
        let v0 = shared.now();
        let (space, mm) = slot(slots, ev.op.0);
        let what = match ev.op.1 {
            ROp::Lookup(a) => What::Lookup(a, mm.lookup(a)),
            ROp::Speculate(a) => What::Speculate(a, mm.lookup_speculative(a)),
            ROp::LockVma(a) => What::LockVma(a, mm.lock_vma_under_rcu(a).map(|g| g.info())),
            ROp::Fault(a, access) => What::Fault(a, access, mm.fault(a, access)),
            ROp::Locked(addr) => {
                let g = mm.mmap_read_lock();
                let (find, lookup) = (g.find_vma(addr), g.vma_lookup(addr));
                drop(g);
                What::Locked { addr, find, lookup }
            }
            ROp::Vmas => What::Vmas(mm.vmas()),
        };
        let v1 = shared.now();
        obs.push(Obs {
            at: (me, k),
            space,
            lo: v0,
            hi: v1 + writer_on as u64,
            quiet: !writer_on,
            moved: v1 > v0,
            what,
        });
    }
    turns.finish();
    obs
}

fn check(o: &Obs, h: &History) -> Result<(), String> {
    let hi = o.hi.min(h.versions);
    let lo = o.lo.min(hi);
    let listings: Vec<&Listing> = (lo..=hi).filter_map(|v| h.at(o.space, v)).collect();
    let any = |f: &dyn Fn(&[VmaInfo]) -> bool| listings.iter().any(|l| f(l));
    let ok = match &o.what {
        What::Lookup(a, got) => any(&|l| vma_at(l, *a) == *got),
        What::Speculate(a, got) => match got {
            Speculation::Found(v) => any(&|l| vma_at(l, *a) == Some(*v)),
            Speculation::Unmapped => any(&|l| vma_at(l, *a).is_none()),
            Speculation::Retry if o.quiet => {
                return Err("speculation said Retry with no writer running".into())
            }
            Speculation::Retry => true,
        },
        What::LockVma(a, got) => match got {
            Some(v) => any(&|l| vma_at(l, *a) == Some(*v)),
            None if o.quiet && any(&|l| vma_at(l, *a).is_some()) => {
                return Err(
                    "lock_vma_under_rcu gave up on a mapped address with no writer running".into(),
                )
            }
            None => true,
        },
        What::Fault(a, access, got) => {
            if o.quiet && *got == Ok(FaultPath::MmapLock) {
                return Err("fault fell back to the mmap_lock with no writer running".into());
            }
            any(&|l| {
                let want = match vma_at(l, *a) {
                    None => Err(Errno::EFAULT),
                    Some(v) if !crate::vmlock_ops::x86_allows(*access, v.prot) => {
                        Err(Errno::EACCES)
                    }
                    Some(_) => Ok(()),
                };
                got.map(|_| ()) == want
            })
        }
        What::Locked { addr, find, lookup } => {
            any(&|l| vma_after(l, *addr) == *find && vma_at(l, *addr) == *lookup)
        }
        What::Vmas(got) => any(&|l| l == got),
    };
    if ok {
        Ok(())
    } else {
        let mut s = String::new();
        for v in lo..=hi.min(lo + 2) {
            s.push_str(&format!("  v{v}: {:x?}\n", h.at(o.space, v)));
        }
        Err(format!(
            "no version in [{lo}, {hi}] of space {} gives this result; the model there:\n{s}",
            o.space
        ))
    }
}

/// Run the `vmlock_rcu` target on `data`. Panics on any impossible read, divergence or
/// hang.
///
/// The first byte picks the address-space shape (odd: a tiny 320-page space, even: the
/// default 47-bit layout) and the number of readers (bit 1: two); the rest is the event
/// list (see the module docs).
pub fn run_vmlock_rcu(data: &[u8]) {
    let prog = Arc::new(decode(data));
    if std::env::var_os("MAPLE_FUZZ_TRACE").is_some() {
        eprintln!("{}", prog.listing(None));
    }
    crate::count_ops(prog.order.len() as u64);
    let slots: Arc<Slots> = Arc::new([
        Mutex::new((0, Arc::new(Mm::new(prog.cfg)))),
        Mutex::new((1, Arc::new(Mm::new(prog.cfg)))),
    ]);
    let shared = Arc::new(Shared::default());
    let baton = Arc::new(Baton::new(prog.rounds.clone()));
    let w = {
        let (slots, shared, prog) = (slots.clone(), shared.clone(), prog.clone());
        spawn("vmlock_rcu writer", baton.clone(), move |b| {
            run_writer(&slots, &shared, b, &prog.writer)
        })
    };
    let readers: Vec<_> = (1..=prog.readers)
        .map(|me| {
            let (slots, shared, prog) = (slots.clone(), shared.clone(), prog.clone());
            spawn("vmlock_rcu reader", baton.clone(), move |b| {
                run_reader(&slots, &shared, b, me, &prog.reader[me - 1])
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
    let mut all = Vec::new();
    for h in readers {
        match h
            .join()
            .unwrap_or_else(|_| Err("reader thread died".into()))
        {
            Ok(obs) => all.extend(obs),
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
    for o in &all {
        count_observation(o.moved);
        if let Err(msg) = check(o, &prog.hist) {
            panic!(
                "{msg}\n--- reader {} event {}, version window [{}, {}]: {:x?}\n--- events (>> marks it):\n{}",
                o.at.0,
                o.at.1,
                o.lo,
                o.hi,
                o.what,
                prog.listing(Some(o.at))
            );
        }
    }
    // Dropping the address spaces (and the children of forks) must not hang.
    bounded("vmlock_rcu drop", hang_limit(), move || {
        let Ok(slots) = Arc::try_unwrap(slots) else {
            panic!("address spaces still shared after every thread ended");
        };
        for s in slots {
            let (_, mm) = s.into_inner().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = mm.validate() {
                panic!("final validate: {e}");
            }
            drop(mm);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::SplitMix64;

    #[test]
    fn seeded_inputs_run_clean() {
        let mut rng = SplitMix64(3);
        for _ in 0..40 {
            run_vmlock_rcu(&rng.bytes(500));
        }
    }

    #[test]
    fn history_lookup() {
        let mut h = History::default();
        h.record(0, Vec::new());
        h.versions = 3;
        let v = VmaInfo {
            start: PAGE,
            end: 2 * PAGE,
            prot: Prot::READ,
            shared: false,
            backing: Backing::Anonymous,
        };
        h.record(0, vec![v]);
        assert_eq!(h.at(0, 2).map(|l| l.len()), Some(0));
        assert_eq!(h.at(0, 3).map(|l| l.len()), Some(1));
        assert_eq!(h.at(0, 9).map(|l| l.len()), Some(1));
        assert!(h.at(7, 0).is_none());
    }
}
