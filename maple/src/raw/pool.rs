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
//! 2. the replaced nodes are marked dead and packed into a [`Batch`] (itself a node-sized
//!    block, so packing allocates nothing in the steady state) that is retired **once**
//!    through the tree's domain;
//! 3. after the grace period the domain runs [`RecycleBatch::reclaim`], which moves the
//!    nodes and the batch block into the pool's shared list (bounded by [`POOL_CAP`]; the
//!    excess goes to the allocator);
//! 4. when the writer's stash runs dry it takes the whole shared list at once.
//!
//! Nothing is leaked: the stash is freed when the tree (its writer state) drops, the shared
//! list when the last reference to the pool drops (the tree, or the last batch still
//! waiting for its grace period), and `MapleTree::shrink` empties both on demand.

use std::sync::{Arc, Mutex};

use rcu::Reclaim;

use super::node::{Node, BODY_WORDS};

/// Most free nodes kept in a pool's shared list (64 KiB of nodes); more are freed.
pub(crate) const POOL_CAP: usize = 256;

/// Most nodes one [`Batch`] block carries.
const BATCH_NODES: usize = BODY_WORDS - 1;

/// The shared part of a tree's node cache: free node addresses returned by reclaimed
/// batches.
///
/// # Invariants
/// Every address in `free` is a node allocation (`Box<Node>` layout) that nothing else
/// references: not reachable from any tree, past its grace period.
#[derive(Debug, Default)]
pub(crate) struct NodePool {
    free: Mutex<Vec<usize>>,
}

impl NodePool {
    /// Move every free node into `stash` (which the caller owns exclusively).
    pub(crate) fn take_all(&self, stash: &mut Vec<usize>) {
        let mut f = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if stash.is_empty() {
            core::mem::swap(&mut *f, stash);
        } else {
            stash.append(&mut f);
        }
    }

    /// Free every node in the shared list; returns how many.
    pub(crate) fn shrink(&self) -> usize {
        let v = core::mem::take(&mut *self.free.lock().unwrap_or_else(|e| e.into_inner()));
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

/// A node-sized block carrying retired nodes through one grace period.
#[repr(C, align(256))] // same layout as `Node`: the block is a recycled node allocation
pub(crate) struct Batch {
    /// `Arc::into_raw` of the owning pool.
    pool: *const NodePool,
    /// Used entries of `nodes`.
    len: usize,
    /// Bare addresses of retired nodes.
    nodes: [usize; BATCH_NODES],
}

const _: () = {
    assert!(core::mem::size_of::<Batch>() == core::mem::size_of::<Node>());
    assert!(core::mem::align_of::<Batch>() == core::mem::align_of::<Node>());
};

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

/// Pack `nodes` (bare addresses of dead, unlinked nodes) into batch blocks for `pool`,
/// calling `retire` once per block.
///
/// # Safety
/// Every address is a node the caller has unlinked and marked dead and hands over for
/// reclamation after a grace period (`retire` must defer [`RecycleBatch::reclaim`] until
/// then); blocks in `stash` are unreferenced node allocations.
pub(crate) unsafe fn pack(
    pool: &Arc<NodePool>,
    stash: &mut Vec<usize>,
    nodes: &[usize],
    mut retire: impl FnMut(*mut Batch),
) {
    for chunk in nodes.chunks(BATCH_NODES) {
        let b = raw_node(stash).cast::<Batch>();
        let mut block = Batch {
            pool: Arc::into_raw(Arc::clone(pool)),
            len: chunk.len(),
            nodes: [0; BATCH_NODES],
        };
        block.nodes[..chunk.len()].copy_from_slice(chunk);
        // SAFETY: `b` is an unreferenced allocation with `Batch`'s size and alignment.
        unsafe { b.write(block) };
        retire(b);
    }
}

/// Reclaimer for [`Batch`] blocks: the nodes and the block go back to the pool.
pub(crate) struct RecycleBatch;

// SAFETY: `pack` builds each block from node allocations and an owned `Arc` reference and
// retires it once; `reclaim` consumes both exactly once, after the grace period.
unsafe impl Reclaim<Batch> for RecycleBatch {
    unsafe fn reclaim(ptr: *mut Batch) {
        // SAFETY: the caller (the domain) runs this once per retired block, after every
        // reader that could see the carried nodes has left; the block is ours.
        let b = unsafe { ptr.read() };
        // SAFETY: `pack` stored an owned strong reference.
        let pool = unsafe { Arc::from_raw(b.pool) };
        let mut all = [0usize; BATCH_NODES + 1];
        all[..b.len].copy_from_slice(&b.nodes[..b.len]);
        all[b.len] = ptr as usize;
        // SAFETY: past the grace period nothing references the nodes or the block.
        unsafe { pool.give(&all[..=b.len]) };
    }
}
