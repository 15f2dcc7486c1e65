//! Classification: what kind of write a store is, decided from the leaf it lands in before
//! anything changes (the kernel's `mas_wr_store_type`). Only reads.

use rcu::sync::atomic::Ordering;

use super::{Mode, Path, StoreKind, Writer};
use crate::raw::node::NodeType;

/// A store as classification measured it: its kind and what that kind needs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Plan {
    /// `0..=usize::MAX`: the whole tree is replaced.
    NewRoot,
    /// The store covers exactly one slot.
    ExactFit(Edit),
    /// One pivot moves and one slot changes.
    SlotStore(Edit),
    /// The store cuts the tail off the leaf's last slot: in place (under readers only in
    /// plain trees).
    Append(Edit),
    /// The leaf is rewritten as one leaf.
    NodeStore(Edit),
    /// The leaf overflows.
    Split(Edit),
    /// The leaf underflows, or would end in an empty slot.
    Rebalance(Edit),
    /// The store ends beyond the leaf holding its first index.
    Spanning,
}

impl Plan {
    /// The kind reported to callers and statistics.
    pub(crate) fn kind(&self) -> StoreKind {
        match self {
            Plan::NewRoot => StoreKind::NewRoot,
            Plan::ExactFit(_) => StoreKind::ExactFit,
            Plan::SlotStore(_) => StoreKind::SlotStore,
            Plan::Append(_) => StoreKind::Append,
            Plan::NodeStore(_) => StoreKind::NodeStore,
            Plan::Split(_) => StoreKind::Split,
            Plan::Rebalance(_) => StoreKind::Rebalance,
            Plan::Spanning => StoreKind::Spanning,
        }
    }
}

/// A store of `word` over `[first, last]` as it meets the leaves: it starts in slot `of`
/// of the first leaf and ends in slot `ol` of the last one (the same leaf unless the store
/// spans). The parts of those two slots outside the store are kept.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Edit {
    pub(crate) first: usize,
    pub(crate) last: usize,
    pub(crate) word: usize,
    /// Slot holding `first` (first leaf).
    pub(crate) of: usize,
    /// Slot holding `last` (last leaf).
    pub(crate) ol: usize,
    /// First index of slot `of`.
    pub(crate) r_min: usize,
    /// Last index of slot `ol`.
    pub(crate) r_max: usize,
    /// Used slots of the (first) leaf before the store.
    pub(crate) end: usize,
    /// Used slots of the leaf after a store confined to it.
    pub(crate) new_end: usize,
}

impl Edit {
    /// Whether `[r_min, first - 1]` keeps the old value of slot `of`.
    #[inline]
    pub(crate) fn keep_left(&self) -> bool {
        self.first > self.r_min
    }

    /// Whether `[last + 1, r_max]` keeps the old value of slot `ol`.
    #[inline]
    pub(crate) fn keep_right(&self) -> bool {
        self.last < self.r_max
    }
}

impl Writer<'_> {
    /// Classify a store of `word` over `[first, last]` (widened already if a punch);
    /// `path` leads to the leaf holding `first`.
    pub(crate) fn classify(&self, path: &Path, first: usize, last: usize, word: usize) -> Plan {
        if first == 0 && last == usize::MAX {
            return Plan::NewRoot;
        }
        let leaf = path.leaf();
        if last > leaf.max {
            return Plan::Spanning;
        }
        let ty = NodeType::Leaf;
        let n = self.node(leaf.node);
        let of = leaf.off;
        let mut ol = of;
        while n.pivot_or_max(ty, ol, leaf.max) < last {
            ol += 1;
        }
        let end = n.end(ty, leaf.max);
        let mut e = Edit {
            first,
            last,
            word,
            of,
            ol,
            r_min: n.slot_range(ty, leaf.min, leaf.max, of).0,
            r_max: n.pivot_or_max(ty, ol, leaf.max),
            end,
            new_end: 0,
        };
        e.new_end = of + e.keep_left() as usize + 1 + e.keep_right() as usize + (end - ol - 1);
        let is_root = path.height() == 1;
        let rightmost = leaf.max == usize::MAX;
        // A leaf other than the right-most may not end in an empty slot.
        let ends_empty = word == 0 && last == leaf.max && !rightmost;
        if !e.keep_left() && !e.keep_right() && of == ol && !ends_empty {
            // Relaxed: writer-side read.
            let old = n.slot(ty, of).load(Ordering::Relaxed);
            // Emptiness changes a leaf's gaps, which readers must see with the slot:
            // allocation trees in RCU mode copy the leaf instead.
            let same_gaps = (old == 0) == (word == 0);
            if self.mode == Mode::Exclusive || !self.tree.alloc || same_gaps {
                return Plan::ExactFit(e);
            }
        }
        if e.new_end > ty.slots() {
            Plan::Split(e)
        } else if ends_empty || (e.new_end < ty.underflow_below() && !is_root) {
            Plan::Rebalance(e)
        } else if ol == of + 1 && e.new_end == end {
            Plan::SlotStore(e)
        } else if (self.mode == Mode::Exclusive || !self.tree.alloc)
            && of == end - 1
            && ol == of
            && e.keep_left()
        {
            // In place, also under readers in a plain tree (no gaps to keep in step).
            Plan::Append(e)
        } else {
            Plan::NodeStore(e)
        }
    }
}
