//! A fixed-capacity vector of `Copy` items that costs nothing to create (no zeroing, no
//! heap): the writer's paths and big nodes live on the stack in these.

use core::mem::MaybeUninit;
use core::ops::{Deref, DerefMut};

/// Up to `N` items of `T`, stored inline.
///
/// # Invariants
/// `items[..len]` are initialised.
pub(crate) struct StackVec<T: Copy, const N: usize> {
    items: [MaybeUninit<T>; N],
    len: usize,
}

impl<T: Copy, const N: usize> StackVec<T, N> {
    /// An empty vector.
    #[inline]
    pub(crate) fn new() -> Self {
        StackVec {
            items: [const { MaybeUninit::uninit() }; N],
            len: 0,
        }
    }

    /// Remove every item (they are `Copy`: nothing to drop).
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Append; panics (an engine bug) if full.
    #[inline]
    pub(crate) fn push(&mut self, it: T) {
        assert!(
            self.len < N,
            "maple: fixed buffer of {N} overflowed (engine bug)"
        );
        self.items[self.len] = MaybeUninit::new(it);
        // INVARIANT: the item at the old `len` was just initialised.
        self.len += 1;
    }
}

impl<T: Copy, const N: usize> StackVec<T, N> {
    /// Append every item of `items`; panics (an engine bug) if they do not fit.
    #[inline]
    pub(crate) fn extend_from_slice(&mut self, items: &[T]) {
        for &it in items {
            self.push(it);
        }
    }

    /// Insert `items` before the first item; panics (an engine bug) if they do not fit.
    pub(crate) fn insert_front(&mut self, items: &[T]) {
        let (k, len) = (items.len(), self.len);
        assert!(
            len + k <= N,
            "maple: fixed buffer of {N} overflowed (engine bug)"
        );
        self.items.copy_within(0..len, k);
        for (i, &it) in items.iter().enumerate() {
            self.items[i] = MaybeUninit::new(it);
        }
        // INVARIANT: `items[..k]` were just written and `items[k..len + k]` hold the old
        // initialised prefix.
        self.len = len + k;
    }
}

impl<T: Copy, const N: usize> StackVec<T, N> {
    /// Make `self` a copy of `other` (in place: no move of the whole buffer).
    #[inline]
    pub(crate) fn assign(&mut self, other: &Self) {
        self.items[..other.len].copy_from_slice(&other.items[..other.len]);
        // INVARIANT: the first `len` items were copied from initialised ones.
        self.len = other.len;
    }
}

impl<T: Copy, const N: usize> Clone for StackVec<T, N> {
    #[inline]
    fn clone(&self) -> Self {
        let mut c = Self::new();
        c.items[..self.len].copy_from_slice(&self.items[..self.len]);
        // INVARIANT: the first `len` items were copied from initialised ones.
        c.len = self.len;
        c
    }
}

impl<T: Copy, const N: usize> Deref for StackVec<T, N> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: the first `len` items are initialised (type invariant); MaybeUninit<T>
        // has T's layout.
        unsafe { core::slice::from_raw_parts(self.items.as_ptr().cast::<T>(), self.len) }
    }
}

impl<T: Copy, const N: usize> DerefMut for StackVec<T, N> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` gives exclusive access.
        unsafe { core::slice::from_raw_parts_mut(self.items.as_mut_ptr().cast::<T>(), self.len) }
    }
}
