//! Liveness of both reclamation backends: grace periods complete at any thread count,
//! `synchronize` never returns early, dropping a domain never hangs, panicking destructors
//! do not wedge reclamation, foreign crossbeam pins only delay `Epoch`.
//!
//! Every scenario that could hang runs on a worker thread and fails after a bound instead
//! (`bounded`). The 256-thread scenario is in `many_threads.rs` (it measures the heap).
//! `RCU_FLUSH_ROUNDS` sets the rounds of the flush-vs-synchronize race (default 20 000 per
//! backend in release, 5 000 in debug builds; 10^6 for the full run); `MAPLE_STRESS`
//! multiplies the defaults by 20.
#![cfg(not(loom))]

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{bounded, retire, stress_scale, Log};
use rcu::{Domain, Epoch, Seize};

// ---------------------------------------------------------------------------------------
// Any number of threads inside guards (see also `many_threads.rs`).

/// The exact shape of the original report: 64 readers (one more than the old padding
/// allowed) inside guards while a writer thread retires one full block, then exits; a
/// `synchronize` on another thread must return once the readers leave.
#[test]
fn seize_64_readers_full_block_then_writer_exits() {
    bounded(60, "seize: 64 readers", || {
        let domain = Arc::new(Seize::default());
        let log = Arc::new(Log::default());
        let inside = Arc::new(Barrier::new(65));
        let leave = Arc::new(Barrier::new(65));
        let hs: Vec<_> = (0..64)
            .map(|_| {
                let (domain, inside, leave) = (domain.clone(), inside.clone(), leave.clone());
                thread::spawn(move || {
                    let g = domain.enter();
                    inside.wait();
                    leave.wait();
                    drop(g);
                })
            })
            .collect();
        inside.wait();
        {
            let (domain, log) = (domain.clone(), log.clone());
            thread::spawn(move || {
                for i in 0..64 {
                    retire(&*domain, &log, i, false);
                }
            })
            .join()
            .unwrap();
        }
        leave.wait();
        for h in hs {
            h.join().unwrap();
        }
        let d2 = domain.clone();
        thread::spawn(move || d2.synchronize()).join().unwrap();
        assert_eq!(domain.pending(), 0);
        assert_eq!(log.destroyed.load(Ordering::Acquire), 64);
    });
}

/// Threads keep arriving (each a new, higher seize thread id) while a writer hands blocks
/// over: a hand-off that read the thread bound just before a newcomer entered must still
/// retire its block (the bound is re-checked after the retire scan).
#[test]
fn seize_new_threads_entering_during_hand_offs() {
    bounded(120, "seize: arriving threads", || {
        let domain = Arc::new(Seize::default());
        let log = Arc::new(Log::default());
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (domain, log, stop) = (domain.clone(), log.clone(), stop.clone());
            thread::spawn(move || {
                let mut i = 0;
                // Relaxed: a stop flag.
                while !stop.load(Ordering::Relaxed) {
                    retire(&*domain, &log, i, false);
                    i += 1;
                }
                domain.flush();
                i
            })
        };
        let mut arrivals = 0;
        for _ in 0..8 {
            let inside = Arc::new(Barrier::new(33));
            let hs: Vec<_> = (0..32)
                .map(|_| {
                    let (domain, inside) = (domain.clone(), inside.clone());
                    thread::Builder::new()
                        .stack_size(64 * 1024)
                        .spawn(move || {
                            let g = domain.enter();
                            inside.wait();
                            thread::sleep(Duration::from_millis(2));
                            drop(g);
                        })
                        .unwrap()
                })
                .collect();
            inside.wait();
            arrivals += 32;
            for h in hs {
                h.join().unwrap();
            }
        }
        stop.store(true, Ordering::Relaxed);
        let retired = writer.join().unwrap();
        assert!(arrivals >= 256 && retired > 0);
        domain.synchronize();
        assert_eq!(domain.pending(), 0);
        assert_eq!(log.destroyed.load(Ordering::Acquire), retired);
    });
}

