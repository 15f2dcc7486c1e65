//! Replay every committed corpus and regression input of every target, plus seeded random
//! inputs, through the same library code the fuzzers run. Stable toolchain, no libFuzzer.
//!
//! `FUZZ_REPLAY_RANDOM=<n>` changes the number of random inputs per sequential target
//! (default 2000); the concurrent targets (`maple_rcu`, `vmlock_rcu`, each input a writer
//! and one or two reader threads) run a quarter of that.
//!
//! `FUZZ_REPLAY_ONLY=<target>,...` limits every test here to the named targets (e.g. the
//! concurrent ones under ThreadSanitizer, `.ci/tsan`).
//!
//! `regressions/pending/<target>/` holds minimised inputs of bugs found in code this crate
//! does not own and not fixed yet: they are *not* replayed by default (CI stays green), but
//! `cargo test -- --ignored pending` runs each one and says which still fail.

use std::path::{Path, PathBuf};

use maple_fuzz::input::SplitMix64;

type Target = fn(&[u8]);

/// Every target and its entry point.
const TARGETS: &[(&str, Target)] = &[
    ("maple_ops", maple_fuzz::run_maple_ops),
    ("maple_alloc", maple_fuzz::run_maple_alloc),
    ("vmlock_ops", maple_fuzz::run_vmlock_ops),
    ("maple_rcu", maple_fuzz::run_maple_rcu),
    ("vmlock_rcu", maple_fuzz::run_vmlock_rcu),
];

/// The concurrent targets (fewer seeded inputs: each one starts threads).
const CONCURRENT: &[&str] = &["maple_rcu", "vmlock_rcu"];

/// The targets to replay: all, or those named in `FUZZ_REPLAY_ONLY`.
fn targets() -> Vec<(&'static str, Target)> {
    let only = std::env::var("FUZZ_REPLAY_ONLY").unwrap_or_default();
    let only: Vec<&str> = only
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    TARGETS
        .iter()
        .copied()
        .filter(|(name, _)| only.is_empty() || only.contains(name))
        .collect()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn replay_dir(kind: &str, name: &str, run: Target) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(kind).join(name);
    let inputs = files(&dir);
    for p in &inputs {
        let data = std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        eprintln!("replay {}", p.display());
        run(&data);
    }
    inputs.len()
}

/// `maple_rcu` steering clear of the open bugs (`maple_fuzz::OPEN_BUGS`): random inputs
/// hit them often, and the committed corpus was grown by campaigns that avoided them. Their
/// minimised inputs wait in `regressions/pending/`.
fn maple_rcu_past_open_bugs(data: &[u8]) {
    maple_fuzz::run_maple_rcu_avoiding(data, maple_fuzz::OPEN_BUGS)
}

#[test]
fn corpus() {
    for (name, run) in targets() {
        let run: Target = if name == "maple_rcu" {
            maple_rcu_past_open_bugs
        } else {
            run
        };
        let n = replay_dir("corpus", name, run);
        eprintln!("{name}: {n} corpus inputs");
    }
}

#[test]
fn regressions() {
    for (name, run) in targets() {
        let n = replay_dir("regressions", name, run);
        eprintln!("{name}: {n} regression inputs");
    }
}

#[test]
fn seeded_random() {
    let n: usize = std::env::var("FUZZ_REPLAY_RANDOM")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let mut overlapped_before = 0;
    for (name, run) in targets() {
        let t = TARGETS.iter().position(|x| x.0 == name).unwrap_or(0);
        let mut rng = SplitMix64(0x6d61_706c_6500 + t as u64);
        let n = if CONCURRENT.contains(&name) { n / 4 } else { n };
        for i in 0..n {
            // Mostly short inputs (many small trees), some long ones (deep trees).
            let len = match i % 8 {
                0 => 2048 + (rng.next_u64() % 4096) as usize,
                1..=2 => 256 + (rng.next_u64() % 1024) as usize,
                _ => (rng.next_u64() % 256) as usize,
            };
            let data = rng.bytes(len);
            let res = std::panic::catch_unwind(|| {
                if name == "maple_rcu" {
                    maple_rcu_past_open_bugs(&data)
                } else {
                    run(&data)
                }
            });
            if res.is_err() {
                let path = std::env::temp_dir().join(format!("{name}-seeded-{i}.bin"));
                let _ = std::fs::write(&path, &data);
                panic!(
                    "{name}: seeded input {i} failed; saved to {}",
                    path.display()
                );
            }
        }
        eprintln!("{name}: {n} seeded random inputs");
        if CONCURRENT.contains(&name) && n >= 100 {
            // The race rounds must really have overlapped reads with writer changes, or
            // the concurrent checks checked nothing concurrent.
            let stats = &maple_fuzz::concurrent::RACE_STATS;
            // Relaxed: statistics; every run joined its threads before returning.
            let overlapped = stats.overlapped.load(std::sync::atomic::Ordering::Relaxed);
            assert!(
                overlapped > overlapped_before,
                "{name}: no reader observation overlapped a writer change"
            );
            overlapped_before = overlapped;
        }
    }
}

/// Replay the pending inputs (bugs found, not yet fixed) and report each one's state.
/// Fails only if a pending input no longer fails: it should then move to `regressions/`.
#[test]
#[ignore = "pending inputs reproduce open bugs; run with --ignored"]
fn pending() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut fixed = Vec::new();
    for (name, run) in targets() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("regressions/pending")
            .join(name);
        for p in files(&dir) {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            // Races replay often, not always: a few tries.
            let fails = (0..5).any(|_| std::panic::catch_unwind(|| run(&data)).is_err());
            eprintln!(
                "{}: {}",
                p.display(),
                if fails { "still fails" } else { "passes" }
            );
            if !fails {
                fixed.push(p.display().to_string());
            }
        }
    }
    std::panic::set_hook(hook);
    assert!(
        fixed.is_empty(),
        "pending inputs that pass now (move them to regressions/ and update the README): {fixed:?}"
    );
}
