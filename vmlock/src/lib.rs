//! A user-space address space with per-VMA locks, built on the maple tree.
