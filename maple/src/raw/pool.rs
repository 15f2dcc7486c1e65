//! Node memory: the writer's private [`Stash`] and the tree's shared [`NodePool`].
//!
//! Allocating a 256-byte, 256-aligned node goes through the allocator's aligned path, which
//! is several times dearer than the rest of a small write. So nodes a write replaces do not
//! go back to the allocator: after their grace period they return to the tree's pool, and
//! later writes take their memory from there first.
//!
//! The flow, for RCU-mode writes (see `raw::session` for the writer's side):
//!
//! 1. the writer builds new nodes in memory from its [`Stash`] (only the writer touches it)
//!    before asking the allocator;
//! 2. the nodes a write replaces are marked dead at once and collected in the session's
//!    dead batch; [`pack`] puts them into a [`Batch`] that is retired through the tree's
//!    domain as **one** object;
//! 3. after the grace period the domain runs [`RecycleBatch::reclaim`], which moves the
//!    nodes into the pool's shared list. It never frees: with seize the thread that runs a
//!    reclamation is often a *reader* leaving its section, and a reader should not pay for
//!    the writer's memory management (freeing was most of what a reader lost under a
//!    churning writer);
//! 4. at the start of each write the stash takes the whole shared list at once
//!    ([`Stash::refill`]) and the writer frees what exceeds [`POOL_CAP`].
//!
//! Nothing is leaked: the stash is freed when the tree (its writer session) drops, the
//! shared list when the last reference to the pool drops (the tree, or the last batch still
//! waiting for its grace period), and `MapleTree::shrink` empties both on demand.
//!
//! Addresses are kept as words whose provenance was exposed when the memory was allocated
//! (see `node`'s "Provenance"); they are turned back into pointers only to free them.

use rcu::sync::atomic::{AtomicUsize, Ordering};
// loom's `Arc`/`Mutex` under `cfg(loom)`, so models can run the node cache too.
use rcu::sync::{Arc, Mutex};
use rcu::Reclaim;

use super::node::Node;

/// Most spare nodes a writer keeps (64 KiB of nodes); it frees the rest when it refills.
/// The shared list is unbounded between two writes: it holds at most what those writes
/// retired.
pub(crate) const POOL_CAP: usize = 256;

/// Most nodes one [`Batch`] carries (the batch is 112 bytes: small blocks are the
/// allocator's cheapest).
pub(crate) const BATCH_NODES: usize = 12;

/// Most empty [`Batch`] boxes a writer keeps for reuse.
const BATCH_CAP: usize = 64;

/// The allocation layout of a node.
fn layout() -> std::alloc::Layout {
    std::alloc::Layout::new::<Node>()
}

/// Free node allocations.
///
/// # Safety
/// Every address is an unreferenced node allocation (from [`Stash::take`]'s allocator
/// path), freed once.
pub(crate) unsafe fn free_all(nodes: &[usize]) {
    for &a in nodes {
        let p = core::ptr::with_exposed_provenance_mut::<u8>(a);
        // SAFETY: the caller's contract: `a` came from the global allocator with `Node`'s
        // layout, its provenance was exposed then, and it is freed once.
        unsafe { std::alloc::dealloc(p, layout()) };
    }
}

/// Fresh memory for one node from the global allocator, exclusively owned by the caller
/// (its address exposed, see the module docs).
pub(crate) fn alloc_node() -> *mut Node {
    // SAFETY: `Node` has a non-zero size.
    let p = unsafe { std::alloc::alloc(layout()) };
    if p.is_null() {
        std::alloc::handle_alloc_error(layout());
    }
    // Exposed so the address can travel as a word (module docs).
    let _ = p.expose_provenance();
    p.cast()
}

/// The writer's private supply of node memory (and of empty [`Batch`] boxes).
///
/// # Invariants
/// Every address in `spare` is an unreferenced node allocation owned by the stash.
#[derive(Debug, Default)]
pub(crate) struct Stash {
    spare: Vec<usize>,
    /// Empty batch boxes: the allocations themselves are reused (retired as raw pointers).
    #[allow(clippy::vec_box)]
    batches: Vec<Box<Batch>>,
}

impl Stash {
    /// Memory for one node: recycled if the stash has some, else fresh from the allocator.
    /// The caller owns it: it must end up in a published node, back in a stash
    /// ([`Stash::give`]), or freed.
    #[inline]
    pub(crate) fn take(&mut self) -> *mut Node {
        match self.spare.pop() {
            Some(a) => core::ptr::with_exposed_provenance_mut(a),
            None => alloc_node(),
        }
    }

    /// Hand node memory to the stash.
    ///
    /// # Safety
    /// `addr` is an unreferenced node allocation (from [`Stash::take`]), handed over.
    #[inline]
    pub(crate) unsafe fn give(&mut self, addr: usize) {
        // INVARIANT: the caller's contract.
        self.spare.push(addr);
    }

