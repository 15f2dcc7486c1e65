//! `vm_refcnt`: the per-VMA reference count that doubles as the VMA read lock.
//!
//! | value | state |
//! |---|---|
//! | `0` | detached: not in any tree; readers can never raise it from 0 |
//! | `1` | attached, unlocked or write-locked (write-locked = `vm_lock_seq == mm_lock_seq`) |
//! | `1 + n` | attached and read-locked (or briefly touched) by `n` readers |
//! | `EXCLUDE + x` | a writer or detacher is waiting for readers to leave; no reader enters |
//!
//! Readers increment only if the count is neither `0` nor at/above [`REF_LIMIT`]; a writer
//! adds [`EXCLUDE`] (which puts the count above the limit, so no new reader gets in) and
//! waits until only its own expected references remain.

use crate::sync::atomic::{AtomicUsize, Ordering};

/// Added by a writer or detacher while it drains readers (bit 30, like the kernel's
/// `VMA_LOCK_OFFSET`).
pub const EXCLUDE: usize = 1 << 30;
/// Readers refuse to increment at or above this value (so it also covers `EXCLUDE`).
pub const REF_LIMIT: usize = EXCLUDE - 1;

/// Why a reader could not take a reference.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Refused {
    /// The count was 0: the VMA is detached (possibly freed and not yet reused).
    Detached,
    /// A writer/detacher is excluding readers, or the reader limit is reached.
    Excluded,
}

/// A decoded count, for tests and debugging.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RefState {
    /// Count 0.
    Detached,
    /// Count 1.
    Attached,
    /// Count `1 + readers`.
    ReadLocked {
        /// Readers holding a reference.
        readers: usize,
    },
    /// `EXCLUDE` is set; `rest` is the remaining count (attach reference + readers).
    Excluding {
        /// Count without the `EXCLUDE` bit.
        rest: usize,
    },
}

/// The reference count of one VMA; see the module docs.
#[derive(Debug)]
pub struct VmRefcnt {
    count: AtomicUsize,
}

impl Default for VmRefcnt {
    fn default() -> Self {
        Self::new()
    }
}

impl VmRefcnt {
    /// A detached count (0).
    pub fn new() -> Self {
        VmRefcnt {
            count: AtomicUsize::new(0),
        }
    }

    /// The decoded state (a `Relaxed` snapshot).
    pub fn state(&self) -> RefState {
        // Relaxed: a diagnostic snapshot, nothing is read on its strength.
        let v = self.count.load(Ordering::Relaxed);
        match v {
            0 => RefState::Detached,
            1 => RefState::Attached,
            v if v >= EXCLUDE => RefState::Excluding { rest: v - EXCLUDE },
            v => RefState::ReadLocked { readers: v - 1 },
        }
    }

    /// The raw count (`Relaxed`).
    pub fn raw(&self) -> usize {
        // Relaxed: a diagnostic snapshot.
        self.count.load(Ordering::Relaxed)
    }

    /// Detached → attached (0 → 1). Called by the writer before the VMA is published.
    pub fn attach(&self) {
        debug_assert_eq!(self.raw(), 0, "attach of an attached VMA");
        // Release: every field initialised before this store is visible to a reader whose
        // Acquire increment reads a count derived from it.
        self.count.store(1, Ordering::Release);
    }