// ---------------------------------------------------------------------------------------
// `synchronize` never returns early.

/// Rounds of the flush-vs-synchronize race per backend.
fn flush_rounds() -> usize {
    std::env::var("RCU_FLUSH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(
            if cfg!(debug_assertions) {
                5_000
            } else {
                20_000
            } * stress_scale(),
        )
}

/// One thread retires an object and flushes, over and over; another calls `synchronize`
/// over and over. Before each call the synchronizing thread reads how many objects have
/// been retired (all of them were retired before the call); when the call returns, every
/// one of them must have been destroyed. Counts the rounds in which a flush was in progress
/// at some point of the `synchronize` call, and requires at least 1% of them: the race
/// window is hit (an early version returned early in about 1 call in 2 700 under this
/// race).
fn flush_vs_synchronize<D: Domain>() {
    let rounds = flush_rounds();
    // Generous: a full run (10^6 rounds) on a loaded machine under `nice` is slow.
    let secs = 120 + (rounds as u64) / 100;
    bounded(
        secs,
        &format!("{}: flush vs synchronize", D::NAME),
        move || {
            let domain = Arc::new(D::default());
            // Objects beyond `rounds` may be retired while the last rounds finish.
            let log = Log::with_flags(rounds * 4 + 1024);
            let retired = Arc::new(AtomicUsize::new(0));
            let flushes = Arc::new(AtomicUsize::new(0));
            let started = Arc::new(AtomicUsize::new(0));
            let done_rounds = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let flusher = {
                let (domain, log, retired, flushes, started, done_rounds, stop) = (
                    domain.clone(),
                    log.clone(),
                    retired.clone(),
                    flushes.clone(),
                    started.clone(),
                    done_rounds.clone(),
                    stop.clone(),
                );
                thread::spawn(move || {
                    let cap = log.flags.len();
                    let mut i = 0;
                    // Relaxed: a stop flag.
                    while !stop.load(Ordering::Relaxed) && i < cap {
                        // Retire at most a few objects per round ahead (so the objects last
                        // the whole run), but keep flushing (draining racing `synchronize`'s
                        // drain) either way.
                        // Relaxed: pacing only.
                        if i <= 3 * done_rounds.load(Ordering::Relaxed) + 64 {
                            retire(&*domain, &log, i, false);
                            i += 1;
                            // Release: object `i - 1` was retired before this count is seen.
                            retired.store(i, Ordering::Release);
                        }
                        // SeqCst (both counters): the overlap test below compares them with
                        // reads on the other thread in one total order.
                        started.fetch_add(1, Ordering::SeqCst);
                        domain.flush();
                        flushes.fetch_add(1, Ordering::SeqCst);
                    }
                })
            };
            let mut checked = 0;
            let mut overlapped = 0;
            let mut last_started = 0;
            for round in 0..rounds {
                // Relaxed: pacing only.
                done_rounds.store(round, Ordering::Relaxed);
                // Handshake: start a round only once a flush has started since the previous
                // one, so the two threads keep meeting even when the scheduler would run one of
                // them alone for a while: a short spin every round, and every 16th round a
                // wait (bounded) that lets a descheduled flusher catch up.
                let mut spins = 0;
                while started.load(Ordering::SeqCst) <= last_started && spins < 2_000 {
                    std::hint::spin_loop();
                    spins += 1;
                }
                if round % 16 == 0 {
                    let deadline = Instant::now() + Duration::from_millis(50);
                    while started.load(Ordering::SeqCst) <= last_started
                        && Instant::now() < deadline
                    {
                        thread::yield_now();
                    }
                }
                last_started = started.load(Ordering::SeqCst);
                // Acquire: every object below `r` was retired before this call.
                let r = retired.load(Ordering::Acquire);
                // A flush overlapped the call if one had started by its end that had not
                // finished by its start.
                let finished_before = flushes.load(Ordering::SeqCst);
                domain.synchronize();
                if started.load(Ordering::SeqCst) > finished_before {
                    overlapped += 1;
                }
                while checked < r {
                    // Acquire: pairs with the destructor's Release swap.
                    assert!(
                        log.flags[checked].load(Ordering::Acquire),
                        "{}: synchronize returned before object {checked} (retired before the \
                     call, {r} retired then) was destroyed",
                        D::NAME
                    );
                    checked += 1;
                }
            }
            stop.store(true, Ordering::Relaxed);
            flusher.join().unwrap();
            eprintln!(
            "{}: {rounds} synchronize calls, {overlapped} overlapped a flush, {checked} objects \
             checked",
            D::NAME
        );
            assert!(
                overlapped * 100 >= rounds,
                "{}: only {overlapped} of {rounds} rounds raced a flush",
                D::NAME
            );
            domain.synchronize();
            assert_eq!(domain.pending(), 0);
        },
    );
}

