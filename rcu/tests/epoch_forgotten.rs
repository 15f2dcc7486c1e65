//! `Epoch` with a forgotten guard. A guard that is never dropped pins the thread in
//! crossbeam's global collector forever, which stops reclamation for every crossbeam user
//! in the process: this test gets a process (test binary) of its own, and its scenarios run
//! in order inside one test.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use rcu::{Domain, Epoch, Reclaim};

struct Obj(Arc<AtomicUsize>);

impl Drop for Obj {
    fn drop(&mut self) {
        // Release: read by the test thread after the domain drops.
        self.0.fetch_add(1, Ordering::Release);
    }
}

struct Boxed;

// SAFETY: objects come from `Box::into_raw` and are reclaimed once.
unsafe impl Reclaim<Obj> for Boxed {
    unsafe fn reclaim(ptr: *mut Obj) {
        // SAFETY: see above.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

fn retire(d: &Epoch, n: &Arc<AtomicUsize>) {
    // SAFETY: never shared, retired once, from `Box::into_raw`.
    unsafe { d.retire::<Obj, Boxed>(Box::into_raw(Box::new(Obj(n.clone())))) };
}

/// Run `f` on a worker thread; fail instead of hanging.
fn bounded(secs: u64, what: &'static str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(secs)).is_ok(),
        "{what}: did not finish within {secs} s (hang)"
    );
}

/// Before any forgotten pin: normal reclamation. Then a guard is forgotten and more objects
/// are retired: nothing is reclaimed while the domain lives, yet dropping the domain returns
/// and destroys everything (it owns every block in flight). A second domain, created while
/// the forgotten pin exists, also drops without waiting; and a guard forgotten on a thread
/// that has exited changes nothing.
#[test]
fn epoch_forgotten_guard_drop_returns_and_destroys_everything() {
    bounded(60, "epoch: forgotten guard", || {
        let n = Arc::new(AtomicUsize::new(0));
        let domain = Epoch::default();
        for _ in 0..100 {
            retire(&domain, &n);
        }
        domain.synchronize();
        assert_eq!(n.load(Ordering::Acquire), 100);

        std::mem::forget(domain.enter());
        for _ in 0..1000 {
            retire(&domain, &n);
        }
        domain.flush();
        thread::sleep(Duration::from_millis(20));
        domain.flush();
        // The pin never leaves: nothing retired after it was taken can be reclaimed.
        assert_eq!(n.load(Ordering::Acquire), 100);
        assert_eq!(domain.pending(), 1000);
        drop(domain);
        assert_eq!(n.load(Ordering::Acquire), 1100);

        // A guard forgotten on a thread that exits.
        let other = Arc::new(Epoch::default());
        {
            let other = other.clone();
            thread::spawn(move || std::mem::forget(other.enter()))
                .join()
                .unwrap();
        }
        for _ in 0..200 {
            retire(&other, &n);
        }
        other.flush();
        drop(Arc::try_unwrap(other).expect("thread joined"));
        assert_eq!(n.load(Ordering::Acquire), 1300);
    });
}
