//! What one hot-VMA lookup costs, per read path, counted by callgrind: instructions and
//! *global bus events* (x86 `lock`-prefixed instructions and `xchg` with memory, i.e.
//! atomic read-modify-writes), which is what makes a cache line bounce between CPUs.
//!
//! ```text
//! cargo build --release -p maple-vmlock --example hot_path_count
//! valgrind --tool=callgrind --collect-bus=yes --callgrind-out-file=/tmp/hot.cg \
//!     target/release/examples/hot_path_count 100000
//! callgrind_annotate --inclusive=yes /tmp/hot.cg | grep 'hot_path_count::run_'
//! ```
//!
//! A second argument (`speculative`, `lookup`, `vma_lock`, `mmap_lock`, or `all`) runs only
//! that path; a third repeats the paths that many times, interleaved, printing the wall time
//! per lookup (`hot_path_count 1000000 all 9`).
//!
//! Each `run_*` function does `N` lookups (default 100 000) at random addresses of one
//! 256-page VMA among 400 others (the `hot-vma` table's layout); divide its inclusive `Ir`
//! and `Ge` by `N`. Every path is warmed up once before it is measured (the per-thread
//! statistics block of `lookup` is registered on a thread's first call).

use std::hint::black_box;

use vmlock::{Backing, FileId, MapFlags, MapRequest, Mm, MmConfig, Prot, Speculation};

const PAGE: usize = 4096;
const BASE: usize = 0x1000_0000;
const HOT_PAGES: usize = 256;
const AROUND: usize = 400;

/// One measured loop: lookups at every address, returns how many found a VMA.
type Run = fn(&Mm, &[usize]) -> usize;

/// `lookup_speculative`, the `mmap_lock` only on `Retry`.
#[inline(never)]
fn run_speculative(mm: &Mm, addrs: &[usize]) -> usize {
    let mut found = 0;
    for &a in addrs {
        let v = match mm.lookup_speculative(a) {
            Speculation::Found(v) => Some(v),
            Speculation::Unmapped => None,
            Speculation::Retry => mm.mmap_read_lock().vma_lookup(a),
        };
        found += black_box(v).is_some() as usize;
    }
    found
}

/// `lookup` (speculation, its per-thread counters, the `mmap_lock` as fallback).
#[inline(never)]
fn run_lookup(mm: &Mm, addrs: &[usize]) -> usize {
    let mut found = 0;
    for &a in addrs {
        found += black_box(mm.lookup(a)).is_some() as usize;
    }
    found
}

/// `lock_vma_under_rcu`: the per-VMA read lock (a reference count every reader writes).
#[inline(never)]
fn run_vma_lock(mm: &Mm, addrs: &[usize]) -> usize {
    let mut found = 0;
    for &a in addrs {
        found += black_box(mm.lock_vma_under_rcu(a).map(|g| g.info())).is_some() as usize;
    }
    found
}

/// `mmap_read_lock` + `vma_lookup`.
#[inline(never)]
fn run_mmap_lock(mm: &Mm, addrs: &[usize]) -> usize {
    let mut found = 0;
    for &a in addrs {
        found += black_box(mm.mmap_read_lock().vma_lookup(a)).is_some() as usize;
    }
    found
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let mm = Mm::new(MmConfig::default());
    let map = |addr: usize, len: usize, prot: Prot, backing: Backing| {
        let req = MapRequest {
            addr: Some(addr),
            len,
            prot,
            flags: MapFlags::PRIVATE | MapFlags::FIXED,
            backing,
        };
        assert_eq!(mm.mmap(&req), Ok(addr));
    };
    let hot = BASE + AROUND / 2 * 3 * PAGE;
    for i in 0..AROUND {
        let skip = if i >= AROUND / 2 {
            (HOT_PAGES + 1) * PAGE
        } else {
            0
        };
        map(
            BASE + i * 3 * PAGE + skip,
            2 * PAGE,
            Prot::READ | Prot::WRITE,
            Backing::Anonymous,
        );
    }
    let text = Backing::File {
        file: FileId(1),
        pgoff: 0,
    };
    map(hot, HOT_PAGES * PAGE, Prot::READ | Prot::EXEC, text);
    // SplitMix64 addresses inside the hot VMA.
    let mut s = 2u64;
    let addrs: Vec<usize> = (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            hot + (z ^ (z >> 31)) as usize % (HOT_PAGES * PAGE)
        })
        .collect();
    let runs: [(&str, Run); 4] = [
        ("speculative", run_speculative),
        ("lookup", run_lookup),
        ("vma_lock", run_vma_lock),
        ("mmap_lock", run_mmap_lock),
    ];
    // An optional second argument runs only that path; a third repeats the paths that
    // many times, interleaved, and prints the wall time per lookup of each repetition.
    let only = std::env::args().nth(2).filter(|o| o != "all");
    let rounds: usize = std::env::args()
        .nth(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    for round in 0..rounds {
        for (name, run) in runs {
            if only.as_deref().is_some_and(|o| o != name) {
                continue;
            }
            // Warm-up: one call outside the measured loop.
            assert_eq!(run(&mm, &addrs[..1]), 1);
            let t = std::time::Instant::now();
            assert_eq!(run(&mm, &addrs), n, "{name}");
            let ns = t.elapsed().as_nanos() as f64 / n as f64;
            if rounds > 1 {
                println!("round {round} {name}: {ns:.2} ns per lookup");
            }
        }
    }
    let st = mm.stats();
    assert_eq!(st.spec_failed, 0);
    let _ = &runs;
    println!("{n} lookups per path; stats {st:?}");
}