#[test]
fn seize_flush_vs_synchronize() {
    flush_vs_synchronize::<Seize>();
}

#[test]
fn epoch_flush_vs_synchronize() {
    flush_vs_synchronize::<Epoch>();
}

// ---------------------------------------------------------------------------------------
// Dropping a domain never hangs.

/// A guard is forgotten, objects are retired afterwards, the domain is dropped: the drop
/// returns. What was retired before the forget is destroyed; what was retired after it is
/// destroyed by `Epoch` (which owns every block in flight) and leaked by `Seize` (its
/// blocks sit in the forgotten reservation's list), as documented on each type.
fn forgotten_guard_then_drop<D: Domain>(destroys_behind_forgotten: bool) {
    bounded(30, &format!("{}: forgotten guard", D::NAME), move || {
        let domain = D::default();
        let log = Arc::new(Log::default());
        for i in 0..100 {
            retire(&domain, &log, i, false);
        }
        domain.synchronize();
        assert_eq!(log.destroyed.load(Ordering::Acquire), 100);
        std::mem::forget(domain.enter());
        for i in 0..1000 {
            retire(&domain, &log, 100 + i, false);
        }
        domain.flush();
        // Blocked behind the forgotten guard (whichever thread looks).
        thread::sleep(Duration::from_millis(20));
        domain.flush();
        assert_eq!(log.destroyed.load(Ordering::Acquire), 100);
        assert_eq!(domain.pending(), 1000);
        drop(domain);
        let expected = if destroys_behind_forgotten { 1100 } else { 100 };
        assert_eq!(
            log.destroyed.load(Ordering::Acquire),
            expected,
            "{}",
            D::NAME
        );
    });
}

#[test]
fn seize_forgotten_guard_then_drop_leaks_and_returns() {
    forgotten_guard_then_drop::<Seize>(false);
}

// `Epoch`'s forgotten-guard tests live in `epoch_forgotten.rs`: a forgotten crossbeam pin
// stops reclamation for every crossbeam user in the process, so they get a process of
// their own.

/// A guard forgotten on a thread that then exits: dropping the domain still returns.
fn forgotten_guard_on_exited_thread<D: Domain>() {
    bounded(
        30,
        &format!("{}: forgotten on exited thread", D::NAME),
        || {
            let domain = Arc::new(D::default());
            let log = Arc::new(Log::default());
            {
                let domain = domain.clone();
                thread::spawn(move || std::mem::forget(domain.enter()))
                    .join()
                    .unwrap();
            }
            for i in 0..200 {
                retire(&*domain, &log, i, false);
            }
            domain.flush();
            drop(Arc::try_unwrap(domain).expect("threads joined"));
        },
    );
}

#[test]
fn seize_forgotten_guard_on_exited_thread_drop_returns() {
    forgotten_guard_on_exited_thread::<Seize>();
}

// ---------------------------------------------------------------------------------------
// Panicking destructors.

