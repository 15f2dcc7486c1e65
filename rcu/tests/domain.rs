//! Multi-threaded stress and behaviour tests of both reclamation backends.
//!
//! Retired objects are "canaries": reclaiming one poisons it and parks its memory in a
//! graveyard (freed at the end of the test), so a reader that still sees a reclaimed object
//! reads well-defined poison instead of freed memory. Every object counts its reclaims.
//! Set `MAPLE_STRESS=1` for longer runs.
#![cfg(not(loom))]

use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use rcu::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use rcu::{Domain, Epoch, Guard, Reclaim, Seize};

const ALIVE: u64 = 0xA11C_E5A1_1CE5_A11C;
const DEAD: u64 = 0xDEAD_DEAD_DEAD_DEAD;

#[derive(Default)]
struct Stats {
    created: AtomicUsize,
    reclaimed: AtomicUsize,
    /// Reclaimed more than once.
    double: AtomicUsize,
    /// A reader saw poison through a guard.
    use_after_reclaim: AtomicUsize,
    graveyard: Mutex<Vec<usize>>,
}

impl Stats {
    fn bury_all(&self) {
        for p in self.graveyard.lock().unwrap().drain(..) {
            // SAFETY: every graveyard entry is a reclaimed canary from `Box::into_raw`,
            // parked exactly once, and no thread uses it any more (test end).
            drop(unsafe { Box::from_raw(p as *mut Canary) });
        }
    }
}

struct Canary {
    magic: AtomicU64,
    reclaims: AtomicUsize,
    stats: Arc<Stats>,
}

fn canary(stats: &Arc<Stats>) -> *mut Canary {
    stats.created.fetch_add(1, Ordering::Relaxed);
    Box::into_raw(Box::new(Canary {
        magic: AtomicU64::new(ALIVE),
        reclaims: AtomicUsize::new(0),
        stats: stats.clone(),
    }))
}

/// Poison and park instead of freeing.
struct Poison;

// SAFETY: `reclaim` only touches the canary through atomics and parks its memory.
unsafe impl Reclaim<Canary> for Poison {
    unsafe fn reclaim(ptr: *mut Canary) {
        // SAFETY: retired canaries stay allocated (parked), so `ptr` is valid.
        let c = unsafe { &*ptr };
        if c.reclaims.fetch_add(1, Ordering::AcqRel) != 0 {
            c.stats.double.fetch_add(1, Ordering::Relaxed);
            return;
        }
        c.magic.store(DEAD, Ordering::Release);
        c.stats.graveyard.lock().unwrap().push(ptr as usize);
        c.stats.reclaimed.fetch_add(1, Ordering::Release);
    }
}

fn scale() -> usize {
    if std::env::var_os("MAPLE_STRESS").is_some() {
        20
    } else {
        1
    }
}

