//! Fuzz targets for `maple` and `vmlock`, differential against simple oracles.
//!
//! The logic of every target lives here, in this library, so that both `cargo fuzz run
//! <target>` (through the thin wrappers in `fuzz_targets/`) and an ordinary `cargo test`
//! on the stable toolchain (`tests/replay.rs`, which replays the committed corpus and
//! regression inputs plus seeded random inputs) run exactly the same code.
//!
//! Each target decodes its input into a list of operations ([`input::Input`] steers
//! indices towards `0`, `usize::MAX`, node edges and the neighbours of earlier indices),
//! applies them to the real structure and to a deliberately simple model, checks the
//! structure's own `validate()` after every operation and panics on the first
//! disagreement, printing the recent operations and a dump of the structure.
//!
//! ```
//! // Every byte string is a valid input; this one stores and reads back a few ranges.
//! maple_fuzz::run_maple_ops(&[0, 0, 4, 10, 5, 1, 6, 9, 0]);
//! ```

pub mod concurrent;
pub mod input;
pub mod maple_alloc;
pub mod maple_ops;
pub mod maple_rcu;
pub mod oracle;
pub mod vmlock_ops;
pub mod vmlock_rcu;

pub use maple_alloc::run_maple_alloc;
pub use maple_ops::run_maple_ops;
pub use maple_rcu::{run_maple_rcu, run_maple_rcu_avoiding};
pub use vmlock_ops::run_vmlock_ops;
pub use vmlock_rcu::run_vmlock_rcu;

/// Bugs found by the targets in code this crate does not own and not fixed yet (ids from
/// `regressions/README.md`; their inputs are in `regressions/pending/`). The replay test's
/// seeded random inputs steer clear of them, so CI stays green until they are fixed.
pub const OPEN_BUGS: &[&str] = &[];

/// Whether the environment asks the targets to steer clear of the open bug `id`.
///
/// `MAPLE_FUZZ_AVOID` is a comma-separated list of bug ids from `regressions/README.md`
/// (`f1`: owned entries split by a store, so only `Value` entries are used; `v1`: file page
/// offsets near `u64::MAX`, so only small offsets are used). It lets a fuzzing campaign get
/// past a known, not yet fixed bug; the replay test never sets it, so the regression
/// inputs keep failing until the bug is fixed.
pub fn avoid(id: &str) -> bool {
    static LIST: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    LIST.get_or_init(|| {
        std::env::var("MAPLE_FUZZ_AVOID")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .collect()
    })
    .iter()
    .any(|s| s == id)
}

/// Operations run by the targets in this process (writer and reader operations, not
/// inputs): what a fuzzing campaign reports.
static OPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Count `n` operations. With `MAPLE_FUZZ_OPS` set in the environment, every million
/// operations print a line `maple-fuzz: <total> operations` to stderr, so a campaign's log
/// (libFuzzer prints stderr) records how many operations it ran.
pub fn count_ops(n: u64) {
    static REPORT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // Relaxed: a statistic; each call's addition is atomic, nothing is ordered by it.
    let before = OPS.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    let after = before + n;
    if before / 1_000_000 != after / 1_000_000
        && *REPORT.get_or_init(|| std::env::var_os("MAPLE_FUZZ_OPS").is_some())
    {
        eprintln!("maple-fuzz: {after} operations");
    }
}

/// Operations counted so far in this process (see [`count_ops`]).
pub fn ops() -> u64 {
    // Relaxed: a statistic.
    OPS.load(std::sync::atomic::Ordering::Relaxed)
}