    /// Number of spare nodes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.spare.len()
    }

    /// Take every free node (and empty batch box) of `pool`, then free the spare nodes
    /// beyond [`POOL_CAP`] (the writer's thread pays for that, not a reader's).
    pub(crate) fn refill(&mut self, pool: &NodePool) {
        // Relaxed: a hint; the lock below orders the list's contents.
        if pool.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut f = pool.free.lock().unwrap_or_else(|e| e.into_inner());
        // Relaxed: as above (written under the lock).
        pool.count.store(0, Ordering::Relaxed);
        // INVARIANT: the pool's nodes are unreferenced (its invariant); they move here.
        if self.spare.is_empty() {
            core::mem::swap(&mut f.nodes, &mut self.spare);
        } else {
            self.spare.append(&mut f.nodes);
        }
        self.batches.append(&mut f.batches);
        drop(f);
        self.batches.truncate(BATCH_CAP);
        if self.spare.len() > POOL_CAP {
            // SAFETY: the type's invariant; the freed addresses leave the list right after.
            unsafe { free_all(&self.spare[POOL_CAP..]) };
            self.spare.truncate(POOL_CAP);
        }
    }

    /// Free every spare node; returns how many.
    pub(crate) fn clear(&mut self) -> usize {
        let n = self.spare.len();
        // SAFETY: the type's invariant; the list is emptied right after.
        unsafe { free_all(&self.spare) };
        self.spare = Vec::new();
        n
    }
}

impl Drop for Stash {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The shared part of a tree's node cache: free node addresses returned by reclaimed
/// batches.
///
/// # Invariants
/// Every address in `free` is a node allocation that nothing else references: not
/// reachable from any tree, past its grace period.
#[derive(Debug)]
pub(crate) struct NodePool {
    /// Poisoning is ignored: no user code and nothing that can panic (short of a failed
    /// allocation, which aborts) runs while it is held, so the lists are always consistent.
    free: Mutex<Free>,
    /// `free.len()` as last stored under the lock: lets the writer skip the lock when the
    /// list is empty (a stale zero only delays reuse to a later write).
    count: AtomicUsize,
}

/// The pool's free lists.
#[derive(Debug, Default)]
struct Free {
    /// Free node allocations (the pool's invariant).
    nodes: Vec<usize>,
    /// Empty batch boxes (their `pool` is `None`: a box here holds no reference to the
    /// pool, so the pool can drop). The allocations themselves are what is reused;
    /// unbounded between two writes, like `nodes`.
    #[allow(clippy::vec_box)]
    batches: Vec<Box<Batch>>,
}

impl Default for NodePool {
    fn default() -> Self {
        NodePool {
            free: Mutex::new(Free::default()),
            count: AtomicUsize::new(0),
        }
    }
}

impl NodePool {
    /// Free every node in the shared list; returns how many.
    pub(crate) fn shrink(&self) -> usize {
        let mut f = self.free.lock().unwrap_or_else(|e| e.into_inner());
        // Relaxed: a hint, see `count`.
        self.count.store(0, Ordering::Relaxed);
        let v = core::mem::take(&mut f.nodes);
        f.batches = Vec::new();
        drop(f);
        // SAFETY: the pool's invariant: unreferenced node allocations.
        unsafe { free_all(&v) };
        v.len()
    }

    /// Add the nodes of `batch` to the shared list and keep the (emptied) batch box for
    /// reuse. Frees nothing while the tree lives (see the module docs).
    ///
    /// # Safety
    /// Every node of the batch is an unreferenced node allocation, handed over to the pool.
    unsafe fn give(&self, mut batch: Box<Batch>) {
        let mut f = self.free.lock().unwrap_or_else(|e| e.into_inner());
        // INVARIANT: the caller's contract.
        f.nodes.extend_from_slice(&batch.nodes[..batch.len]);
        // Relaxed: a hint, see `count`.
        self.count.store(f.nodes.len(), Ordering::Relaxed);
        batch.len = 0;
        f.batches.push(batch);
    }
}

impl Drop for NodePool {
    fn drop(&mut self) {
        self.shrink();
    }
}

/// A block carrying retired nodes (and a reference to their pool) through one grace
/// period. Empty boxes are kept by the pool and the stash for reuse.
#[derive(Debug)]
pub(crate) struct Batch {
    /// `Some` while the batch is retired, `None` while it waits for reuse.
    pool: Option<Arc<NodePool>>,
    len: usize,
    /// Bare addresses of retired nodes.
    nodes: [usize; BATCH_NODES],
}

/// Pack `nodes` (addresses of dead, unlinked nodes) into batches for `pool`, calling
/// `retire` once per batch (a `Box::into_raw` pointer).
///
/// # Safety
/// Every node is one the caller has unlinked and marked dead and hands over for reclamation
/// after a grace period: `retire` must defer [`RecycleBatch::reclaim`] until then.
pub(crate) unsafe fn pack(
    pool: &Arc<NodePool>,
    stash: &mut Stash,
    nodes: &[usize],
    mut retire: impl FnMut(*mut Batch),
) {
    for chunk in nodes.chunks(BATCH_NODES) {
        let mut b = stash.batches.pop().unwrap_or_else(|| {
            Box::new(Batch {
                pool: None,
                len: 0,
                nodes: [0; BATCH_NODES],
            })
        });
        b.pool = Some(Arc::clone(pool));
        b.len = chunk.len();
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
        let mut b = unsafe { Box::from_raw(ptr) };
        let pool = b.pool.take().expect("a retired batch refers to its pool");
        // SAFETY: past the grace period nothing references the nodes.
        unsafe { pool.give(b) };
        // Dropped after `give` released the lock: this may be the last reference.
        drop(pool);
    }
}