/// Writers swap canaries into shared slots and retire the old ones; readers check that
/// whatever they load through a guard is alive for the whole section.
fn stress<D: Domain>() {
    const SLOTS: usize = 8;
    let writers = 2;
    let readers: usize = 2;
    let per_writer = 20_000 * scale();
    let stats = Arc::new(Stats::default());
    let domain = Arc::new(D::default());
    let slots: Arc<Vec<AtomicPtr<Canary>>> =
        Arc::new((0..SLOTS).map(|_| AtomicPtr::new(canary(&stats))).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));

    let mut handles = Vec::new();
    for r in 0..readers {
        let (domain, slots, stats, stop, reads) = (
            domain.clone(),
            slots.clone(),
            stats.clone(),
            stop.clone(),
            reads.clone(),
        );
        handles.push(thread::spawn(move || {
            let mut i: usize = r;
            // Relaxed: only a stop flag.
            while !stop.load(Ordering::Relaxed) {
                let guard = domain.enter();
                for _ in 0..16 {
                    i = i.wrapping_mul(31).wrapping_add(7);
                    let p = guard.protect(&slots[i % SLOTS], Ordering::Acquire);
                    // SAFETY: loaded through `guard`; canaries are never freed during the
                    // test (parked), so the read itself is always defined.
                    let c = unsafe { &*p };
                    for _ in 0..4 {
                        // Acquire: pairs with the poisoning store.
                        if c.magic.load(Ordering::Acquire) != ALIVE {
                            stats.use_after_reclaim.fetch_add(1, Ordering::Relaxed);
                        }
                        std::hint::spin_loop();
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
                drop(guard);
            }
        }));
    }
    for w in 0..writers {
        let (domain, slots, stats) = (domain.clone(), slots.clone(), stats.clone());
        handles.push(thread::spawn(move || {
            for i in 0..per_writer {
                let new = canary(&stats);
                let old = slots[(i * 3 + w) % SLOTS].swap(new, Ordering::AcqRel);
                // SAFETY: `old` was just unlinked (unreachable for new sections), is retired
                // once, and `Poison` is sound for canaries.
                unsafe { domain.retire::<Canary, Poison>(old) };
                if i % 1024 == 0 {
                    domain.flush();
                }
            }
        }));
    }
    for h in handles.drain(readers..) {
        h.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }

    domain.synchronize();
    let retired = writers * per_writer;
    assert_eq!(
        stats.reclaimed.load(Ordering::Acquire),
        retired,
        "{}",
        D::NAME
    );
    assert_eq!(domain.pending(), 0, "{}", D::NAME);
    assert_eq!(stats.double.load(Ordering::Relaxed), 0, "{}", D::NAME);
    assert_eq!(
        stats.use_after_reclaim.load(Ordering::Relaxed),
        0,
        "{}",
        D::NAME
    );
    assert!(reads.load(Ordering::Relaxed) > 0);

    // The canaries still published: retire them too, then drop the domain (leak check).
    for s in slots.iter() {
        // SAFETY: the threads are gone; each published canary is retired once.
        unsafe { domain.retire::<Canary, Poison>(s.load(Ordering::Relaxed)) };
    }
    assert_eq!(domain.pending(), SLOTS);
    drop(Arc::try_unwrap(domain).expect("threads joined"));
    assert_eq!(
        stats.reclaimed.load(Ordering::Acquire),
        stats.created.load(Ordering::Relaxed)
    );
    assert_eq!(stats.double.load(Ordering::Relaxed), 0);
    stats.bury_all();
}

#[test]
fn stress_seize() {
    stress::<Seize>();
}

#[test]
fn stress_epoch() {
    stress::<Epoch>();
}

/// `synchronize` does not return while a guard that saw the object is alive, and does
/// return once it is dropped.
fn synchronize_waits_for_reader<D: Domain>() {
    let stats = Arc::new(Stats::default());
    let domain = Arc::new(D::default());
    let slot = Arc::new(AtomicPtr::new(canary(&stats)));
    let loaded = Arc::new(Barrier::new(2));
    let release = Arc::new(AtomicBool::new(false));
    let saw_dead = Arc::new(AtomicBool::new(false));
    let reader = {
        let (domain, slot, loaded, release, saw_dead) = (
            domain.clone(),
            slot.clone(),
            loaded.clone(),
            release.clone(),
            saw_dead.clone(),
        );
        thread::spawn(move || {
            let guard = domain.enter();
            let p = guard.protect(&slot, Ordering::Acquire);
            loaded.wait();
            // Acquire: pairs with the main thread's Release below.
            while !release.load(Ordering::Acquire) {
                // SAFETY: protected by `guard`; parked memory is never freed in the test.
                if unsafe { &*p }.magic.load(Ordering::Acquire) != ALIVE {
                    saw_dead.store(true, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(1));
            }
            drop(guard);
        })
    };
    loaded.wait();
    let old = slot.swap(canary(&stats), Ordering::AcqRel);
    // SAFETY: unlinked above, retired once.
    unsafe { domain.retire::<Canary, Poison>(old) };
    let done = Arc::new(AtomicBool::new(false));
    let syncer = {
        let (domain, done) = (domain.clone(), done.clone());
        thread::spawn(move || {
            domain.synchronize();
            done.store(true, Ordering::Release);
        })
    };
    thread::sleep(Duration::from_millis(100));
    assert!(
        !done.load(Ordering::Acquire),
        "{}: synchronize returned under a live guard",
        D::NAME
    );
    assert_eq!(stats.reclaimed.load(Ordering::Acquire), 0);
    release.store(true, Ordering::Release);
    reader.join().unwrap();
    syncer.join().unwrap();
    assert!(done.load(Ordering::Acquire));
    assert_eq!(stats.reclaimed.load(Ordering::Acquire), 1);
    assert!(!saw_dead.load(Ordering::Relaxed));
    // SAFETY: the last canary is retired once; the domain is then dropped (runs it).
    unsafe { domain.retire::<Canary, Poison>(slot.load(Ordering::Relaxed)) };
    drop(Arc::try_unwrap(domain).expect("threads joined"));
    assert_eq!(stats.reclaimed.load(Ordering::Acquire), 2);
    stats.bury_all();
}

#[test]
fn synchronize_waits_for_reader_seize() {
    synchronize_waits_for_reader::<Seize>();
}

#[test]
fn synchronize_waits_for_reader_epoch() {
    synchronize_waits_for_reader::<Epoch>();
}

/// Objects retired by threads that have exited (fewer than a batch) are still reached by
/// `synchronize` and by `Drop`.
fn retired_by_exited_threads<D: Domain>() {
    let stats = Arc::new(Stats::default());
    let domain = Arc::new(D::default());
    let hs: Vec<_> = (0..3)
        .map(|_| {
            let (domain, stats) = (domain.clone(), stats.clone());
            thread::spawn(move || {
                for _ in 0..5 {
                    // SAFETY: never shared, retired once.
                    unsafe { domain.retire::<Canary, Poison>(canary(&stats)) };
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(domain.pending(), 15);
    domain.synchronize();
    assert_eq!(domain.pending(), 0);
    assert_eq!(stats.reclaimed.load(Ordering::Acquire), 15);

    // Leak check through Drop alone.
    for _ in 0..100 {
        // SAFETY: never shared, retired once.
        unsafe { domain.retire::<Canary, Poison>(canary(&stats)) };
    }
    drop(Arc::try_unwrap(domain).expect("threads joined"));
    assert_eq!(stats.reclaimed.load(Ordering::Acquire), 115);
    assert_eq!(stats.double.load(Ordering::Relaxed), 0);
    stats.bury_all();
}

#[test]
fn retired_by_exited_threads_seize() {
    retired_by_exited_threads::<Seize>();
}

#[test]
fn retired_by_exited_threads_epoch() {
    retired_by_exited_threads::<Epoch>();
}

/// A destructor that retires another object on the same domain (chains), during
/// `synchronize` and during `Drop`.
struct Chain {
    next: *mut Chain,
    domain: *const (),
    count: Arc<AtomicUsize>,
}

struct ChainReclaim<D>(core::marker::PhantomData<D>);

// SAFETY: reclaims a boxed `Chain`, retiring its successor on the same live domain (the
// domain outlives every reclaim in these tests: it is dropped last and runs them itself).
unsafe impl<D: Domain> Reclaim<Chain> for ChainReclaim<D> {
    unsafe fn reclaim(ptr: *mut Chain) {
        // SAFETY: boxed, reclaimed once.
        let c = unsafe { Box::from_raw(ptr) };
        c.count.fetch_add(1, Ordering::Relaxed);
        if !c.next.is_null() {
            // SAFETY: the domain is alive while it runs our destructor; `next` is unshared.
            unsafe { (*(c.domain as *const D)).retire::<Chain, ChainReclaim<D>>(c.next) };
        }
    }
}

fn recursive_retire<D: Domain>() {
    let count = Arc::new(AtomicUsize::new(0));
    let domain = Box::new(D::default());
    let dp = &*domain as *const D as *const ();
    let mut head: *mut Chain = core::ptr::null_mut();
    for _ in 0..10 {
        head = Box::into_raw(Box::new(Chain {
            next: head,
            domain: dp,
            count: count.clone(),
        }));
    }
    // SAFETY: unshared chain, retired once.
    unsafe { domain.retire::<Chain, ChainReclaim<D>>(head) };
    domain.synchronize();
    assert!(count.load(Ordering::Relaxed) >= 1);
    drop(domain);
    assert_eq!(count.load(Ordering::Relaxed), 10, "{}", D::NAME);
}

#[test]
fn recursive_retire_seize() {
    recursive_retire::<Seize>();
}

#[test]
fn recursive_retire_epoch() {
    recursive_retire::<Epoch>();
}

#[test]
fn nested_guards_and_both_backends_side_by_side() {
    let s = Seize::default();
    let e = Epoch::default();
    let x = AtomicUsize::new(5);
    let g1 = s.enter();
    let g2 = s.enter();
    let g3 = e.enter();
    assert_eq!(g1.protect_word(&x, Ordering::Acquire), 5);
    assert_eq!(g2.protect_word(&x, Ordering::Relaxed), 5);
    assert_eq!(g3.protect_word(&x, Ordering::AcqRel), 5);
    g3.flush();
    drop((g1, g2, g3));
    s.synchronize();
    e.synchronize();
    assert_eq!(<Seize as Domain>::NAME, "seize");
    assert_eq!(<Epoch as Domain>::NAME, "epoch");
    assert!(format!("{s:?} {e:?}").contains("pending"));
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "would deadlock")]
fn synchronize_under_own_guard_panics_in_debug() {
    let d = Seize::default();
    let _g = d.enter();
    d.synchronize();
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "would deadlock")]
fn epoch_synchronize_under_own_guard_panics_in_debug() {
    let d = Epoch::default();
    let _g = d.enter();
    d.synchronize();
}

/// Regression: a partial flush while more threads are inside guards than it has objects,
/// by a thread that then exits, must not strand those objects (seize only retires a batch
/// with at least as many entries as active threads).
fn partial_flush_with_many_readers_then_exit<D: Domain>() {
    const READERS: usize = 6;
    let stats = Arc::new(Stats::default());
    let domain = Arc::new(D::default());
    let inside = Arc::new(Barrier::new(READERS + 1));
    let leave = Arc::new(Barrier::new(READERS + 1));
    let readers: Vec<_> = (0..READERS)
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
        let (domain, stats) = (domain.clone(), stats.clone());
        thread::spawn(move || {
            for _ in 0..2 {
                // SAFETY: never shared, retired once.
                unsafe { domain.retire::<Canary, Poison>(canary(&stats)) };
            }
            domain.flush();
        })
        .join()
        .unwrap();
    }
    leave.wait();
    for r in readers {
        r.join().unwrap();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let syncer = {
        let domain = domain.clone();
        thread::spawn(move || {
            domain.synchronize();
            let _ = tx.send(());
        })
    };
    assert!(
        rx.recv_timeout(Duration::from_secs(20)).is_ok(),
        "{}: synchronize stranded",
        D::NAME
    );
    syncer.join().unwrap();
    assert_eq!(stats.reclaimed.load(Ordering::Acquire), 2);
    assert_eq!(domain.pending(), 0);
    drop(Arc::try_unwrap(domain).expect("threads joined"));
    stats.bury_all();
}

#[test]
fn partial_flush_with_many_readers_then_exit_seize() {
    partial_flush_with_many_readers_then_exit::<Seize>();
}

#[test]
fn partial_flush_with_many_readers_then_exit_epoch() {
    partial_flush_with_many_readers_then_exit::<Epoch>();
}

/// State shared by the probes of `synchronize_waits_for_out_of_order_blocks`.
#[derive(Default)]
struct ProbeState {
    /// Set by the synchronizing thread right after `synchronize` returns.
    sync_returned: AtomicBool,
    /// Set when an "early" probe was destroyed after `synchronize` had returned.
    destroyed_after_return: AtomicBool,
    /// The first early probe waits for `sync_returned` (bounded) before finishing.
    waited: AtomicBool,
    early_destroyed: AtomicUsize,
    late_destroyed: AtomicUsize,
}

struct Probe {
    /// Retired before the `synchronize` call (it must wait for it).
    early: bool,
    state: Arc<ProbeState>,
}

struct ProbeReclaim;

// SAFETY: reclaims a boxed `Probe` once; touches only its own fields and shared atomics.
unsafe impl Reclaim<Probe> for ProbeReclaim {
    unsafe fn reclaim(ptr: *mut Probe) {
        // SAFETY: probes come from `Box::into_raw` and are reclaimed once.
        let p = unsafe { Box::from_raw(ptr) };
        let s = &p.state;
        if p.early {
            // The first early probe gives a `synchronize` that wrongly believes it is done
            // the time to return, so that returning early is observed deterministically.
            if !s.waited.swap(true, Ordering::AcqRel) {
                let deadline = std::time::Instant::now() + Duration::from_millis(300);
                // Acquire: pairs with the Release store after `synchronize` returns.
                while !s.sync_returned.load(Ordering::Acquire)
                    && std::time::Instant::now() < deadline
                {
                    thread::sleep(Duration::from_millis(1));
                }
            }
            // Acquire: as above.
            if s.sync_returned.load(Ordering::Acquire) {
                s.destroyed_after_return.store(true, Ordering::Relaxed);
            }
            // Release: read by the synchronizing thread right after `synchronize` returns.
            s.early_destroyed.fetch_add(1, Ordering::Release);
        } else {
            s.late_destroyed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Regression: `synchronize` must wait for every block retired before the call even when a
/// block retired *after* the call finishes first. With seize this is deterministic: a held
/// reader gets both blocks in its reservation list and, when it leaves, runs the newer one
/// first; a `synchronize` that only compared object counts returned at that point, while
/// the older block was still being destroyed.
fn synchronize_waits_for_out_of_order_blocks<D: Domain>() {
    let state = Arc::new(ProbeState::default());
    let domain = Arc::new(D::default());
    let inside = Arc::new(Barrier::new(2));
    let leave = Arc::new(Barrier::new(2));
    let reader = {
        let (domain, inside, leave) = (domain.clone(), inside.clone(), leave.clone());
        thread::spawn(move || {
            let g = domain.enter();
            inside.wait();
            leave.wait();
            drop(g);
        })
    };
    inside.wait();
    let retire = |early: bool| {
        for _ in 0..64 {
            let p = Box::into_raw(Box::new(Probe {
                early,
                state: state.clone(),
            }));
            // SAFETY: never shared, retired once; `ProbeReclaim` frees the box.
            unsafe { domain.retire::<Probe, ProbeReclaim>(p) };
        }
        // Hands off whatever a full shard did not.
        domain.flush();
    };
    retire(true);
    let syncer = {
        let (domain, state) = (domain.clone(), state.clone());
        thread::spawn(move || {
            domain.synchronize();
            // Acquire: pairs with the Release increments in the destructors.
            let seen = state.early_destroyed.load(Ordering::Acquire);
            // Release: pairs with the Acquire loads in `ProbeReclaim`.
            state.sync_returned.store(true, Ordering::Release);
            seen
        })
    };
    // Let the syncer take its snapshot before the later block is retired.
    thread::sleep(Duration::from_millis(100));
    retire(false);
    leave.wait();
    reader.join().unwrap();
    let seen = syncer.join().unwrap();
    assert_eq!(seen, 64, "{}: synchronize returned early", D::NAME);
    assert!(
        !state.destroyed_after_return.load(Ordering::Relaxed),
        "{}: an object retired before synchronize was destroyed after it returned",
        D::NAME
    );
    drop(Arc::try_unwrap(domain).expect("threads joined"));
    assert_eq!(state.early_destroyed.load(Ordering::Acquire), 64);
    assert_eq!(state.late_destroyed.load(Ordering::Relaxed), 64);
}

#[test]
fn synchronize_waits_for_out_of_order_blocks_seize() {
    synchronize_waits_for_out_of_order_blocks::<Seize>();
}

#[test]
fn synchronize_waits_for_out_of_order_blocks_epoch() {
    synchronize_waits_for_out_of_order_blocks::<Epoch>();
}

/// An object whose destructor retires `leaves` more objects on the same domain, enough to
/// fill whole blocks, which are then handed to the backend from inside the destructor.
struct Fan {
    leaves: usize,
    domain: *const (),
    count: Arc<AtomicUsize>,
}

struct FanReclaim<D>(core::marker::PhantomData<D>);

// SAFETY: reclaims a boxed `Fan` once and retires fresh, unshared boxes on the same live
// domain (which outlives every reclaim here: it is dropped last and runs them itself).
unsafe impl<D: Domain> Reclaim<Fan> for FanReclaim<D> {
    unsafe fn reclaim(ptr: *mut Fan) {
        // SAFETY: boxed, reclaimed once.
        let f = unsafe { Box::from_raw(ptr) };
        f.count.fetch_add(1, Ordering::Relaxed);
        for _ in 0..f.leaves {
            let leaf = Box::into_raw(Box::new(Fan {
                leaves: 0,
                domain: f.domain,
                count: f.count.clone(),
            }));
            // SAFETY: the domain is alive while it runs our destructor; `leaf` is unshared.
            unsafe { (*(f.domain as *const D)).retire::<Fan, FanReclaim<D>>(leaf) };
        }
    }
}

/// Destructors that retire whole blocks again, during `synchronize` and during `Drop`.
fn destructors_retire_full_blocks<D: Domain>() {
    const LEAVES: usize = 200;
    let count = Arc::new(AtomicUsize::new(0));
    let domain = Box::new(D::default());
    let dp = &*domain as *const D as *const ();
    let root = || {
        Box::into_raw(Box::new(Fan {
            leaves: LEAVES,
            domain: dp,
            count: count.clone(),
        }))
    };
    // SAFETY: unshared, retired once.
    unsafe { domain.retire::<Fan, FanReclaim<D>>(root()) };
    domain.synchronize();
    assert!(count.load(Ordering::Relaxed) >= 1, "{}", D::NAME);
    // The leaves were retired before this call (by the root's destructor).
    domain.synchronize();
    assert_eq!(count.load(Ordering::Relaxed), 1 + LEAVES, "{}", D::NAME);
    assert_eq!(domain.pending(), 0, "{}", D::NAME);
    // SAFETY: unshared, retired once.
    unsafe { domain.retire::<Fan, FanReclaim<D>>(root()) };
    drop(domain);
    assert_eq!(
        count.load(Ordering::Relaxed),
        2 * (1 + LEAVES),
        "{}",
        D::NAME
    );
}

#[test]
fn destructors_retire_full_blocks_seize() {
    destructors_retire_full_blocks::<Seize>();
}

#[test]
fn destructors_retire_full_blocks_epoch() {
    destructors_retire_full_blocks::<Epoch>();
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "pinned by a crossbeam-epoch guard")]
fn epoch_synchronize_while_pinned_panics_in_debug() {
    let a = Epoch::default();
    let b = Epoch::default();
    let _g = b.enter();
    a.synchronize();
}
