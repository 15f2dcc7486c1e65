//! The lock-free listing ([`Mm::vmas_rcu`]) under a concurrent writer.
//!
//! A region stays mapped from start to end while a writer splits and merges it
//! (`mprotect`, `madvise(DONTFORK/DOFORK)` of sub-ranges) and replaces parts of it
//! (`MAP_FIXED`); static VMAs below and above it never change. Readers list continuously
//! and check every listing: sorted, no overlap, the region covered without a hole, every
//! static VMA present. At the end, every VMA any reader listed must be one the writer
//! produced (one that a completed operation left in the address space). A second address
//! space over the same addresses churns VMAs with a protection the first never uses, so
//! VMA objects freed by one are reused by the other while readers may still hold stale
//! pointers to them (the VMA cache is type-stable): a listing that trusted such a pointer
//! without validating it would show the other space's VMA.
//!
//! The race window must have been hit: listings that overlapped a write section (the
//! `mm_lock_seq` moved during the call), lock-free steps that had to look again, and
//! listings that rewound over VMAs a writer had merged are counted and required.
//!
//! Runs ~1.5 s by default; `VMLOCK_STRESS=n` multiplies the time. The scenario runs on
//! worker threads and the test fails (instead of hanging) if it does not finish in time.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use vmlock::{Advice, Backing, FileId, MapFlags, MapRequest, Mm, MmConfig, Prot, VmaInfo};

const PAGE: usize = 4096;
/// Pages of the always-mapped region.
const NP: usize = 64;
/// Static VMAs on each side of it.
const STATIC: usize = 40;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Setup {
    mm: Mm,
    /// The always-mapped region `[lo, hi)`.
    lo: usize,
    hi: usize,
    statics: Vec<VmaInfo>,
    produced: Mutex<HashSet<VmaInfo>>,
}

fn fixed(addr: usize, pages: usize, prot: Prot, backing: Backing) -> MapRequest {
    MapRequest {
        addr: Some(addr),
        len: pages * PAGE,
        prot,
        flags: MapFlags::PRIVATE | MapFlags::FIXED,
        backing,
    }
}

fn setup() -> Setup {
    let mm = Mm::new(MmConfig::default());
    let base = 0x10_0000_0000;
    // Static VMAs: one page each with a page between them.
    let mut at = base;
    for _ in 0..STATIC {
        mm.mmap(&fixed(at, 1, Prot::READ, Backing::Anonymous))
            .unwrap();
        at += 2 * PAGE;
    }
    let lo = at;
    let hi = lo + NP * PAGE;
    mm.mmap(&fixed(lo, NP, Prot::READ | Prot::WRITE, Backing::Anonymous))
        .unwrap();
    at = hi + PAGE;
    for _ in 0..STATIC {
        mm.mmap(&fixed(at, 1, Prot::READ, Backing::Anonymous))
            .unwrap();
        at += 2 * PAGE;
    }
    let all = mm.vmas();
    let statics: Vec<VmaInfo> = all
        .iter()
        .filter(|v| v.end <= lo || v.start >= hi)
        .copied()
        .collect();
    assert_eq!(statics.len(), 2 * STATIC);
    Setup {
        mm,
        lo,
        hi,
        statics,
        produced: Mutex::new(all.into_iter().collect()),
    }
}

/// Map and unmap executable VMAs over the same addresses in another address space until
/// `stop`, so that VMA objects move between the two through the shared cache.
fn churn(other: &Mm, lo: usize, stop: &AtomicBool) -> usize {
    let mut rng = Rng(0xc0ffee);
    let mut ops = 0;
    while !stop.load(Ordering::Relaxed) {
        let p = rng.below(NP);
        let n = 1 + rng.below((NP - p).min(8));
        let a = lo + p * PAGE;
        if rng.below(2) == 0 {
            other
                .mmap(&fixed(a, n, Prot::EXEC, Backing::Anonymous))
                .unwrap();
        } else {
            other.munmap(a, n * PAGE).unwrap();
        }
        ops += 1;
    }
    ops
}

/// Split, merge, re-protect and replace inside the region until `stop`; returns the number
/// of operations.
fn writer(s: &Setup, stop: &AtomicBool) -> usize {
    let mut rng = Rng(0x5eed);
    let mut ops = 0;
    let prots = [Prot::READ, Prot::READ | Prot::WRITE, Prot::NONE];
    while !stop.load(Ordering::Relaxed) {
        let p = rng.below(NP);
        let n = 1 + rng.below((NP - p).min(12));
        let a = s.lo + p * PAGE;
        let prot = prots[rng.below(prots.len())];
        match rng.below(4) {
            // Re-protect: splits, and merges again when the neighbours match.
            0 | 1 => s.mm.mprotect(a, n * PAGE, prot).unwrap(),
            // A flag that splits and merges like protection does.
            2 => {
                let adv = if rng.below(2) == 0 {
                    Advice::DontFork
                } else {
                    Advice::DoFork
                };
                s.mm.madvise(a, n * PAGE, adv).unwrap();
            }
            // Replace a part with a new mapping (the coverage does not change).
            _ => {
                let backing = if rng.below(3) == 0 {
                    Backing::File {
                        file: FileId(7),
                        pgoff: p as u64,
                    }
                } else {
                    Backing::Anonymous
                };
                assert_eq!(s.mm.mmap(&fixed(a, n, prot, backing)), Ok(a));
            }
        }
        s.produced.lock().unwrap().extend(s.mm.vmas());
        ops += 1;
    }
    ops
}

