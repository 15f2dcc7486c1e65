//! `SeqCount` stress: readers never accept a torn pair. `MAPLE_STRESS=1` runs longer.
#![cfg(not(loom))]

use std::sync::Arc;
use std::thread;

use rcu::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use rcu::SeqCount;

struct Shared {
    seq: SeqCount,
    a: AtomicU64,
    b: AtomicU64,
    stop: AtomicBool,
}

#[test]
fn readers_never_accept_torn_pairs() {
    let writes: u64 = if cfg!(miri) {
        300 // Miri: the interpreter explores interleavings, not volume
    } else if std::env::var_os("MAPLE_STRESS").is_some() {
        5_000_000
    } else {
        200_000
    };
    let s = Arc::new(Shared {
        seq: SeqCount::new(),
        a: AtomicU64::new(0),
        b: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let accepted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (s, accepted, refused) = (s.clone(), accepted.clone(), refused.clone());
            thread::spawn(move || {
                let mut last = 0;
                // Relaxed: only a stop flag.
                while !s.stop.load(Ordering::Relaxed) {
                    // Reader 0 waits for even counts, reader 1 refuses odd ones.
                    let start = if r == 0 {
                        s.seq.read_begin()
                    } else if let Some(start) = s.seq.try_read_begin() {
                        start
                    } else {
                        refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    // Relaxed: the SeqCount protocol supplies the ordering.
                    let a = s.a.load(Ordering::Relaxed);
                    let b = s.b.load(Ordering::Relaxed);
                    if !s.seq.read_retry(start) {
                        assert_eq!(a, b, "torn pair accepted");
                        assert!(a >= last, "went back in time");
                        last = a;
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for i in 1..=writes {
        if i % 64 == 0 {
            // Give readers a window between write sections.
            thread::yield_now();
        }
        s.seq.write_begin();
        assert!(s.seq.is_write_locked());
        assert!(s.seq.try_read_begin().is_none());
        // Relaxed: the SeqCount protocol supplies the ordering.
        s.a.store(i, Ordering::Relaxed);
        s.b.store(i, Ordering::Relaxed);
        s.seq.write_end();
    }
    // Readers may not even have started on a loaded machine; let them finish a read.
    while accepted.load(Ordering::Relaxed) == 0 {
        thread::yield_now();
    }
    s.stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert!(accepted.load(Ordering::Relaxed) > 0);
    assert_eq!(s.seq.raw(), 2 * writes as usize);
    assert!(!s.seq.is_write_locked());
}

#[test]
fn retry_detects_a_completed_write() {
    let seq = SeqCount::default();
    let start = seq.read_begin();
    assert!(!seq.read_retry(start));
    seq.write_begin();
    seq.write_end();
    assert!(
        seq.read_retry(start),
        "a whole write section between begin and retry"
    );
    assert_eq!(format!("{seq:?}"), "SeqCount { seq: 2 }");
}
