//! Aligned gap search, aligned allocation and exact-range removal (issue 12): the public
//! calls an address-space allocator needs beyond `empty_area` / `alloc_range`.
//!
//! A child module of `tree` so that it can use the guards' internals (the raw tree, the
//! section, the writer's store path) while living in a file of its own.

use core::ops::RangeBounds;

use rcu::Domain;

use super::{bounds, ReadGuard, WriteGuard};
use crate::entry::Entry;
use crate::error::{AreaAllocError, AreaError, RemoveError};
use crate::raw::{gap, walk};

impl<E: Entry, D: Domain> ReadGuard<'_, E, D> {
    /// Lowest start `s` with `[s, s + size - 1]` empty and inside `window`, and
    /// `s ≡ offset (mod align)` (that is, `(s - offset) % align == 0`; only
    /// `offset % align` matters).
    ///
    /// Exact: if such a start exists, this finds the lowest one. A hole of exactly `size`
    /// indices at an aligned start is found, which asking for `size + align - 1` and
    /// rounding (the kernel's `vm_unmapped_area`) misses. On allocation trees the search
    /// descends only into subtrees whose largest free run is at least `size` and checks the
    /// alignment where it decides (a run of `size + align - 1` always holds an aligned fit);
    /// on plain trees it scans the window.
    ///
    /// # Errors
    /// Bad input, checked in this order: [`AreaError::EmptyWindow`] (empty or inverted
    /// window), [`AreaError::ZeroSize`], [`AreaError::BadAlign`] (0 or not a power of two),
    /// [`AreaError::WindowTooSmall`] (fewer than `size` indices, so `start + size` could not
    /// stay inside). [`AreaError::Busy`] when no aligned run fits (also when the window is
    /// wide enough but holds no aligned start that leaves room).
    ///
    /// ```
    /// use maple::{AreaError, MapleTree, Value};
    /// let t: MapleTree<Value> = MapleTree::new_alloc();
    /// let w = t.lock();
    /// w.store_range(0..=4, Value::new(1).unwrap()).unwrap();
    /// w.store_range(12..=15, Value::new(2).unwrap()).unwrap();
    /// // The hole 5..=11: starts that are multiples of 4 and leave room for 4 indices.
    /// assert_eq!(w.empty_area_aligned(0..=15, 4, 4, 0), Ok(8));
    /// // Starts of the form 4k + 1.
    /// assert_eq!(w.empty_area_aligned(0..=15, 4, 4, 1), Ok(5));
    /// // 5 indices at a multiple of 8: only above the second range.
    /// assert_eq!(w.empty_area_aligned(0..=100, 5, 8, 0), Ok(16));
    /// assert_eq!(w.empty_area_aligned(0..=15, 5, 8, 0), Err(AreaError::Busy));
    /// ```
    pub fn empty_area_aligned(
        &self,
        window: impl RangeBounds<usize>,
        size: usize,
        align: usize,
        offset: usize,
    ) -> Result<usize, AreaError> {
        self.aligned(window, size, align, offset, false)
    }

    /// Highest start `s` with `[s, s + size - 1]` empty and inside `window`, and
    /// `s ≡ offset (mod align)`; otherwise as [`ReadGuard::empty_area_aligned`].
    ///
    /// ```
    /// use maple::{MapleTree, Value};
    /// let t: MapleTree<Value> = MapleTree::new_alloc();
    /// let w = t.lock();
    /// // A 2 MiB-aligned huge page below 0x4000_0000, under a mapping at its top.
    /// w.store_range(0x3ff0_0000..=0x3fff_ffff, Value::new(1).unwrap()).unwrap();
    /// assert_eq!(
    ///     w.empty_area_rev_aligned(0..0x4000_0000, 0x20_0000, 0x20_0000, 0),
    ///     Ok(0x3fc0_0000)
    /// );
    /// // A hole of exactly 3 pages at an aligned address is found.
    /// w.store_range(0..=0x3fc0_0fff, Value::new(2).unwrap()).unwrap();
    /// w.store_range(0x3fc0_4000..0x3ff0_0000, Value::new(3).unwrap()).unwrap();
    /// assert_eq!(w.empty_area_rev_aligned(..0x4000_0000, 0x3000, 0x1000, 0), Ok(0x3fc0_1000));
    /// ```
    pub fn empty_area_rev_aligned(
        &self,
        window: impl RangeBounds<usize>,
        size: usize,
        align: usize,
        offset: usize,
    ) -> Result<usize, AreaError> {
        self.aligned(window, size, align, offset, true)
    }

    fn aligned(
        &self,
        window: impl RangeBounds<usize>,
        size: usize,
        align: usize,
        offset: usize,
        rev: bool,
    ) -> Result<usize, AreaError> {
        let (lo, hi) = bounds(&window).ok_or(AreaError::EmptyWindow)?;
        // SAFETY: the guard is a live section of this tree's domain.
        unsafe {
            gap::empty_area_aligned(
                &self.tree.raw,
                &self.guard,
                lo,
                hi,
                size,
                align,
                offset,
                rev,
            )
        }
    }
}