/// Run `f`, which must not raise a destructor's panic: fail with a message naming `what`
/// (a bare `resume_unwind` prints nothing).
fn quiet<T>(what: &str, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => panic!("{what}: raised {:?}", panic_message(&*p)),
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Objects whose destructor panics, mixed with normal ones, some retired while readers are
/// inside guards. The panic surfaces in the writer-side call that ran the destructor
/// (`synchronize` here), after the rest of the block was destroyed; readers leaving their
/// guards never panic; nothing is destroyed twice; the domain keeps reclaiming.
fn panicking_destructor<D: Domain>() {
    bounded(60, &format!("{}: panicking destructor", D::NAME), || {
        let domain = Arc::new(D::default());
        let log = Log::with_flags(1000);
        let inside = Arc::new(Barrier::new(5));
        let leave = Arc::new(Barrier::new(5));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (domain, inside, leave) = (domain.clone(), inside.clone(), leave.clone());
                thread::spawn(move || {
                    let g = domain.enter();
                    inside.wait();
                    leave.wait();
                    // Leaving may complete grace periods: it must not run (or raise from)
                    // any destructor.
                    drop(g);
                    for _ in 0..100 {
                        drop(domain.enter());
                    }
                })
            })
            .collect();
        inside.wait();
        quiet(&format!("{}: retire under readers", D::NAME), || {
            for i in 0..300 {
                // Objects 7 and 150 panic.
                retire(&*domain, &log, i, i == 7 || i == 150);
            }
            domain.flush();
        });
        assert_eq!(log.destroyed.load(Ordering::Acquire), 0);
        leave.wait();
        for r in readers {
            r.join().expect("a reader's guard drop panicked");
        }
        let r = catch_unwind(AssertUnwindSafe(|| domain.synchronize()));
        let msg = panic_message(&*r.expect_err("the destructor's panic must surface"));
        assert!(
            msg.starts_with("destructor of object"),
            "{}: unexpected panic {msg:?}",
            D::NAME
        );
        // Everything else was still destroyed, each object once.
        assert_eq!(log.destroyed.load(Ordering::Acquire), 300, "{}", D::NAME);
        assert_eq!(domain.pending(), 0);
        // The domain keeps working.
        quiet(&format!("{}: retire after", D::NAME), || {
            for i in 300..600 {
                retire(&*domain, &log, i, false);
            }
            domain.synchronize();
        });
        assert_eq!(log.destroyed.load(Ordering::Acquire), 600);
        assert_eq!(domain.pending(), 0);
        // A panicking destructor still buffered when the domain drops (fewer objects than
        // one block, and the shards are empty after `synchronize`): the drop destroys
        // everything, then re-raises.
        quiet(&format!("{}: retire before drop", D::NAME), || {
            for i in 600..610 {
                retire(&*domain, &log, i, i == 605);
            }
        });
        let domain = Arc::try_unwrap(domain).expect("threads joined");
        let r = catch_unwind(AssertUnwindSafe(|| drop(domain)));
        let msg = panic_message(&*r.expect_err("drop must re-raise"));
        assert_eq!(msg, "destructor of object 605 panics", "{}", D::NAME);
        assert_eq!(log.destroyed.load(Ordering::Acquire), 610, "{}", D::NAME);
        for (i, f) in log.flags.iter().enumerate().take(610) {
            assert!(
                f.load(Ordering::Acquire),
                "{}: object {i} not destroyed",
                D::NAME
            );
        }
    });
}

#[test]
fn seize_panicking_destructor() {
    panicking_destructor::<Seize>();
}

#[test]
fn epoch_panicking_destructor() {
    panicking_destructor::<Epoch>();
}

