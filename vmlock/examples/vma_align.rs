//! Rough check of the VMA line layout: one thread speculates on a VMA (reads its first
//! line) while another takes and drops that VMA's read lock (writes its refcount line).
//! Compare the default 64-byte layout with `--features vma-align-128`:
//!
//! ```text
//! cargo run --release -p maple-vmlock --example vma_align
//! cargo run --release -p maple-vmlock --example vma_align --features vma-align-128
//! ```
//!
//! Prints speculative lookups per second with and without the refcount-bumping neighbour.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vmlock::{Backing, MapFlags, MapRequest, Mm, MmConfig, Prot, Speculation};

fn spec_rate(mm: &Mm, addr: usize, dur: Duration) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..1000 {
            if let Speculation::Found(v) = mm.lookup_speculative(addr) {
                std::hint::black_box(v);
            }
        }
        n += 1000;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let mm = Arc::new(Mm::new(MmConfig::default()));
    let addr = 0x1000_0000;
    let req = MapRequest {
        addr: Some(addr),
        len: 1 << 20,
        prot: Prot::READ | Prot::EXEC,
        flags: MapFlags::PRIVATE | MapFlags::FIXED,
        backing: Backing::Anonymous,
    };
    mm.mmap(&req).unwrap();
    let dur = Duration::from_millis(1500);
    let alone = spec_rate(&mm, addr, dur);
    let stop = Arc::new(AtomicBool::new(false));
    let bumper = {
        let (mm, stop) = (mm.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Some(g) = mm.lock_vma_under_rcu(addr + 4096) {
                    std::hint::black_box(g.info());
                    n += 1;
                }
            }
            n
        })
    };
    let contended = spec_rate(&mm, addr, dur);
    stop.store(true, Ordering::Relaxed);
    let locks = bumper.join().unwrap();
    println!(
        "align {}: speculation {:.1} M/s alone, {:.1} M/s beside a read-locker ({:.2}x); read locks {:.1} M/s",
        if cfg!(feature = "vma-align-128") { 128 } else { 64 },
        alone / 1e6,
        contended / 1e6,
        contended / alone,
        locks as f64 / dur.as_secs_f64() / 1e6
    );
}