    /// Reader: increment unless detached or excluded/limited.
    pub fn try_get(&self) -> Result<(), Refused> {
        // Relaxed: the value only seeds the CAS loop; the CAS carries the ordering.
        let mut cur = self.count.load(Ordering::Relaxed);
        loop {
            if cur == 0 {
                return Err(Refused::Detached);
            }
            if cur >= REF_LIMIT {
                return Err(Refused::Excluded);
            }
            // Acquire on success: synchronises with the writer's Release (attach or the
            // end of an exclusion), so the reader sees the VMA fields and `vm_lock_seq`
            // that writer stored. Relaxed on failure: we only retry.
            match self.count.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(v) => cur = v,
            }
        }
    }

    /// Reader: drop a reference taken with [`try_get`](Self::try_get).
    pub fn put(&self) {
        // Release: the reader's loads of the VMA happen-before a writer's Acquire load that
        // sees the count drop, so the writer never changes fields under a reader.
        let old = self.count.fetch_sub(1, Ordering::Release);
        debug_assert!(old & (EXCLUDE - 1) >= 1, "put without a reference");
    }

    /// Writer: exclude readers and wait until exactly `keep` references remain besides
    /// `EXCLUDE` (1 for an attached VMA: the attach reference). Returns with `EXCLUDE` set;
    /// end with [`unexclude`](Self::unexclude) (`detach` clears it itself).
    pub fn exclude_and_wait(&self, keep: usize) {
        // Acquire: pairs with readers' Release `put`s already in the modification order.
        // Release: readers that fail on the new value need no ordering, but a reader whose
        // increment came first is waited for below.
        let old = self.count.fetch_add(EXCLUDE, Ordering::AcqRel);
        debug_assert!(old < EXCLUDE, "two writers excluding at once");
        let mut spins = 0u32;
        // Acquire: once only `keep` remain, every leaving reader's loads happen-before what
        // the writer does next.
        while self.count.load(Ordering::Acquire) != EXCLUDE + keep {
            spins += 1;
            if spins < 64 {
                crate::sync::spin_loop();
            } else {
                crate::sync::yield_now();
            }
        }
    }

    /// Writer: stop excluding readers.
    pub fn unexclude(&self) {
        // Release: stores made while readers were excluded (e.g. `vm_lock_seq`) are visible
        // to a reader whose Acquire increment reads the resulting value.
        self.count.fetch_sub(EXCLUDE, Ordering::Release);
    }

    /// Writer: drop the attach reference. Waits for temporary readers (which are about to
    /// notice the write lock and leave) and ends at 0: detached, no reader inside.
    ///
    /// The caller has write-locked the VMA (its `vm_lock_seq` is the owner's current odd
    /// `mm_lock_seq`), or no reader can reach it any more; see the window below.
    pub fn detach(&self) {
        // AcqRel: Acquire so that if we reach 0 here every earlier reader's `put` is ordered
        // before our return; Release so a reader that fails on 0 needs nothing more, and so
        // that a reader who still gets in (the window below) sees the write lock.
        let old = self.count.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(
            (1..EXCLUDE).contains(&old),
            "detach of a detached or excluded VMA"
        );
        if old == 1 {
            return;
        }
        // Window: from the decrement above until `exclude_and_wait` adds `EXCLUDE`, the
        // count is a plain reader count `n >= 1` (or 0 once they left), so a new reader can
        // still increment it. That is harmless: the VMA is write-locked by the caller's
        // section, and the reader's Acquire increment reads our Release decrement (or a
        // later read-modify-write of its release sequence), so it sees `vm_lock_seq` equal
        // to the owner's odd sequence, reports the VMA as locked, drops its reference and
        // leaves; `exclude_and_wait(0)` waits for it like for any other reader. A count
        // that drops to 0 inside the window refuses readers (`Detached`), and
        // `exclude_and_wait` then finds only `EXCLUDE`.
        self.exclude_and_wait(0);
        self.finish_detach();
    }

    /// Clear `EXCLUDE` after `exclude_and_wait(0)`, leaving the count at 0.
    fn finish_detach(&self) {
        // Release: pairs with nothing in particular for readers (they refuse on 0); keeps the
        // writer's earlier stores ordered before a later re-attach's Release anyway.
        let old = self.count.fetch_sub(EXCLUDE, Ordering::Release);
        debug_assert_eq!(old, EXCLUDE);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn states() {
        let r = VmRefcnt::new();
        assert_eq!(r.try_get(), Err(Refused::Detached));
        r.attach();
        assert_eq!(r.state(), RefState::Attached);
        r.try_get().unwrap();
        r.try_get().unwrap();
        assert_eq!(r.state(), RefState::ReadLocked { readers: 2 });
        r.put();
        r.put();
        r.exclude_and_wait(1);
        assert_eq!(r.state(), RefState::Excluding { rest: 1 });
        assert_eq!(r.try_get(), Err(Refused::Excluded));
        r.unexclude();
        r.detach();
        assert_eq!(r.state(), RefState::Detached);
        assert_eq!(r.try_get(), Err(Refused::Detached));
    }

    #[test]
    fn detach_waits_for_temporary_reader() {
        let r = std::sync::Arc::new(VmRefcnt::new());
        r.attach();
        r.try_get().unwrap();
        let r2 = r.clone();
        let t = std::thread::spawn(move || r2.detach());
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(matches!(r.state(), RefState::Excluding { rest: 1 }));
        r.put();
        t.join().unwrap();
        assert_eq!(r.state(), RefState::Detached);
    }
}
