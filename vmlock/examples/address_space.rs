//! A small address space on `vmlock`, faulting from several threads while a writer keeps
//! changing part of it: what a VMM or a user-space kernel does on every guest page fault.
//!
//! ```text
//! cargo run -p maple-vmlock --example address_space
//! ```
//!
//! Each fault takes only the read lock of the VMA it lands in (`Mm::fault`), so faults in
//! the program's text, data and heap never wait for the writer, which holds the
//! `mmap_lock` for write while it `mprotect`s and re-maps pages of another region. A fault
//! falls back to the `mmap_lock` only when it lands on a VMA the writer is changing.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::thread;

use vmlock::{
    Access, Backing, Errno, FaultPath, FileId, MapFlags, MapRequest, Mm, MmConfig, Prot, VmaInfo,
    PAGE_SIZE,
};

const FAULTERS: usize = 3;
const FAULTS_PER_THREAD: usize = 20_000;
/// The writer makes at least this many changes, and goes on until every faulter is done.
const MIN_CHANGES: usize = 500;
/// Pages of the region the writer changes.
const CHURN_PAGES: usize = 64;

/// Where a fault is aimed, and with which access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Execute in the program's text (file-backed, read-exec).
    Text,
    /// Write to its data (file-backed, private, read-write).
    Data,
    /// Write to the heap (anonymous, read-write).
    Heap,
    /// Read in the region the writer changes (always readable).
    ChurnRead,
    /// Write in the region the writer changes (read-only while the writer made it so).
    ChurnWrite,
    /// Read in the unmapped page between heap and churn region.
    Hole,
}

impl Target {
    /// Every target, in the order of the report.
    pub const ALL: [Target; 6] = [
        Target::Text,
        Target::Data,
        Target::Heap,
        Target::ChurnRead,
        Target::ChurnWrite,
        Target::Hole,
    ];
}

/// The mappings of the address space.
#[derive(Clone, Copy, Debug)]
struct Layout {
    text: usize,
    data: usize,
    heap: usize,
    hole: usize,
    churn: usize,
}

impl Layout {
    /// A fault address and access for `t`, somewhere in its region (`r` is random).
    fn aim(&self, t: Target, r: usize) -> (usize, Access) {
        let page = |base: usize, pages: usize| base + (r % (pages * PAGE_SIZE));
        match t {
            Target::Text => (page(self.text, 32), Access::Exec),
            Target::Data => (page(self.data, 8), Access::Write),
            Target::Heap => (page(self.heap, 256), Access::Write),
            Target::ChurnRead => (page(self.churn, CHURN_PAGES), Access::Read),
            Target::ChurnWrite => (page(self.churn, CHURN_PAGES), Access::Write),
            Target::Hole => (page(self.hole, 1), Access::Read),
        }
    }
}

/// SplitMix64: a small deterministic random sequence per thread.
fn next(state: &mut u64) -> usize {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as usize
}

/// Map a program's text and data, a heap, one unmapped guard page and the region the
/// writer will change, top-down as `mmap` places them.
fn build(mm: &Mm) -> Layout {
    let map = |pages: usize, prot, flags, backing| {
        let req = MapRequest {
            addr: None,
            len: pages * PAGE_SIZE,
            prot,
            flags,
            backing,
        };
        mm.mmap(&req).expect("room for a small mapping")
    };
    let file = |pgoff| Backing::File {
        file: FileId(1),
        pgoff,
    };
    let (rw, private) = (Prot::READ | Prot::WRITE, MapFlags::PRIVATE);
    let text = map(32, Prot::READ | Prot::EXEC, private, file(0));
    let data = map(8, rw, private, file(32));
    let heap = map(256, rw, private, Backing::Anonymous);
    // The churn region goes one page below the heap, leaving that page unmapped.
    let churn = heap - (CHURN_PAGES + 1) * PAGE_SIZE;
    let req = MapRequest {
        addr: Some(churn),
        len: CHURN_PAGES * PAGE_SIZE,
        prot: rw,
        flags: private | MapFlags::FIXED,
        backing: Backing::Anonymous,
    };
    mm.mmap(&req).expect("a fixed mapping in free space");
    Layout {
        text,
        data,
        heap,
        hole: heap - PAGE_SIZE,
        churn,
    }
}

/// The writer's `i`-th change: make 1-4 pages of the churn region read-only or read-write
/// (`mprotect`, which splits and merges VMAs), or map fresh memory over them (`MAP_FIXED`).
/// Every page stays readable.
fn change(mm: &Mm, churn: usize, i: usize) {
    let mut rng = i as u64;
    let pages = 1 + next(&mut rng) % 4;
    let at = churn + (next(&mut rng) % (CHURN_PAGES - pages + 1)) * PAGE_SIZE;
    let len = pages * PAGE_SIZE;
    let rw = Prot::READ | Prot::WRITE;
    let r = match i % 3 {
        0 => mm.mprotect(at, len, Prot::READ),
        1 => mm.mprotect(at, len, rw),
        _ => mm
            .mmap(&MapRequest {
                addr: Some(at),
                len,
                prot: rw,
                flags: MapFlags::PRIVATE | MapFlags::FIXED,
                backing: Backing::Anonymous,
            })
            .map(drop),
    };
    r.expect("changes inside a mapped region succeed");
}

