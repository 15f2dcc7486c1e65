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
