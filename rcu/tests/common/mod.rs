//! Helpers shared by the liveness tests: a bounded runner and objects that log their
//! destruction.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use rcu::{Domain, Reclaim};

pub fn stress_scale() -> usize {
    if std::env::var_os("MAPLE_STRESS").is_some() {
        20
    } else {
        1
    }
}

/// Run `f` on a worker thread; fail (instead of hanging) if it takes longer than `secs`.
/// A panic inside `f` is propagated.
pub fn bounded<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let h = thread::Builder::new()
        .name(what.to_string())
        .spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(f));
            let _ = tx.send(r);
        })
        .unwrap();
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(v)) => {
            h.join().unwrap();
            v
        }
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("{what}: did not finish within {secs} s (hang)"),
    }
}

/// An object that counts its destructions in shared counters; optionally panics.
pub struct Obj {
    index: usize,
    panics: bool,
    log: Arc<Log>,
}

#[derive(Default)]
pub struct Log {
    pub destroyed: AtomicUsize,
    /// One flag per object index (for tests that check which ones were destroyed).
    pub flags: Vec<AtomicBool>,
}

impl Log {
    pub fn with_flags(n: usize) -> Arc<Self> {
        Arc::new(Log {
            destroyed: AtomicUsize::new(0),
            flags: (0..n).map(|_| AtomicBool::new(false)).collect(),
        })
    }
}

pub fn obj(log: &Arc<Log>, index: usize, panics: bool) -> *mut Obj {
    Box::into_raw(Box::new(Obj {
        index,
        panics,
        log: log.clone(),
    }))
}

impl Drop for Obj {
    fn drop(&mut self) {
        if let Some(f) = self.log.flags.get(self.index) {
            // Release: pairs with the Acquire loads of the checking thread.
            assert!(
                !f.swap(true, Ordering::Release),
                "object {} destroyed twice",
                self.index
            );
        }
        // Release: as above.
        self.log.destroyed.fetch_add(1, Ordering::Release);
        if self.panics {
            panic!("destructor of object {} panics", self.index);
        }
    }
}

pub struct Boxed;

// SAFETY: objects come from `Box::into_raw` and are reclaimed once.
unsafe impl Reclaim<Obj> for Boxed {
    unsafe fn reclaim(ptr: *mut Obj) {
        // SAFETY: see above.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

/// Retire a fresh object with index `i`.
pub fn retire<D: Domain>(d: &D, log: &Arc<Log>, i: usize, panics: bool) {
    // SAFETY: never shared, retired once, from `Box::into_raw`.
    unsafe { d.retire::<Obj, Boxed>(obj(log, i, panics)) };
}
