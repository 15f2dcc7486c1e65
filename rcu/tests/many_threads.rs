//! Grace periods complete with any number of threads inside guards (both backends), with
//! heap use bounded throughout. Alone in its test binary: the heap is measured with a
//! process-wide counting allocator, so no other test may allocate meanwhile.
#![cfg(not(loom))]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use common::{bounded, retire, stress_scale, Log};
use rcu::{Domain, Epoch, Seize};

/// Counts live heap bytes, so tests can check that memory stays bounded.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to `System`, only adding counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            // Relaxed: statistics.
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // Relaxed: statistics.
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: forwarded.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// `READERS` threads sit inside guards of one domain while a writer retires (full blocks
/// and a partial flush, from a thread that then exits). Nothing may be destroyed while they
/// are inside; after they leave, `synchronize` (on yet another thread) returns and
/// `pending()` reaches 0. Heap use stays proportional to what was retired throughout, and
/// returns to where it started.
fn many_threads_in_guards<D: Domain>(readers: usize) {
    let objects = 20_000 * stress_scale();
    bounded(120, &format!("{}: {readers} readers", D::NAME), move || {
        let domain = Arc::new(D::default());
        let log = Log::with_flags(objects);
        // Warm up this thread's and the domain's structures before measuring.
        domain.synchronize();
        let inside = Arc::new(Barrier::new(readers + 1));
        let leave = Arc::new(Barrier::new(readers + 1));
        let entered = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..readers)
            .map(|_| {
                let (domain, inside, leave, entered) = (
                    domain.clone(),
                    inside.clone(),
                    leave.clone(),
                    entered.clone(),
                );
                thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn(move || {
                        let g = domain.enter();
                        // Relaxed: a count checked after the barrier.
                        entered.fetch_add(1, Ordering::Relaxed);
                        inside.wait();
                        leave.wait();
                        drop(g);
                    })
                    .unwrap()
            })
            .collect();
        inside.wait();
        assert_eq!(entered.load(Ordering::Relaxed), readers);
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        {
            let (domain, log) = (domain.clone(), log.clone());
            thread::spawn(move || {
                for i in 0..objects {
                    retire(&*domain, &log, i, false);
                }
                domain.flush();
            })
            .join()
            .unwrap();
        }
        // Every reader is still inside: nothing retired after they entered may be gone.
        assert_eq!(
            log.destroyed.load(Ordering::Acquire),
            0,
            "{}: destroyed under live guards",
            D::NAME
        );
        assert_eq!(domain.pending(), objects);
        // Bounded: the retired objects (40 bytes + 16 for the retire entry each) plus the
        // backends' per-block bookkeeping; nothing that grows with time or thread count
        // beyond the blocks' no-op entries (at most one per object).
        let used = LIVE.load(Ordering::Relaxed).saturating_sub(base);
        let per_object = used / objects;
        assert!(
            per_object <= 160,
            "{}: {per_object} heap bytes per pending object with {readers} readers",
            D::NAME
        );
        leave.wait();
        for h in hs {
            h.join().unwrap();
        }
        let d2 = domain.clone();
        // `synchronize` from a thread that never retired anything.
        thread::spawn(move || d2.synchronize()).join().unwrap();
        assert_eq!(domain.pending(), 0, "{}", D::NAME);
        assert_eq!(log.destroyed.load(Ordering::Acquire), objects);
        let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base) / objects;
        assert!(peak <= 200, "{}: peak {peak} bytes per object", D::NAME);
        drop(Arc::try_unwrap(domain).expect("threads joined"));
    });
}

/// 256 readers, both backends, one after the other (the heap measurements are
/// process-wide).
#[test]
fn many_threads_in_guards_256_both_backends() {
    many_threads_in_guards::<Seize>(256);
    many_threads_in_guards::<Epoch>(256);
}
