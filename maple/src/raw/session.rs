//! The writer's session: everything the one writer keeps between and around writes.
//!
//! A [`Session`] lives inside the tree's write lock. Each write runs a
//! [`Writer`](super::write::Writer) on it and then disposes of what the write unlinked:
//!
//! - **duplicate counts**: a store into the middle of a range leaves the same entry word on
//!   both sides; for owning entry types the session counts the extra slots of each word
//!   (`dups`), so a value is retired or dropped only with its last slot;
//! - **RCU mode**: the replaced nodes are marked dead (readers that reach them restart) and
//!   join the **dead batch**; the batch is retired through the tree's domain in
//!   [`BATCH_NODES`]-node [`Batch`](super::pool::Batch)es, which return the nodes to the
//!   tree's pool after their grace period; removed values are retired one by one;
//! - **exclusive mode** (`&mut`, no readers): replaced nodes go straight to the **stash**
//!   of spare node memory (or the allocator), removed values are dropped at once.
//!
//! Panic safety: all bookkeeping the tree's consistency depends on (counts, dead marks, the
//! dead batch) is done before any foreign code runs (value destructors, domain calls that
//! may run older destructors). A list being handed over is taken out of the session first,
//! so a panic leaks its rest instead of handing anything over twice.

use std::collections::HashMap;

use rcu::Domain;

use super::pool::{self, Batch, RecycleBatch, Stash, BATCH_NODES, POOL_CAP};
use super::write::{Garbage, Mode, StoreKind, Writer};
use super::RawTree;
use crate::entry::{drop_word, Entry};

/// The writer's state; see the module docs.
///
/// # Invariants
/// - A session belongs to one tree (it lives in that tree's write lock) and is dropped only
///   with it, when no read section of the tree can exist any more.
/// - Every address in `dead` is a node of that tree that has been unlinked and marked dead
///   and is not yet retired: the session owns it.
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// What the write in progress unlinked (scratch, reused).
    garbage: Garbage,
    /// Spare node memory the writer builds from.
    stash: Stash,
    /// The dead batch: unlinked, marked dead, waiting to be retired.
    dead: Vec<usize>,
    /// For owning entry types: how many slots beyond the first hold each word.
    dups: HashMap<usize, usize>,
}

impl Session {
    /// One RCU-mode store of `word` over `[first, last]`; readers may be present.
    ///
    /// # Safety
    /// The caller holds `tree`'s write lock, and this session is the one inside it;
    /// `domain` is the domain `tree`'s readers enter; `word` is 0 or an entry word of `E`
    /// handed to the tree.
    pub(crate) unsafe fn store<E: Entry, D: Domain>(
        &mut self,
        tree: &RawTree,
        domain: &D,
        first: usize,
        last: usize,
        word: usize,
    ) -> StoreKind {
        // Every write takes what reclamation returned (a Relaxed load when nothing did),
        // so the shared list never holds more than the nodes retired since the last write.
        self.stash.refill(&tree.pool);
        // SAFETY: the lock makes this the tree's one writer; the garbage is disposed of
        // below, after the write returned.
        let mut w = unsafe { Writer::new(tree, Mode::Rcu, &mut self.garbage, &mut self.stash) };
        // SAFETY: the caller's contract on `word`.
        let kind = unsafe { w.store(first, last, word) };
        #[cfg(any(test, feature = "stats"))]
        tree.kinds.note(kind);
        // SAFETY: the caller's contract.
        unsafe { self.dispose_rcu::<E, D>(tree, domain) };
        kind
    }

    /// Dispose of what an RCU-mode write unlinked: dead marks, the dead batch, retired
    /// values.
    ///
    /// # Safety
    /// As for [`Session::store`], right after the write published.
    unsafe fn dispose_rcu<E: Entry, D: Domain>(&mut self, tree: &RawTree, domain: &D) {
        // 1. Bookkeeping: no foreign code runs until every step here is done.
        self.count_dups::<E>();
        for &n in &self.garbage.replaced {
            // SAFETY: the write has published the replacement, so the node is unreachable
            // for new readers; each replaced node is recorded once, so marked once.
            unsafe { n.mark_dead() };
            // INVARIANT: unlinked and marked dead, owned by the session from now on.
            self.dead.push(n.addr());
        }
        // 2. Hand over (domain calls may run foreign destructors, which may panic).
        if self.dead.len() >= BATCH_NODES {
            // SAFETY: the caller's contract on `domain`.
            unsafe { self.retire_dead(tree, domain) };
        }
        let mut values = core::mem::take(&mut self.garbage.values);
        for &v in &values {
            // SAFETY: words whose last slot went are unreachable for new readers and are
            // retired once (shared words are counted in `dups`); `domain` is the readers'.
            unsafe { E::retire_word(domain, v) };
        }
        values.clear();
        self.garbage.values = values;
    }

