//! What a tree slot can hold: the [`Entry`] trait and the [`Value`] small integer.

use core::fmt;

use rcu::{Domain, DropBox, Reclaim};
use std::sync::Arc;

/// Something that fits in one tree slot: a non-null owned pointer or a small integer.
///
/// A slot is one machine word; 0 means "empty". Implemented for [`Box<T>`], [`Arc<T>`]
/// (with `T: Send + Sync + 'static`) and [`Value`].
///
/// # Safety
/// The hidden word conversions must round-trip: `into_word` returns a non-zero word that
/// owns the value, `from_word` takes that ownership back exactly once, `word_ref` borrows
/// it without taking ownership, and `retire_word` arranges for the value to be dropped
/// after the domain's grace period.
///
/// One word may sit in several slots at once: a store into the middle of a range leaves
/// the same word on both sides. The tree counts such copies **by word value** and calls
/// `from_word`/`retire_word` only when the last slot holding the word goes, so two
/// independently owned values must never share a word unless dropping either one is the
/// same as dropping the other (as for two `Arc` clones of one allocation).
///
/// `OWNED = false` promises that words own nothing: `from_word` and `retire_word` must
/// then release nothing (the tree skips the counting and may drop such words any number
/// of times, or never). `clone_word` must return a word that owns a value equal to the
/// one behind its argument, reading that value only through a shared borrow (readers may
/// hold `&T` to it at the same time).
///
/// The crate's own implementations are the only ones tested; implement this for your own
/// types only if you mirror them exactly.
pub unsafe trait Entry: Send + Sync + 'static {
    /// What a reader gets back: `&'a T` for pointers, the value itself for [`Value`].
    type Ref<'a>: Copy;

    /// Convert into a non-zero slot word that owns the value.
    #[doc(hidden)]
    fn into_word(self) -> usize;

    /// Whether words own something (so one word in several slots needs counting).
    #[doc(hidden)]
    const OWNED: bool = true;

    /// Take back ownership of a word made by `into_word`.
    ///
    /// # Safety
    /// `word` came from `into_word` and ownership is taken back at most once.
    #[doc(hidden)]
    unsafe fn from_word(word: usize) -> Self;

    /// Borrow the value behind `word`.
    ///
    /// # Safety
    /// `word` came from `into_word` and the value stays alive for `'a`.
    #[doc(hidden)]
    unsafe fn word_ref<'a>(word: usize) -> Self::Ref<'a>;

    /// Drop the value behind `word` after the grace period of `domain`.
    ///
    /// # Safety
    /// `word` came from `into_word`, is unreachable for sections entered after this call,
    /// and is retired (or dropped) once.
    #[doc(hidden)]
    unsafe fn retire_word<D: Domain>(domain: &D, word: usize);

    /// Clone the value behind `word` into a new owning word, reading it only through a
    /// shared borrow (concurrent readers may hold references to it).
    ///
    /// # Safety
    /// `word` came from `into_word` and is alive for the duration of the call.
    #[doc(hidden)]
    unsafe fn clone_word(word: usize) -> usize
    where
        Self: Clone,
    {
        // SAFETY: the caller guarantees the word owns a live value; ManuallyDrop keeps that
        // ownership where it is. Only correct for types whose `from_word` does not assert
        // unique access to shared data (`Box` and `Arc` override this).
        let e = core::mem::ManuallyDrop::new(unsafe { Self::from_word(word) });
        Self::clone(&e).into_word()
    }

    /// Format the value behind a word for dumps.
    #[doc(hidden)]
    fn fmt_word(word: usize, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{word:#x}")
    }
}

/// Clone the value behind `word` into a new word (see [`Entry::clone_word`]).
///
/// # Safety
/// `word` came from `E::into_word` and is alive.
pub(crate) unsafe fn clone_word<E: Entry + Clone>(word: usize) -> usize {
    // SAFETY: forwarded from the caller.
    unsafe { E::clone_word(word) }
}

/// Drop the value behind `word` now.
///
/// # Safety
/// `word` came from `E::into_word`, no one can reach it any more, and it is dropped once.
pub(crate) unsafe fn drop_word<E: Entry>(word: usize) {
    // SAFETY: forwarded from the caller.
    drop(unsafe { E::from_word(word) });
}