#[derive(Default)]
struct ReaderTally {
    listings: usize,
    during_write: usize,
    seen: Vec<VmaInfo>,
}

/// List until `stop`, checking every listing.
fn reader(s: &Setup, stop: &AtomicBool) -> ReaderTally {
    let mut t = ReaderTally::default();
    let mut seen = HashSet::new();
    while !stop.load(Ordering::Relaxed) {
        let before = s.mm.lock_seq();
        let list = s.mm.vmas_rcu();
        let after = s.mm.lock_seq();
        t.listings += 1;
        if before != after || before % 2 == 1 {
            t.during_write += 1;
        }
        for w in list.windows(2) {
            assert!(
                w[0].end <= w[1].start,
                "overlap or disorder: {:x?} then {:x?}\n{list:#x?}",
                w[0],
                w[1]
            );
        }
        // The region is covered from `lo` to `hi` without a hole.
        let mut at = s.lo;
        for v in list.iter().filter(|v| v.end > s.lo && v.start < s.hi) {
            assert!(
                v.start <= at,
                "hole at {at:#x}..{:#x} in an always-mapped region\n{list:#x?}",
                v.start
            );
            assert!(v.start >= s.lo && v.end <= s.hi, "{v:x?} sticks out");
            at = v.end;
            seen.insert(*v);
        }
        assert_eq!(at, s.hi, "hole at the end of the region\n{list:#x?}");
        let statics: Vec<VmaInfo> = list
            .iter()
            .filter(|v| v.end <= s.lo || v.start >= s.hi)
            .copied()
            .collect();
        assert_eq!(statics, s.statics, "a static VMA went missing or changed");
    }
    t.seen = seen.into_iter().collect();
    t
}

#[test]
fn lock_free_listing_under_a_writer() {
    let scale: u32 = std::env::var("VMLOCK_STRESS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let run_for = Duration::from_millis(1500) * scale;
    let (done_tx, done_rx) = mpsc::channel();
    // The scenario on worker threads; this thread only watches the clock.
    std::thread::spawn(move || {
        let s = Arc::new(setup());
        let stop = Arc::new(AtomicBool::new(false));
        let w = {
            let (s, stop) = (s.clone(), stop.clone());
            std::thread::spawn(move || writer(&s, &stop))
        };
        let c = {
            let (s, stop) = (s.clone(), stop.clone());
            std::thread::spawn(move || {
                let other = Mm::new(MmConfig::default());
                churn(&other, s.lo, &stop)
            })
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (s, stop) = (s.clone(), stop.clone());
                std::thread::spawn(move || reader(&s, &stop))
            })
            .collect();
        let start = Instant::now();
        while start.elapsed() < run_for {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        let ops = w.join().unwrap();
        let churned = c.join().unwrap();
        assert!(churned > 100, "the other address space barely ran");
        let tallies: Vec<ReaderTally> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        let _ = done_tx.send((s, ops, tallies));
    });
    let (s, ops, tallies) = match done_rx.recv_timeout(run_for + Duration::from_secs(120)) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the listing scenario did not finish"),
        // A worker panicked: its assertion message was printed; fail here too.
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("a worker thread panicked"),
    };
    let produced = s.produced.lock().unwrap();
    let mut listings = 0;
    let mut during_write = 0;
    let mut distinct = HashSet::new();
    for t in &tallies {
        listings += t.listings;
        during_write += t.during_write;
        for v in &t.seen {
            assert!(
                produced.contains(v),
                "a reader listed {v:x?}, which the writer never produced"
            );
            distinct.insert(*v);
        }
    }
    let st = s.mm.stats();
    eprintln!(
        "{ops} writer ops, {listings} listings ({during_write} overlapping a write), \
         {} distinct region VMAs seen; stats {st:?}",
        distinct.len()
    );
    s.mm.validate().unwrap();
    // The race window was hit, and the lock-free machinery did its work.
    assert!(ops > 100 && listings > 50, "too little work");
    assert!(
        during_write > 10,
        "too few listings overlapped a write: {during_write}"
    );
    assert!(
        st.list_retry > 0,
        "no lock-free step ever had to look again: {st:?}"
    );
    assert!(
        st.list_steps > st.list_fallback * 4,
        "the listing mostly fell back to the mmap_lock: {st:?}"
    );
    assert!(
        distinct.len() > 20,
        "the readers saw too few different VMAs"
    );
}
