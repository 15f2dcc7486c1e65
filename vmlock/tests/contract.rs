//! The shared API contract of `vmlock`, kept byte-identical to `shared/contract/vmlock_contract.rs`.
//! That file is not rustfmt-formatted, so it lives in a module that rustfmt skips.
#[rustfmt::skip]
#[allow(clippy::len_zero, clippy::map_clone)] // the verbatim contract is not ours to restyle
#[path = "contract/vmlock_contract.rs"]
mod vmlock_contract;
