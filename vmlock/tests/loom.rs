//! loom models of the per-VMA protocols.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release -p maple-vmlock --test loom`
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use rcu::SeqCount;
use vmlock::raw::{RefState, Vma};
use vmlock::Prot;

const MM: usize = 7;
const OTHER_MM: usize = 9;

/// A reader following `lock_vma_under_rcu`'s checks on `vma` for address space `MM`
/// whose current sequence lives in `mm_seq`. Returns the range it read while holding the
/// read lock, or `None` if it gave up.
fn read_lock(vma: &Vma, mm_seq: &AtomicUsize) -> Option<(usize, usize)> {
    if vma.is_write_locked(mm_seq.load(Ordering::Acquire)) {
        return None;
    }
    vma.refcnt().try_get().ok()?;
    if vma.mm_id() != MM || vma.is_write_locked(mm_seq.load(Ordering::Acquire)) {
        vma.refcnt().put();
        return None;
    }
    let r = vma.range();
    vma.refcnt().put();
    Some(r)
}

/// Reader vs a writer that write-locks, changes and then detaches the VMA: a reader that
/// gets the read lock sees the old, untouched VMA; after detach the count is 0 and no
/// reader holds a reference.
#[test]
fn refcount_reader_vs_writer_vs_detach() {
    loom::model(|| {
        let vma = Arc::new(Vma::new());
        vma.init_anon(0x1000, 0x3000, Prot::READ, MM, usize::MAX);
        vma.refcnt().attach();
        let mm_seq = Arc::new(AtomicUsize::new(0));

        let r = {
            let (vma, mm_seq) = (vma.clone(), mm_seq.clone());
            thread::spawn(move || read_lock(&vma, &mm_seq))
        };
        // Writer: open a write section (odd), write-lock, change, detach, close.
        mm_seq.store(1, Ordering::Release);
        vma.start_write(1);
        vma.update_anon(0x4000, 0x7000, Prot::WRITE);
        vma.refcnt().detach();
        assert_eq!(vma.refcnt().state(), RefState::Detached);
        mm_seq.store(2, Ordering::Release);

        if let Some(range) = r.join().unwrap() {
            // Only the state before the writer touched it can have been read-locked.
            assert_eq!(range, (0x1000, 0x3000));
        }
        assert_eq!(vma.refcnt().try_get(), Err(vmlock::raw::Refused::Detached));
    });
}

/// Two readers and a writer's `start_write`: readers that hold the lock are drained before
/// the VMA is marked; the count returns to 1 (attached, unlocked by refcount).
#[test]
fn refcount_two_readers_vs_start_write() {
    loom::model(|| {
        let vma = Arc::new(Vma::new());
        vma.init_anon(0x1000, 0x2000, Prot::READ, MM, usize::MAX);
        vma.refcnt().attach();
        let mm_seq = Arc::new(AtomicUsize::new(0));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (vma, mm_seq) = (vma.clone(), mm_seq.clone());
                thread::spawn(move || read_lock(&vma, &mm_seq))
            })
            .collect();
        mm_seq.store(1, Ordering::Release);
        vma.start_write(1);
        assert!(vma.is_write_locked(1));
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(vma.refcnt().state(), RefState::Attached);
    });
}

/// Type-stable reuse: the VMA is detached from `MM` and re-initialised for another address
/// space while a reader of `MM` that found it earlier tries to lock it. The reader must
/// never accept it as `MM`'s VMA in its new life.
#[test]
fn reuse_by_another_mm_is_rejected() {
    loom::model(|| {
        let vma = Arc::new(Vma::new());
        vma.init_anon(0x1000, 0x2000, Prot::READ, MM, usize::MAX);
        vma.refcnt().attach();
        let mm_seq = Arc::new(AtomicUsize::new(0));
        let r = {
            let (vma, mm_seq) = (vma.clone(), mm_seq.clone());
            thread::spawn(move || read_lock(&vma, &mm_seq))
        };
        // Writer of MM: unmap (lock, detach, recycle).
        mm_seq.store(1, Ordering::Release);
        vma.start_write(1);
        vma.refcnt().detach();
        vma.clear_owner();
        mm_seq.store(2, Ordering::Release);
        // Reused at once by another address space (its own sequence, unlocked).
        vma.init_anon(0x8000, 0x9000, Prot::WRITE, OTHER_MM, usize::MAX);
        vma.refcnt().attach();
        if let Some(range) = r.join().unwrap() {
            assert_eq!(range, (0x1000, 0x2000));
        }
    });
}