// SAFETY: `Box::into_raw` is non-null (a dangling aligned address for zero-sized T) and
// owns the allocation; `from_raw` takes it back; `DropBox` drops it after the grace period.
unsafe impl<T: Send + Sync + 'static> Entry for Box<T> {
    type Ref<'a> = &'a T;

    #[inline]
    fn into_word(self) -> usize {
        Box::into_raw(self) as usize
    }

    #[inline]
    unsafe fn from_word(word: usize) -> Self {
        // SAFETY: the word came from Box::into_raw (caller contract).
        unsafe { Box::from_raw(word as *mut T) }
    }

    #[inline]
    unsafe fn word_ref<'a>(word: usize) -> &'a T {
        // SAFETY: the caller guarantees the box is alive for 'a.
        unsafe { &*(word as *const T) }
    }

    unsafe fn retire_word<D: Domain>(domain: &D, word: usize) {
        // SAFETY: the caller guarantees the pointer is unreachable and retired once;
        // DropBox frees it the way it was allocated.
        unsafe { domain.retire::<T, DropBox>(word as *mut T) }
    }

    unsafe fn clone_word(word: usize) -> usize
    where
        Self: Clone,
    {
        let ptr = word as *mut T;
        // SAFETY: `Box<T>` for a sized `T` is documented to be a single non-null pointer,
        // so a local copy of the pointer can be viewed as a `&Box<T>` (the caller keeps the
        // box alive). Cloning through that shared reference reads the value through a
        // shared borrow only: unlike rebuilding the box with `Box::from_raw`, it asserts no
        // unique access while readers hold `&T` to the same value. The view is never
        // dropped or moved out of.
        let b = unsafe { &*(&ptr as *const *mut T).cast::<Self>() };
        Self::clone(b).into_word()
    }
}

/// Reclaim an `Arc` by dropping the reference the tree held.
struct DropArc;

// SAFETY: the pointer came from Arc::into_raw and the tree's reference is given up once.
unsafe impl<T> Reclaim<T> for DropArc {
    unsafe fn reclaim(ptr: *mut T) {
        // SAFETY: see the impl comment.
        drop(unsafe { Arc::from_raw(ptr as *const T) });
    }
}

// SAFETY: `Arc::into_raw` is non-null and carries one strong reference, which `from_raw`
// and `DropArc` give back exactly once.
unsafe impl<T: Send + Sync + 'static> Entry for Arc<T> {
    type Ref<'a> = &'a T;

    #[inline]
    fn into_word(self) -> usize {
        Arc::into_raw(self) as usize
    }

    #[inline]
    unsafe fn from_word(word: usize) -> Self {
        // SAFETY: the word came from Arc::into_raw (caller contract).
        unsafe { Arc::from_raw(word as *const T) }
    }

    #[inline]
    unsafe fn word_ref<'a>(word: usize) -> &'a T {
        // SAFETY: the tree's strong reference keeps the value alive for 'a (caller contract).
        unsafe { &*(word as *const T) }
    }

    unsafe fn retire_word<D: Domain>(domain: &D, word: usize) {
        // SAFETY: the caller guarantees the pointer is unreachable and retired once.
        unsafe { domain.retire::<T, DropArc>(word as *mut T) }
    }

    unsafe fn clone_word(word: usize) -> usize
    where
        Self: Clone,
    {
        // SAFETY: the word came from Arc::into_raw and its strong reference is alive
        // (caller contract); the new strong reference is owned by the returned word, which
        // is the same pointer (copies of one Arc share a word, counted by word).
        unsafe { Arc::increment_strong_count(word as *const T) };
        word
    }
}

/// A small integer stored in the slot itself, no allocation (like the kernel's
/// `xa_mk_value`). Holds `0..=Value::MAX`.
///
/// ```
/// use maple::Value;
/// assert_eq!(Value::new(7).map(Value::get), Some(7));
/// assert!(Value::new(Value::MAX).is_some());
/// assert!(Value::new(Value::MAX + 1).is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Value(usize);

impl Value {
    /// The largest storable integer (one bit of the word is the tag).
    pub const MAX: usize = usize::MAX >> 1;

    /// `Some(Value)` if `v <= Value::MAX`.
    #[inline]
    pub fn new(v: usize) -> Option<Value> {
        (v <= Value::MAX).then_some(Value(v))
    }

    /// The integer.
    #[inline]
    pub fn get(self) -> usize {
        self.0
    }
}

// SAFETY: the word `(v << 1) | 1` is never zero, owns nothing and round-trips exactly.
unsafe impl Entry for Value {
    type Ref<'a> = Value;

    const OWNED: bool = false;

    #[inline]
    fn into_word(self) -> usize {
        (self.0 << 1) | 1
    }

    #[inline]
    unsafe fn from_word(word: usize) -> Self {
        Value(word >> 1)
    }

    #[inline]
    unsafe fn word_ref<'a>(word: usize) -> Self::Ref<'a> {
        Value(word >> 1)
    }

    unsafe fn retire_word<D: Domain>(_domain: &D, _word: usize) {}

    fn fmt_word(word: usize, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", word >> 1)
    }
}