impl<E: Entry, D: Domain> WriteGuard<'_, E, D> {
    /// Find the lowest aligned fit ([`ReadGuard::empty_area_aligned`]) of `size` indices
    /// in `window`, store `value` there and return its start. Allocation trees only.
    ///
    /// # Errors
    /// As for [`ReadGuard::empty_area_aligned`], plus [`AreaError::NotAllocTree`] on a
    /// plain tree; the value comes back in the error.
    ///
    /// ```
    /// use maple::{AreaError, MapleTree, Value};
    /// let t: MapleTree<Value> = MapleTree::new_alloc();
    /// let w = t.lock();
    /// let v = |i| Value::new(i).unwrap();
    /// assert_eq!(w.alloc_range_aligned(3, 16, 0, v(1), 1..=1000).unwrap(), 16);
    /// assert_eq!(w.alloc_range_aligned(3, 16, 0, v(2), 1..=1000).unwrap(), 32);
    /// // 4-aligned plus 1, in the hole left below 16.
    /// assert_eq!(w.alloc_range_aligned(3, 4, 1, v(3), 1..=1000).unwrap(), 1);
    /// let e = w.alloc_range_aligned(3, 0, 0, v(4), ..).unwrap_err();
    /// assert_eq!((e.kind, e.value.get()), (AreaError::BadAlign, 4));
    /// ```
    pub fn alloc_range_aligned(
        &self,
        size: usize,
        align: usize,
        offset: usize,
        value: E,
        window: impl RangeBounds<usize>,
    ) -> Result<usize, AreaAllocError<E>> {
        self.alloc_aligned(size, align, offset, value, window, false)
    }

    /// Find the highest aligned fit ([`ReadGuard::empty_area_rev_aligned`]) of `size`
    /// indices in `window`, store `value` there and return its start. Allocation trees
    /// only; errors as for [`WriteGuard::alloc_range_aligned`].
    ///
    /// ```
    /// use maple::{MapleTree, Value};
    /// let t: MapleTree<Value> = MapleTree::new_alloc();
    /// let w = t.lock();
    /// let v = |i| Value::new(i).unwrap();
    /// // Top-down placement of 2 MiB-aligned regions below 1 GiB.
    /// let top = 0x4000_0000 - 1;
    /// assert_eq!(w.alloc_rrange_aligned(0x1000, 0x20_0000, 0, v(1), ..=top).unwrap(), 0x3fe0_0000);
    /// assert_eq!(w.alloc_rrange_aligned(0x1000, 0x20_0000, 0, v(2), ..=top).unwrap(), 0x3fc0_0000);
    /// ```
    pub fn alloc_rrange_aligned(
        &self,
        size: usize,
        align: usize,
        offset: usize,
        value: E,
        window: impl RangeBounds<usize>,
    ) -> Result<usize, AreaAllocError<E>> {
        self.alloc_aligned(size, align, offset, value, window, true)
    }

    fn alloc_aligned(
        &self,
        size: usize,
        align: usize,
        offset: usize,
        value: E,
        window: impl RangeBounds<usize>,
        rev: bool,
    ) -> Result<usize, AreaAllocError<E>> {
        if !self.tree().raw.alloc {
            return Err(AreaAllocError {
                value,
                kind: AreaError::NotAllocTree,
            });
        }
        match self.read.aligned(window, size, align, offset, rev) {
            Ok(s) => {
                // `s + size - 1` lies inside the window: no overflow.
                self.write(s, s + (size - 1), value.into_word());
                Ok(s)
            }
            Err(kind) => Err(AreaAllocError { value, kind }),
        }
    }

    /// Remove the stored range `r` only if its bounds are exactly `r`'s, and return its
    /// value (retired: the reference stays valid for this borrow of the guard). Otherwise
    /// nothing changes and the error says what is there: nothing at all
    /// ([`RemoveError::Vacant`]) or a different range ([`RemoveError::Mismatch`], the first
    /// stored range overlapping `r`). This is an allocator's `free`: unlike
    /// [`WriteGuard::erase`] or [`WriteGuard::punch`], a wrong range cannot remove or cut
    /// someone else's allocation.
    ///
    /// ```
    /// use maple::{MapleTree, RemoveError, Value};
    /// let t: MapleTree<Value> = MapleTree::new_alloc();
    /// let w = t.lock();
    /// let a = w.alloc_range(0x3000, Value::new(7).unwrap(), 0x1000..).unwrap();
    /// assert_eq!(w.remove_exact(a..a + 0x1000), Err(RemoveError::Mismatch { found: a..=a + 0x2fff }));
    /// assert_eq!(w.remove_exact(a..a + 0x3000).map(Value::get), Ok(7));
    /// assert_eq!(w.remove_exact(a..a + 0x3000), Err(RemoveError::Vacant));
    /// drop(w);
    /// assert!(t.is_empty());
    /// ```
    pub fn remove_exact(&self, r: impl RangeBounds<usize>) -> Result<E::Ref<'_>, RemoveError> {
        let (a, b) = bounds(&r).ok_or(RemoveError::InvalidRange)?;
        // SAFETY: the guard is a live section; holding the lock makes the answer current.
        let s = unsafe { walk::next_entry(&self.tree().raw, &self.read.guard, a, b) }
            .ok_or(RemoveError::Vacant)?;
        if (s.min, s.max) != (a, b) {
            return Err(RemoveError::Mismatch {
                found: s.min..=s.max,
            });
        }
        // Storing nothing over exactly one stored range: the ordinary write path (the
        // empty slot merges with empty neighbours).
        self.write(a, b, 0);
        // SAFETY: the word was read under our section and retired after it began (or is
        // still stored elsewhere), so it lives until the guard ends.
        Ok(unsafe { self.read.entry(s.word) })
    }
}
