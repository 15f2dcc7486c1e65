//! A single-threaded reference address space over a `BTreeMap`.
//!
//! [`Model`] makes the same decisions as [`Mm`](crate::Mm) (both use the crate's Linux
//! semantics planner) but stores VMAs in a `BTreeMap` with no locking, RCU or maple tree.
//! Tests and fuzz targets compare `Mm` against it, and `tests/kernel_diff.rs` compares it
//! against the real kernel.
//!
//! ```
//! use vmlock::model::Model;
//! use vmlock::{Backing, MapFlags, MapRequest, MmConfig, Prot};
//! let mut m = Model::new(MmConfig::default());
//! let req = MapRequest { addr: None, len: 8192, prot: Prot::READ, flags: MapFlags::PRIVATE, backing: Backing::Anonymous };
//! let a = m.mmap(&req).unwrap();
//! m.munmap(a, 4096).unwrap();
//! assert_eq!(m.vmas().len(), 1);
//! ```

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::layout::{self, Plan, Seg, View};
use crate::types::{Advice, Errno, MapRequest, MmConfig, Prot, RemapFlags, VmFlags, VmaInfo};

/// The reference address space; see the module docs.
#[derive(Clone, Debug)]
pub struct Model {
    cfg: MmConfig,
    vmas: BTreeMap<usize, Seg>,
    next_shmem: u64,
}

impl View for BTreeMap<usize, Seg> {
    fn overlapping(&self, start: usize, end: usize) -> Vec<Seg> {
        let first = self
            .range(..=start)
            .next_back()
            .filter(|(_, s)| s.end > start)
            .map(|(&k, _)| k)
            .unwrap_or(start);
        self.range((Bound::Included(first), Bound::Excluded(end)))
            .map(|(_, s)| *s)
            .filter(|s| s.end > start)
            .collect()
    }

    fn gap_rev(&self, lo: usize, hi: usize, size: usize) -> Option<usize> {
        // Walk the VMAs below `hi` from the top; `top` ends the free run being considered.
        let mut top = hi;
        for (_, s) in self.range(..hi).rev() {
            let gap_start = s.end.max(lo);
            if top.saturating_sub(gap_start) >= size && size > 0 {
                return Some(top - size);
            }
            top = top.min(s.start);
            if top <= lo {
                return None;
            }
        }
        (size > 0 && top.saturating_sub(lo) >= size).then(|| top - size)
    }

    fn gap_fwd(&self, lo: usize, hi: usize, size: usize) -> Option<usize> {
        if size == 0 || hi <= lo || hi - lo < size {
            return None;
        }
        // Walk the VMAs from `lo` up; `bottom` starts the free run being considered.
        let mut bottom = lo;
        for s in self.overlapping(lo, hi) {
            if s.start.saturating_sub(bottom) >= size {
                return Some(bottom);
            }
            bottom = bottom.max(s.end);
            if bottom >= hi {
                return None;
            }
        }
        (hi - bottom >= size).then_some(bottom)
    }
}

impl Model {
    /// An empty address space.
    ///
    /// # Panics
    ///
    /// On a configuration that [`Mm::new`](crate::Mm::new) refuses (same rules).
    pub fn new(cfg: MmConfig) -> Model {
        cfg.assert_valid();
        Model {
            cfg,
            vmas: BTreeMap::new(),
            next_shmem: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> MmConfig {
        self.cfg
    }

    fn apply(&mut self, plan: Plan) -> Result<usize, Errno> {
        for c in plan.changes {
            let keys: Vec<usize> = self.vmas.range(c.start..c.end).map(|(&k, _)| k).collect();
            for k in keys {
                self.vmas.remove(&k);
            }
            for s in c.segs {
                self.vmas.insert(s.start, s);
            }
        }
        plan.result
    }

    /// `mmap`: returns the address.
    pub fn mmap(&mut self, req: &MapRequest) -> Result<usize, Errno> {
        self.next_shmem += 1;
        let plan = layout::mmap(&self.vmas, &self.cfg, req, self.next_shmem);
        self.apply(plan)
    }

    /// `munmap`.
    pub fn munmap(&mut self, addr: usize, len: usize) -> Result<(), Errno> {
        let plan = layout::munmap(&self.vmas, &self.cfg, addr, len);
        self.apply(plan).map(drop)
    }

    /// `mprotect` (changes up to a hole are kept even when it returns `ENOMEM`).
    pub fn mprotect(&mut self, addr: usize, len: usize, prot: Prot) -> Result<(), Errno> {
        let plan = layout::mprotect(&self.vmas, addr, len, prot);
        self.apply(plan).map(drop)
    }

    /// `mremap`: returns the (possibly new) address.
    pub fn mremap(
        &mut self,
        old_addr: usize,
        old_len: usize,
        new_len: usize,
        flags: RemapFlags,
        new_addr: Option<usize>,
    ) -> Result<usize, Errno> {
        let plan = layout::mremap(
            &self.vmas, &self.cfg, old_addr, old_len, new_len, flags, new_addr,
        );
        self.apply(plan)
    }

    /// `madvise` with a fork advice (`ENOMEM` for a hole, after changing the rest).
    pub fn madvise(&mut self, addr: usize, len: usize, advice: Advice) -> Result<(), Errno> {
        let plan = layout::madvise(&self.vmas, addr, len, advice);
        self.apply(plan).map(drop)
    }

    /// The child's address space after `fork`: every VMA but the `MADV_DONTFORK` ones.
    pub fn fork(&self) -> Model {
        Model {
            cfg: self.cfg,
            vmas: self
                .vmas
                .iter()
                .filter(|(_, s)| s.copied_on_fork())
                .map(|(&k, s)| (k, *s))
                .collect(),
            next_shmem: self.next_shmem,
        }
    }

    /// The listing, like `/proc/self/maps`.
    pub fn vmas(&self) -> Vec<VmaInfo> {
        self.vmas.values().map(Seg::info).collect()
    }

    /// The listing with each VMA's flags, like `/proc/self/smaps`.
    pub fn smaps(&self) -> Vec<(VmaInfo, VmFlags)> {
        self.vmas.values().map(|s| (s.info(), s.flags())).collect()
    }

    /// The VMA containing `addr`.
    pub fn lookup(&self, addr: usize) -> Option<VmaInfo> {
        self.vmas
            .overlapping(addr, addr.saturating_add(1))
            .first()
            .map(Seg::info)
    }

    /// The highest free start for `size` bytes in `[lo, hi)` (what top-down placement uses).
    pub fn gap_rev(&self, lo: usize, hi: usize, size: usize) -> Option<usize> {
        self.vmas.gap_rev(lo, hi, size)
    }

    /// The lowest free start for `size` bytes in `[lo, hi)` (the bottom-up fallback).
    pub fn gap_fwd(&self, lo: usize, hi: usize, size: usize) -> Option<usize> {
        self.vmas.gap_fwd(lo, hi, size)
    }
}
