//! Replay every committed corpus and regression input of every target, plus seeded random
//! inputs, through the same library code the fuzzers run. Stable toolchain, no libFuzzer.
//!
//! `FUZZ_REPLAY_RANDOM=<n>` changes the number of random inputs per target (default 2000).

use std::path::{Path, PathBuf};

use maple_fuzz::input::SplitMix64;

type Target = fn(&[u8]);

/// Every target and its entry point.
const TARGETS: &[(&str, Target)] = &[
    ("maple_ops", maple_fuzz::run_maple_ops),
    ("maple_alloc", maple_fuzz::run_maple_alloc),
    ("vmlock_ops", maple_fuzz::run_vmlock_ops),
];

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

#[test]
fn corpus() {
    for &(name, run) in TARGETS {
        let n = replay_dir("corpus", name, run);
        eprintln!("{name}: {n} corpus inputs");
    }
}

#[test]
fn regressions() {
    for &(name, run) in TARGETS {
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
    for (t, &(name, run)) in TARGETS.iter().enumerate() {
        let mut rng = SplitMix64(0x6d61_706c_6500 + t as u64);
        for i in 0..n {
            // Mostly short inputs (many small trees), some long ones (deep trees).
            let len = match i % 8 {
                0 => 2048 + (rng.next_u64() % 4096) as usize,
                1..=2 => 256 + (rng.next_u64() % 1024) as usize,
                _ => (rng.next_u64() % 256) as usize,
            };
            let data = rng.bytes(len);
            let res = std::panic::catch_unwind(|| run(&data));
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
    }
}
