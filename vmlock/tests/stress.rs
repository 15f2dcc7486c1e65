//! Readers fault, lock and speculate while writers map, unmap, mprotect and mremap.
//!
//! Two address spaces share the process-wide VMA cache, each with its own writer, so VMAs
//! freed by one are reused by the other while readers of the first still look at them.
//! Every writer also runs its operations on a [`Model`] and compares results and listings.
//! Readers check, as they go, that every VMA they get contains their address and, while
//! holding a per-VMA read lock, that speculation agrees with it (or retries); now and then
//! they list the whole space without the `mmap_lock` (`vmas_rcu`), which must be sorted and
//! without overlap. At the end
//! every VMA a reader saw must be one that its own address space's writer produced (a
//! listing entry after some operation): never a freed VMA, never another space's VMA,
//! never a half-updated one.
//!
//! Runs ~2 s by default; `VMLOCK_STRESS=n` multiplies the time.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vmlock::model::Model;
use vmlock::{
    shrink_vma_cache, Access, Backing, FileId, MapFlags, MapRequest, Mm, MmConfig, Prot,
    RemapFlags, Speculation, VmaInfo,
};

const PAGE: usize = 4096;
const NP: usize = 128;

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

struct Space {
    mm: Mm,
    base: usize,
    file: FileId,
    produced: Mutex<HashSet<VmaInfo>>,
}

fn writer(sp: &Space, seed: u64, stop: &AtomicBool) -> usize {
    let mut rng = Rng(seed);
    let mut model = Model::new(sp.mm.config());
    let mut ops = 0;
    while !stop.load(Ordering::Relaxed) {
        let p = rng.below(NP);
        let n = 1 + rng.below((NP - p).min(16));
        let a = sp.base + p * PAGE;
        let prot = Prot::from_bits_truncate(rng.below(8) as u32);
        match rng.below(10) {
            0..=3 => {
                let backing = if rng.below(4) == 0 {
                    Backing::File {
                        file: sp.file,
                        pgoff: p as u64,
                    }
                } else {
                    Backing::Anonymous
                };
                let fixed = rng.below(5) != 0;
                let req = MapRequest {
                    addr: Some(a),
                    len: n * PAGE,
                    prot,
                    flags: MapFlags::PRIVATE
                        | if fixed {
                            MapFlags::FIXED
                        } else {
                            MapFlags::empty()
                        },
                    backing,
                };
                assert_eq!(sp.mm.mmap(&req), model.mmap(&req));
            }
            4..=5 => assert_eq!(sp.mm.munmap(a, n * PAGE), model.munmap(a, n * PAGE)),
            6..=7 => assert_eq!(
                sp.mm.mprotect(a, n * PAGE, prot),
                model.mprotect(a, n * PAGE, prot)
            ),
            _ => {
                let nl = (1 + rng.below(16)) * PAGE;
                let (flags, na) = if rng.below(3) == 0 && nl <= NP * PAGE {
                    let t = sp.base + rng.below(NP - nl / PAGE + 1) * PAGE;
                    (RemapFlags::MAYMOVE | RemapFlags::FIXED, Some(t))
                } else {
                    (RemapFlags::MAYMOVE, None)
                };
                let ol = n * PAGE;
                assert_eq!(
                    sp.mm.mremap(a, ol, nl, flags, na),
                    model.mremap(a, ol, nl, flags, na)
                );
            }
        }
        let list = sp.mm.vmas();
        assert_eq!(list, model.vmas());
        sp.produced.lock().unwrap().extend(list);
        ops += 1;
        if ops % 64 == 0 {
            sp.mm.validate().unwrap();
            shrink_vma_cache();
        }
    }
    ops
}

fn reader(sp: &Space, seed: u64, stop: &AtomicBool) -> (Vec<VmaInfo>, usize) {
    let mut rng = Rng(seed);
    let mut seen = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let addr = sp.base + rng.below(NP * PAGE);
        n += 1;
        match rng.below(5) {
            4 => {
                // The lock-free listing: sorted, no overlap, only VMAs the writer produced
                // (checked at the end like every VMA seen).
                let list = sp.mm.vmas_rcu();
                for w in list.windows(2) {
                    assert!(w[0].end <= w[1].start, "listing overlaps: {list:x?}");
                }
                seen.extend(list);
            }
            0 => {
                if let Some(g) = sp.mm.lock_vma_under_rcu(addr) {
                    let info = g.info();
                    assert!(
                        info.contains(addr),
                        "locked VMA {info:x?} does not contain {addr:#x}"
                    );
                    // While we hold the read lock the VMA cannot change: speculation must
                    // agree or retry.
                    match sp.mm.lookup_speculative(addr) {
                        Speculation::Found(s) => assert_eq!(s, info),
                        Speculation::Retry => {}
                        Speculation::Unmapped => {
                            panic!("read-locked VMA {info:x?} unmapped under us")
                        }
                    }
                    seen.push(info);
                }
            }
            1 => {
                if let Speculation::Found(info) = sp.mm.lookup_speculative(addr) {
                    assert!(
                        info.contains(addr),
                        "speculation gave {info:x?} for {addr:#x}"
                    );
                    seen.push(info);
                }
            }
            2 => {
                if let Some(info) = sp.mm.lookup(addr) {
                    assert!(info.contains(addr), "lookup gave {info:x?} for {addr:#x}");
                    seen.push(info);
                }
            }
            _ => {
                let _ = sp.mm.fault(addr, Access::Read);
            }
        }
    }
    (seen, n)
}

#[test]
fn readers_vs_writers() {
    let scale: u64 = std::env::var("VMLOCK_STRESS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let spaces: Vec<Arc<Space>> = (0..2)
        .map(|i| {
            let base = 0x10_0000_0000 * (i + 1);
            let cfg = MmConfig {
                min_addr: base,
                mmap_base: base + NP * PAGE,
                task_size: MmConfig::default().task_size,
            };
            Arc::new(Space {
                mm: Mm::new(cfg),
                base,
                file: FileId(100 + i as u64),
                produced: Mutex::new(HashSet::new()),
            })
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for (i, sp) in spaces.iter().enumerate() {
        let (sp2, stop2) = (sp.clone(), stop.clone());
        writers.push(std::thread::spawn(move || {
            writer(&sp2, 0x1234 + i as u64, &stop2)
        }));
        for r in 0..2u64 {
            let (sp2, stop2) = (sp.clone(), stop.clone());
            readers.push((
                i,
                std::thread::spawn(move || reader(&sp2, 0x77 + r * 13 + i as u64, &stop2)),
            ));
        }
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2000 * scale) {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let ops: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    let mut reads = 0;
    let mut observed = 0;
    for (i, r) in readers {
        let (seen, n) = r.join().unwrap();
        reads += n;
        observed += seen.len();
        let produced = spaces[i].produced.lock().unwrap();
        for info in seen {
            assert!(
                produced.contains(&info),
                "space {i}: a reader saw {info:x?}, which its writer never produced"
            );
        }
    }
    for sp in &spaces {
        sp.mm.validate().unwrap();
        let st = sp.mm.stats();
        assert!(st.success > 0, "no per-VMA lock ever succeeded: {st:?}");
    }
    assert!(
        ops > 100 && reads > 1000 && observed > 100,
        "too little work: {ops} ops, {reads} reads, {observed} seen"
    );
    eprintln!(
        "{ops} writer ops, {reads} reads, {observed} VMAs observed; stats {:?}",
        spaces[0].mm.stats()
    );
}
