//! Shared workloads, peers and tables for the maple-rs benchmarks.
//!
//! The `compare` binary (`cargo run --release -p benches --bin compare`) prints one markdown
//! table per workload, every figure with its ratio against a peer measured in the same run;
//! the criterion benches under `benches/` measure the same operations for closer study.
//!
//! - [`workload`]: SplitMix64 and the range layout of DESIGN.md ("The bar to beat").
//! - [`peers`]: `BTreeMap`, `RwLock<BTreeMap>`, `SkipMap`, `scc::TreeIndex`, `rangemap`
//!   behind one lookup trait, a `BTreeMap` range map with the tree's write semantics, and
//!   the linear gap scan.
//! - [`maple_peers`]: the maple tree behind the same adapters, on both rcu backends.
//! - [`harness`]: warm-up, calibrated batches run interleaved, medians, thread CPU time.
//! - [`tables`]: one module per table and the registry `compare` walks.
//! - [`alloc`]: the counting allocator behind the memory table.
//! - [`svg`]: SVG charts of the lookup, gap and hot-vma tables (`compare --svg DIR`).
//!
//! ```
//! use benches::peers::{BTreePeer, RangeLookup};
//! use benches::workload::Layout;
//! let layout = Layout::new(1000);
//! let map = BTreePeer::build(&layout);
//! let mut points = layout.points();
//! let x = points.next_point();
//! assert_eq!(map.lookup(x), layout.expected(x));
//! ```

pub mod alloc;
pub mod harness;
pub mod maple_peers;
pub mod peers;
pub mod report;
pub mod svg;
pub mod tables;
pub mod workload;