/// Speculation (seqcount-validated copy of the fields) never accepts a torn VMA.
#[test]
fn speculation_never_torn() {
    loom::model(|| {
        let seq = Arc::new(SeqCount::new());
        let vma = Arc::new(Vma::new());
        vma.init_anon(0x1000, 0x2000, Prot::READ, MM, usize::MAX);
        vma.refcnt().attach();
        let r = {
            let (seq, vma) = (seq.clone(), vma.clone());
            thread::spawn(move || {
                let s = seq.try_read_begin()?;
                let info = vma.info();
                (!seq.read_retry(s)).then_some((info.start, info.end, info.prot))
            })
        };
        // Writer: one write section replacing the whole VMA state.
        seq.write_begin();
        vma.start_write(seq.raw());
        vma.update_anon(0x4000, 0x7000, Prot::WRITE);
        seq.write_end();
        if let Some(seen) = r.join().unwrap() {
            assert!(
                seen == (0x1000, 0x2000, Prot::READ) || seen == (0x4000, 0x7000, Prot::WRITE),
                "torn speculative read: {seen:x?}"
            );
        }
    });
}

/// Speculation vs type-stable reuse by *another* address space (review finding F4): the
/// writer of `MM` removes the VMA from its tree (`entry`: 1 = the VMA, 0 = empty; a tree
/// store publishes with Release) and frees it inside its write section; a writer of
/// `OTHER_MM` on a different thread, ordered after that free (in `Mm` the cache's lock,
/// here a join), re-initialises it. A speculative reader of `MM` that found the VMA and
/// loads any of the new fields must then see `MM`'s sequence move and retry:
/// `Vma::init`'s Release fence pairs with `read_retry`'s Acquire fence. Without that fence
/// this model finds a reader accepting a range torn between the two lives.
#[test]
fn speculation_vs_reuse_by_another_mm() {
    loom::model(|| {
        let seq = Arc::new(SeqCount::new());
        let entry = Arc::new(AtomicUsize::new(1));
        let vma = Arc::new(Vma::new());
        vma.init_anon(0x1000, 0x2000, Prot::READ, MM, usize::MAX);
        vma.refcnt().attach();
        let r = {
            let (seq, entry, vma) = (seq.clone(), entry.clone(), vma.clone());
            thread::spawn(move || {
                let s = seq.try_read_begin()?;
                // Acquire: the tree walk (an RCU dereference).
                let found = (entry.load(Ordering::Acquire) == 1).then(|| vma.range());
                (!seq.read_retry(s)).then_some(found)
            })
        };
        // Writer of MM: unmap inside its write section (lock, remove, detach, recycle).
        let w = {
            let (seq, entry, vma) = (seq.clone(), entry.clone(), vma.clone());
            thread::spawn(move || {
                seq.write_begin();
                vma.start_write(seq.raw());
                // Release: the tree store that punches the VMA out.
                entry.store(0, Ordering::Release);
                vma.refcnt().detach();
                vma.clear_owner();
                seq.write_end();
            })
        };
        // Writer of OTHER_MM (this thread): gets the freed object after MM's writer gave it
        // back, and re-initialises it for itself.
        w.join().unwrap();
        vma.init_anon(0x8000, 0x9000, Prot::WRITE, OTHER_MM, usize::MAX);
        vma.refcnt().attach();
        if let Some(Some(range)) = r.join().unwrap() {
            assert_eq!(range, (0x1000, 0x2000), "speculation accepted a reused VMA");
        }
    });
}