/// `retire` runs blocks whose grace period is over, so a destructor's panic can surface
/// from a `retire` call (or a `flush`), exactly once, with the object being retired not
/// lost. With `Seize` and no reader holding the block, the `retire` that fills the block
/// holding the panicking object raises it; with `Epoch` a later call does, once crossbeam's
/// epoch has advanced (other tests' pins may delay that: then `synchronize` raises it).
/// Returns the index of the retire at which it surfaced (`None`: in `synchronize`).
fn panic_surfaces_in_retire<D: Domain>() -> Option<usize> {
    bounded(60, &format!("{}: panic in retire", D::NAME), || {
        const N: usize = 10_000;
        let domain = D::default();
        let log = Log::with_flags(N);
        retire(&domain, &log, 0, true);
        let mut surfaced = None;
        let mut i = 1;
        while i < N && surfaced.is_none() {
            if catch_unwind(AssertUnwindSafe(|| retire(&domain, &log, i, false))).is_err()
                || (i % 256 == 0 && catch_unwind(AssertUnwindSafe(|| domain.flush())).is_err())
            {
                surfaced = Some(i);
            }
            i += 1;
        }
        let retired = i;
        let in_sync = catch_unwind(AssertUnwindSafe(|| domain.synchronize())).is_err();
        assert_ne!(
            surfaced.is_some(),
            in_sync,
            "{}: the panic must surface exactly once",
            D::NAME
        );
        domain.synchronize();
        assert_eq!(domain.pending(), 0);
        assert_eq!(
            log.destroyed.load(Ordering::Acquire),
            retired,
            "{}",
            D::NAME
        );
        surfaced
    })
}

#[test]
fn seize_panic_surfaces_in_retire() {
    // A block holds at least 64 objects (more once over 64 thread slots exist in the
    // process, as other tests in this binary create): the retire that fills it hands it
    // over, no reader holds it, so that same call (or the periodic flush, for big blocks)
    // runs it and raises.
    let at = panic_surfaces_in_retire::<Seize>();
    assert!(at.is_some_and(|at| at >= 63), "surfaced at {at:?}");
}

#[test]
fn epoch_panic_surfaces_in_retire() {
    panic_surfaces_in_retire::<Epoch>();
}

// ---------------------------------------------------------------------------------------
// Epoch and foreign crossbeam pins.

/// A crossbeam pin that does not belong to the domain (a bare `crossbeam_epoch::pin()` on
/// another thread, as any crossbeam data structure takes) delays `Epoch::synchronize` until
/// it is released, and the call then returns.
#[test]
fn epoch_foreign_pin_delays_synchronize_until_released() {
    bounded(60, "epoch: foreign pin", || {
        let domain = Arc::new(Epoch::default());
        let log = Arc::new(Log::default());
        let pinned = Arc::new(Barrier::new(2));
        let released = Arc::new(AtomicBool::new(false));
        let pinner = {
            let (pinned, released) = (pinned.clone(), released.clone());
            thread::spawn(move || {
                let g = crossbeam_epoch::pin();
                pinned.wait();
                thread::sleep(Duration::from_millis(300));
                // Release: read after `synchronize` returns.
                released.store(true, Ordering::Release);
                drop(g);
            })
        };
        pinned.wait();
        retire(&*domain, &log, 0, false);
        let t = Instant::now();
        domain.synchronize();
        // Acquire: pairs with the Release store before the pin was dropped.
        assert!(
            released.load(Ordering::Acquire),
            "synchronize returned while a foreign pin older than the retire was held"
        );
        assert!(t.elapsed() >= Duration::from_millis(100));
        assert_eq!(log.destroyed.load(Ordering::Acquire), 1);
        pinner.join().unwrap();
    });
}

/// A foreign pin never delays `retire`, `flush` or dropping the domain.
#[test]
fn epoch_foreign_pin_does_not_block_drop() {
    bounded(30, "epoch: foreign pin, drop", || {
        let log = Arc::new(Log::default());
        let domain = Epoch::default();
        let g = crossbeam_epoch::pin();
        for i in 0..500 {
            retire(&domain, &log, i, false);
        }
        domain.flush();
        drop(domain);
        assert_eq!(log.destroyed.load(Ordering::Acquire), 500);
        drop(g);
    });
}
