//! Debug-build tracking of which domains the current thread holds guards of, so that
//! `synchronize()` under a guard of the same domain panics instead of hanging.

#[cfg(debug_assertions)]
use std::cell::RefCell;

#[cfg(all(debug_assertions, not(loom)))]
thread_local! {
    /// (domain address, nesting depth) for every domain this thread is inside.
    static HELD: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
}

// Under loom all model threads share one OS thread, so the loom build needs loom's
// per-model-thread locals.
#[cfg(all(debug_assertions, loom))]
loom::thread_local! {
    /// (domain address, nesting depth) for every domain this thread is inside.
    static HELD: RefCell<Vec<(usize, usize)>> = RefCell::new(Vec::new());
}

/// Record that this thread entered a guard of the domain at `addr`.
#[inline]
pub(crate) fn enter(addr: usize) {
    #[cfg(debug_assertions)]
    let _ = HELD.try_with(|h| {
        let mut h = h.borrow_mut();
        match h.iter_mut().find(|e| e.0 == addr) {
            Some(e) => e.1 += 1,
            None => h.push((addr, 1)),
        }
    });
    #[cfg(not(debug_assertions))]
    let _ = addr;
}

/// Record that this thread left a guard of the domain at `addr`.
#[inline]
pub(crate) fn leave(addr: usize) {
    #[cfg(debug_assertions)]
    let _ = HELD.try_with(|h| {
        let mut h = h.borrow_mut();
        if let Some(i) = h.iter().position(|e| e.0 == addr) {
            h[i].1 -= 1;
            if h[i].1 == 0 {
                h.swap_remove(i);
            }
        }
    });
    #[cfg(not(debug_assertions))]
    let _ = addr;
}

/// Panic (debug builds) if this thread holds a guard of the domain at `addr`.
#[inline]
pub(crate) fn assert_not_held(addr: usize, what: &str) {
    #[cfg(debug_assertions)]
    {
        let held = HELD
            .try_with(|h| h.borrow().iter().any(|e| e.0 == addr))
            .unwrap_or(false);
        assert!(
            !held,
            "{what}: called while this thread holds a guard of the same domain (would deadlock)"
        );
    }
    #[cfg(not(debug_assertions))]
    let _ = (addr, what);
}