/// Outcomes of the faults aimed at one target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Served under the VMA's own read lock.
    pub vma_lock: usize,
    /// Served under the `mmap_lock`, after the per-VMA path gave up.
    pub mmap_lock: usize,
    /// Refused: `EACCES` (protection) or `EFAULT` (nothing mapped).
    pub eacces: usize,
    /// See `eacces`.
    pub efault: usize,
}

impl Tally {
    fn add(&mut self, r: Result<FaultPath, Errno>) {
        match r {
            Ok(FaultPath::VmaLock) => self.vma_lock += 1,
            Ok(FaultPath::MmapLock) => self.mmap_lock += 1,
            Err(Errno::EACCES) => self.eacces += 1,
            Err(Errno::EFAULT) => self.efault += 1,
            Err(e) => panic!("a fault returned {e}"),
        }
    }

    /// Faults served.
    pub fn ok(&self) -> usize {
        self.vma_lock + self.mmap_lock
    }

    /// Every fault.
    pub fn total(&self) -> usize {
        self.ok() + self.eacces + self.efault
    }
}

/// What a run saw.
#[derive(Debug)]
pub struct Report {
    /// Per target, in [`Target::ALL`] order.
    pub tallies: [(Target, Tally); 6],
    /// Changes the writer made while the faulters ran.
    pub changes: usize,
    /// The address space's own check after the run.
    pub valid: Result<(), String>,
    /// The final layout is the one the writer's changes make without any faulter.
    pub same_as_writer_alone: bool,
    /// The final listing, as `/proc/self/maps` would show it.
    pub listing: Vec<VmaInfo>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{FAULTERS} threads made {} faults while a writer made {} changes",
            FAULTERS * FAULTS_PER_THREAD,
            self.changes
        )?;
        writeln!(
            f,
            "target      faults  per-VMA lock  mmap_lock  EACCES  EFAULT"
        )?;
        for (t, n) in &self.tallies {
            writeln!(
                f,
                "{:<10} {:>7} {:>13} {:>10} {:>7} {:>7}",
                format!("{t:?}"),
                n.total(),
                n.vma_lock,
                n.mmap_lock,
                n.eacces,
                n.efault
            )?;
        }
        writeln!(
            f,
            "address space valid after the run: {}",
            self.valid.is_ok()
        )?;
        writeln!(
            f,
            "final layout is the writer's alone: {}",
            self.same_as_writer_alone
        )?;
        writeln!(f, "final layout ({} VMAs):", self.listing.len())?;
        for v in &self.listing {
            let bit = |p: Prot, c| if v.prot.contains(p) { c } else { '-' };
            let backing = match v.backing {
                Backing::Anonymous => "anonymous".to_string(),
                Backing::File { file, pgoff } => format!("file {} at page {pgoff}", file.0),
            };
            writeln!(
                f,
                "  {:x}-{:x} {}{}{}{} {backing}",
                v.start,
                v.end,
                bit(Prot::READ, 'r'),
                bit(Prot::WRITE, 'w'),
                bit(Prot::EXEC, 'x'),
                if v.shared { 's' } else { 'p' },
            )?;
        }
        Ok(())
    }
}

/// Build the address space, fault from `FAULTERS` threads while the writer changes the
/// churn region, and check the result.
pub fn run() -> Report {
    let mm = Mm::new(MmConfig::default());
    let layout = build(&mm);
    let faulting = AtomicBool::new(true);
    let start = Barrier::new(FAULTERS + 1);
    let mut tallies = [Tally::default(); 6];
    let mut changes = 0;
    thread::scope(|s| {
        let faulters: Vec<_> = (0..FAULTERS)
            .map(|id| {
                let (mm, start) = (&mm, &start);
                s.spawn(move || {
                    let mut rng = 1 + id as u64;
                    let mut tallies = [Tally::default(); 6];
                    start.wait();
                    for _ in 0..FAULTS_PER_THREAD {
                        let k = next(&mut rng) % Target::ALL.len();
                        let (addr, access) = layout.aim(Target::ALL[k], next(&mut rng));
                        tallies[k].add(mm.fault(addr, access));
                    }
                    tallies
                })
            })
            .collect();
        // The writer: every fault above happens while it is changing the layout.
        let writer = s.spawn(|| {
            let mut i = 0;
            start.wait();
            // Relaxed: a stop flag, set after the faulters were joined.
            while i < MIN_CHANGES || faulting.load(Ordering::Relaxed) {
                change(&mm, layout.churn, i);
                i += 1;
            }
            i
        });
        for h in faulters {
            let t = h.join().expect("a faulter panicked");
            for (sum, x) in tallies.iter_mut().zip(t) {
                sum.vma_lock += x.vma_lock;
                sum.mmap_lock += x.mmap_lock;
                sum.eacces += x.eacces;
                sum.efault += x.efault;
            }
        }
        faulting.store(false, Ordering::Relaxed);
        changes = writer.join().expect("the writer panicked");
    });
    // The oracle: the same changes on a fresh address space, one thread, no faults.
    let alone = Mm::new(MmConfig::default());
    let again = build(&alone);
    for i in 0..changes {
        change(&alone, again.churn, i);
    }
    let listing = mm.vmas();
    Report {
        tallies: std::array::from_fn(|i| (Target::ALL[i], tallies[i])),
        changes,
        valid: mm.validate(),
        same_as_writer_alone: listing == alone.vmas(),
        listing,
    }
}

fn main() {
    print!("{}", run());
}