    /// Erase (in RCU mode) the whole range holding `index`, if it holds an entry: returns
    /// the range and the entry word, which has been retired (it stays valid for sections
    /// that began before this call, the caller's own included).
    ///
    /// # Safety
    /// As for [`Session::store`].
    pub(crate) unsafe fn erase<E: Entry, D: Domain>(
        &mut self,
        tree: &RawTree,
        domain: &D,
        index: usize,
    ) -> Option<(usize, usize, usize)> {
        // Every write takes what reclamation returned (a Relaxed load when nothing did),
        // so the shared list never holds more than the nodes retired since the last write.
        self.stash.refill(&tree.pool);
        // SAFETY: as in `store`.
        let mut w = unsafe { Writer::new(tree, Mode::Rcu, &mut self.garbage, &mut self.stash) };
        let (first, last, word, _kind) = w.erase(index)?;
        #[cfg(any(test, feature = "stats"))]
        tree.kinds.note(_kind);
        // SAFETY: the caller's contract.
        unsafe { self.dispose_rcu::<E, D>(tree, domain) };
        Some((first, last, word))
    }

    /// One store with `&mut` access to the tree: no reader exists, so the write changes
    /// nodes in place where it can, and what it replaces is freed at once.
    ///
    /// # Safety
    /// The caller has exclusive access to `tree` (no reader or writer can exist) and this
    /// is its session; `word` is 0 or an entry word of `E` handed to the tree.
    pub(crate) unsafe fn store_exclusive<E: Entry>(
        &mut self,
        tree: &RawTree,
        first: usize,
        last: usize,
        word: usize,
    ) -> StoreKind {
        // SAFETY: exclusive access: no readers, no other writer.
        let mut w =
            unsafe { Writer::new(tree, Mode::Exclusive, &mut self.garbage, &mut self.stash) };
        // SAFETY: the caller's contract on `word`.
        let kind = unsafe { w.store(first, last, word) };
        #[cfg(any(test, feature = "stats"))]
        tree.kinds.note(kind);
        // Bookkeeping before any foreign code (the drops below run user `Drop`).
        self.count_dups::<E>();
        for &n in &self.garbage.replaced {
            if self.stash.len() < POOL_CAP {
                // SAFETY: unlinked and unreachable (no readers exist): reuse it directly.
                unsafe { self.stash.give(n.addr()) };
            } else {
                // SAFETY: as above, freed once.
                unsafe { pool::free_all(&[n.addr()]) };
            }
        }
        self.garbage.replaced.clear();
        let mut values = core::mem::take(&mut self.garbage.values);
        for &v in &values {
            // SAFETY: overwritten words owned by the tree, now unreachable; dropped once.
            unsafe { drop_word::<E>(v) };
        }
        values.clear();
        self.garbage.values = values;
        kind
    }

    /// The write section ends: hand the dead batch to the domain.
    ///
    /// # Safety
    /// As for [`Session::store`] (`domain` is the readers' domain of this session's tree).
    pub(crate) unsafe fn end_section<D: Domain>(&mut self, tree: &RawTree, domain: &D) {
        if !self.dead.is_empty() {
            // SAFETY: forwarded.
            unsafe { self.retire_dead(tree, domain) };
        }
    }

    /// Retire the dead batch as [`Batch`]es that return the nodes to the tree's pool after
    /// their grace period.
    ///
    /// # Safety
    /// `domain` is the domain `tree`'s readers enter.
    unsafe fn retire_dead<D: Domain>(&mut self, tree: &RawTree, domain: &D) {
        // Taken out first: if a domain call panics (a foreign destructor run during the
        // hand-off), the nodes not yet handed over are leaked with the taken list instead
        // of staying in the batch to be retired a second time.
        let mut dead = core::mem::take(&mut self.dead);
        // SAFETY: the nodes are unlinked and marked dead (the field's invariant) and handed
        // over once; the domain reclaims each batch after every reader that could see the
        // nodes has left.
        unsafe {
            pool::pack(&tree.pool, &mut self.stash, &dead, |b| {
                domain.retire::<Batch, RecycleBatch>(b)
            })
        };
        dead.clear();
        self.dead = dead;
    }

    /// Account for the write's duplicated and removed words: leaves in the garbage's
    /// values only the words whose last slot went.
    fn count_dups<E: Entry>(&mut self) {
        if !E::OWNED {
            return;
        }
        for &w in &self.garbage.dups {
            *self.dups.entry(w).or_insert(0) += 1;
        }
        if !self.dups.is_empty() {
            let mut values = core::mem::take(&mut self.garbage.values);
            values.retain(|&w| !self.release(w));
            self.garbage.values = values;
        }
    }

    /// One slot holding `w` goes away: true if another slot still holds it.
    pub(crate) fn release(&mut self, w: usize) -> bool {
        match self.dups.get_mut(&w) {
            Some(c) => {
                *c -= 1;
                if *c == 0 {
                    self.dups.remove(&w);
                }
                true
            }
            None => false,
        }
    }

    /// Free the stash of spare nodes; returns how many.
    pub(crate) fn shrink(&mut self) -> usize {
        self.stash.clear()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: the type's invariants: the session drops with its tree, when no reader
        // can hold a dead node any more, and the dead batch is owned by the session.
        unsafe { pool::free_all(&self.dead) };
    }
}
