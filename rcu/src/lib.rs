//! Read-side sections, deferred reclamation, `SeqCount` and a type-stable object cache.
