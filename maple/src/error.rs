//! Error types. Every error that carries a value hands it back to the caller.

use core::fmt;

/// A range argument was empty (`7..7`) or inverted (start > end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidRange;

impl fmt::Display for InvalidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("empty or inverted range")
    }
}

impl std::error::Error for InvalidRange {}

/// Why a gap search failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GapError {
    /// No empty run of the requested size fits in the window.
    Busy,
    /// Size 0, an empty window, or a window narrower than the size.
    Invalid,
}

impl fmt::Display for GapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GapError::Busy => f.write_str("no free area of that size in the window"),
            GapError::Invalid => f.write_str("invalid size or window"),
        }
    }
}

impl std::error::Error for GapError {}

/// `store_range` was given an invalid range; the value comes back.
pub struct StoreError<E> {
    /// The value that was not stored.
    pub value: E,
}

impl<E> fmt::Debug for StoreError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreError").finish_non_exhaustive()
    }
}

impl<E> fmt::Display for StoreError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("store into an empty or inverted range")
    }
}

impl<E> std::error::Error for StoreError<E> {}

/// Why `insert_range` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InsertErrorKind {
    /// Some index of the range already holds an entry.
    Occupied,
    /// The range was empty or inverted.
    InvalidRange,
}

/// `insert_range` failed; the value comes back.
pub struct InsertError<E> {
    /// The value that was not stored.
    pub value: E,
    /// Why.
    pub kind: InsertErrorKind,
}

impl<E> fmt::Debug for InsertError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InsertError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<E> fmt::Display for InsertError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            InsertErrorKind::Occupied => f.write_str("range already (partly) occupied"),
            InsertErrorKind::InvalidRange => f.write_str("empty or inverted range"),
        }
    }
}

impl<E> std::error::Error for InsertError<E> {}

/// Why an allocation (`alloc_range`, `alloc_rrange`, `alloc_cyclic`) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AllocErrorKind {
    /// No free area fits.
    Busy,
    /// Size 0, an empty window, or a window narrower than the size.
    Invalid,
    /// The tree was made with `new()`, not `new_alloc()`.
    NotAllocTree,
}

/// An allocation failed; the value comes back.
pub struct AllocError<E> {
    /// The value that was not stored.
    pub value: E,
    /// Why.
    pub kind: AllocErrorKind,
}

impl<E> fmt::Debug for AllocError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllocError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<E> fmt::Display for AllocError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            AllocErrorKind::Busy => f.write_str("no free area fits"),
            AllocErrorKind::Invalid => f.write_str("invalid size or window"),
            AllocErrorKind::NotAllocTree => f.write_str("not an allocation tree"),
        }
    }
}

impl<E> std::error::Error for AllocError<E> {}

/// A structural invariant does not hold; names the first violation and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidateError {
    path: String,
    message: String,
}

impl ValidateError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ValidateError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Where: `root` followed by the slot offsets taken from the root (`root/3/0`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ValidateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.path, self.message)
    }
}

impl std::error::Error for ValidateError {}

// ---------------------------------------------------------------------------------------
// Aligned gap search and exact-range removal (issue 12).

/// Why an aligned gap search ([`ReadGuard::empty_area_aligned`]) or an aligned allocation
/// ([`WriteGuard::alloc_range_aligned`]) failed.
///
/// Unlike [`GapError`], every kind of bad input has its own variant, so a caller can tell
/// which argument was wrong.
///
/// ```
/// use maple::{AreaError, MapleTree, Value};
/// let t: MapleTree<Value> = MapleTree::new_alloc();
/// let r = t.read();
/// assert_eq!(r.empty_area_aligned(0..=99, 10, 3, 0), Err(AreaError::BadAlign));
/// assert_eq!(r.empty_area_aligned(0..=99, 0, 4, 0), Err(AreaError::ZeroSize));
/// assert_eq!(r.empty_area_aligned(0..=9, 11, 4, 0), Err(AreaError::WindowTooSmall));
/// // Wide enough, but no start in 1..=6 is a multiple of 8.
/// assert_eq!(r.empty_area_aligned(1..=10, 4, 8, 0), Err(AreaError::Busy));
/// assert_eq!(AreaError::BadAlign.to_string(), "alignment is 0 or not a power of two");
/// ```
///
/// [`ReadGuard::empty_area_aligned`]: crate::ReadGuard::empty_area_aligned
/// [`WriteGuard::alloc_range_aligned`]: crate::WriteGuard::alloc_range_aligned
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AreaError {
    /// No aligned run of the requested size is empty inside the window.
    Busy,
    /// The size was 0.
    ZeroSize,
    /// The alignment was 0 or not a power of two.
    BadAlign,
    /// The window was empty or inverted (`7..7`, `9..=8`).
    EmptyWindow,
    /// The window is narrower than the size (so `start + size` would leave it, or overflow).
    WindowTooSmall,
    /// Only from the allocating calls: the tree was made with `new()`, not `new_alloc()`.
    NotAllocTree,
}

impl fmt::Display for AreaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AreaError::Busy => "no aligned free area of that size in the window",
            AreaError::ZeroSize => "size 0",
            AreaError::BadAlign => "alignment is 0 or not a power of two",
            AreaError::EmptyWindow => "empty or inverted window",
            AreaError::WindowTooSmall => "window narrower than the size",
            AreaError::NotAllocTree => "not an allocation tree",
        })
    }
}

impl std::error::Error for AreaError {}

impl From<AreaError> for GapError {
    /// `Busy` stays `Busy`; every kind of bad input is `Invalid`.
    fn from(e: AreaError) -> GapError {
        match e {
            AreaError::Busy => GapError::Busy,
            _ => GapError::Invalid,
        }
    }
}

/// An aligned allocation failed; the value comes back.
pub struct AreaAllocError<E> {
    /// The value that was not stored.
    pub value: E,
    /// Why.
    pub kind: AreaError,
}

impl<E> fmt::Debug for AreaAllocError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AreaAllocError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<E> fmt::Display for AreaAllocError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "aligned allocation failed: {}", self.kind)
    }
}

impl<E> std::error::Error for AreaAllocError<E> {}

/// Why [`WriteGuard::remove_exact`](crate::WriteGuard::remove_exact) removed nothing (the
/// tree is unchanged).
///
/// ```
/// use maple::{MapleTree, RemoveError, Value};
/// let t: MapleTree<Value> = MapleTree::new_alloc();
/// let w = t.lock();
/// w.store_range(10..=19, Value::new(1).unwrap()).unwrap();
/// assert_eq!(w.remove_exact(30..=39), Err(RemoveError::Vacant));
/// assert_eq!(w.remove_exact(10..=18), Err(RemoveError::Mismatch { found: 10..=19 }));
/// assert_eq!(
///     RemoveError::Mismatch { found: 10..=19 }.to_string(),
///     "a different range is stored there: 10..=19"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RemoveError {
    /// The range argument was empty or inverted.
    InvalidRange,
    /// Nothing is stored anywhere in the range.
    Vacant,
    /// Something is stored there, but not exactly this range: `found` is the first stored
    /// range overlapping the argument.
    Mismatch {
        /// The first stored range that overlaps the requested one.
        found: core::ops::RangeInclusive<usize>,
    },
}

impl fmt::Display for RemoveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoveError::InvalidRange => f.write_str("empty or inverted range"),
            RemoveError::Vacant => f.write_str("nothing is stored in that range"),
            RemoveError::Mismatch { found } => {
                write!(f, "a different range is stored there: {found:?}")
            }
        }
    }
}

impl std::error::Error for RemoveError {}
