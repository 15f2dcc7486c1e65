//! Node recycling: a bounded per-tree cache of node memory.
//!
//! Allocating a 256-byte, 256-aligned node goes through the allocator's aligned path, which
//! is several times dearer than the rest of a small write. So nodes a write replaces do not
//! go back to the allocator: after their grace period they return to the tree's
//! [`NodePool`], and later writes take their memory from there first.
//!
//! The flow, for one RCU-mode write:
//!
//! 1. the writer builds new nodes, taking memory from its private stash
//!    ([`Garbage::spare`](super::write::Garbage), only the writer touches it) before the
//!    allocator;
//! 2. the replaced nodes are marked dead at once, collected in
//!    [`Garbage::dead`](super::write::Garbage) and packed into a [`Batch`] that is retired
//!    **once** through the tree's domain when the write section ends (or the batch is full);
//! 3. after the grace period the domain runs [`RecycleBatch::reclaim`], which moves the
//!    nodes into the pool's shared list (bounded by [`POOL_CAP`]; the excess goes to the
//!    allocator);
//! 4. when the writer's stash runs dry it takes the whole shared list at once.
//!
//! Nothing is leaked: the stash is freed when the tree (its writer state) drops, the shared
//! list when the last reference to the pool drops (the tree, or the last batch still
//! waiting for its grace period), and `MapleTree::shrink` empties both on demand.
//!
//! A write section (`MapleTree::lock`) is itself a read section, so nothing it retires can
//! be reclaimed before it ends: recycling pays off across write sections (one lock per
//! operation), not inside one long section.

use rcu::sync::atomic::{AtomicUsize, Ordering};
// loom's `Arc`/`Mutex` under `cfg(loom)`, so models can run the node cache too.
use rcu::sync::{Arc, Mutex};
use rcu::Reclaim;

use super::node::Node;

/// Most free nodes kept in a pool's shared list (32 KiB of nodes); more are freed. The
/// writer's stash takes at most this many at once, so a tree caches at most twice this.
pub(crate) const POOL_CAP: usize = 128;

/// Most nodes one [`Batch`] carries (the batch is 112 bytes: small blocks are the
/// allocator's cheapest).
pub(crate) const BATCH_NODES: usize = 12;

/// The shared part of a tree's node cache: free node addresses returned by reclaimed
/// batches.
///
/// # Invariants
/// Every address in `free` is a node allocation (`Box<Node>` layout) that nothing else
/// references: not reachable from any tree, past its grace period.
#[derive(Debug)]
pub(crate) struct NodePool {
    /// Poisoning is ignored: no user code and nothing that can panic (short of a failed
    /// allocation, which aborts) runs while it is held, so the list is always consistent.
    free: Mutex<Vec<usize>>,
    /// `free.len()` as last stored under the lock: lets the writer skip the lock when the
    /// list is empty (a stale zero only delays reuse to a later write).
    count: AtomicUsize,
}

impl Default for NodePool {
    fn default() -> Self {
        NodePool {
            free: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
        }
    }
}

impl NodePool {
    /// Move every free node into `stash` (which the caller owns exclusively).
    pub(crate) fn take_all(&self, stash: &mut Vec<usize>) {
        // Relaxed: a hint; the lock below orders the list's contents.
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut f = self.free.lock().unwrap_or_else(|e| e.into_inner());
        // Relaxed: as above (written under the lock).
        self.count.store(0, Ordering::Relaxed);
        if stash.is_empty() {
            core::mem::swap(&mut *f, stash);
        } else {
            stash.append(&mut f);
        }
    }

    /// Free every node in the shared list; returns how many.
    pub(crate) fn shrink(&self) -> usize {
        let mut f = self.free.lock().unwrap_or_else(|e| e.into_inner());
        // Relaxed: a hint, see `count`.
        self.count.store(0, Ordering::Relaxed);
        let v = core::mem::take(&mut *f);
        drop(f);
        let n = v.len();
        // SAFETY: the pool's invariant: unreferenced node allocations.
        unsafe { free_all(&v) };
        n
    }

    /// Add `nodes` to the shared list, freeing those beyond [`POOL_CAP`].
    ///
    /// # Safety
    /// Every address is an unreferenced node allocation, handed over to the pool.
    unsafe fn give(&self, nodes: &[usize]) {
        let mut f = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let room = POOL_CAP.saturating_sub(f.len()).min(nodes.len());
        f.extend_from_slice(&nodes[..room]);
        // Relaxed: a hint, see `count`.
        self.count.store(f.len(), Ordering::Relaxed);
        drop(f);
        // SAFETY: forwarded; these did not fit and are still ours.
        unsafe { free_all(&nodes[room..]) };
    }
}

impl Drop for NodePool {
    fn drop(&mut self) {
        self.shrink();
    }
}

/// Free node allocations.
///
/// # Safety
/// Every address is an unreferenced node allocation, freed once.
pub(crate) unsafe fn free_all(nodes: &[usize]) {
    for &a in nodes {
        // SAFETY: forwarded from the caller: `a` came from the global allocator with
        // `Node`'s layout (`raw_node` or `Box<Node>`) and is freed once.
        unsafe { std::alloc::dealloc(a as *mut u8, std::alloc::Layout::new::<Node>()) };
    }
}

/// A block carrying retired nodes (and a reference to their pool) through one grace period:
/// one allocation per write section, or per [`BATCH_NODES`] nodes in a long one.
pub(crate) struct Batch {
    pool: Arc<NodePool>,
    len: usize,
    /// Bare addresses of retired nodes.
    nodes: [usize; BATCH_NODES],
}

/// Take a node allocation from `stash`, or from the allocator.
pub(crate) fn raw_node(stash: &mut Vec<usize>) -> *mut Node {
    match stash.pop() {
        Some(a) => a as *mut Node,
        None => {
            let layout = std::alloc::Layout::new::<Node>();
            // SAFETY: `Node` has a non-zero size.
            let p = unsafe { std::alloc::alloc(layout) };
            if p.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            p.cast()
        }
    }
}

/// Pack `nodes` (bare addresses of dead, unlinked nodes) into batches for `pool`, calling
/// `retire` once per batch (a `Box::into_raw` pointer).
///
/// # Safety
/// Every node is one the caller has unlinked and marked dead and hands over for reclamation
/// after a grace period: `retire` must defer [`RecycleBatch::reclaim`] until then.
pub(crate) unsafe fn pack(
    pool: &Arc<NodePool>,
    nodes: &[usize],
    mut retire: impl FnMut(*mut Batch),
) {
    for chunk in nodes.chunks(BATCH_NODES) {
        let mut b = Box::new(Batch {
            pool: Arc::clone(pool),
            len: chunk.len(),
            nodes: [0; BATCH_NODES],
        });
        b.nodes[..chunk.len()].copy_from_slice(chunk);
        retire(Box::into_raw(b));
    }
}

/// Reclaimer for [`Batch`]es: the nodes go back to the pool.
pub(crate) struct RecycleBatch;

// SAFETY: `pack` retires each batch (a `Box`) once; `reclaim` rebuilds the box once, after
// the grace period, and hands its nodes (unreferenced by then) to the pool.
unsafe impl Reclaim<Batch> for RecycleBatch {
    unsafe fn reclaim(ptr: *mut Batch) {
        // SAFETY: the caller (the domain) runs this once per retired batch, after every
        // reader that could see the carried nodes has left.
        let b = unsafe { Box::from_raw(ptr) };
        // SAFETY: past the grace period nothing references the nodes.
        unsafe { b.pool.give(&b.nodes[..b.len]) };
    }
}
