//! The maple tree: an RCU-safe B-tree of ranges with gap search.
