//! The examples run as tests, with their output checked. Each runs on a worker thread and
//! fails after a bound instead of hanging.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

#[allow(dead_code)] // its `main` is for `cargo run --example`
#[path = "../examples/custom_domain.rs"]
mod custom_domain;

/// Run `f` on a worker thread; panic if it takes longer than `limit`.
fn bounded<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("did not finish within {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the example panicked"),
    }
}

#[test]
fn custom_domain_example() {
    let report = bounded(Duration::from_secs(120), custom_domain::run);
    let out = report.to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 8, "{out}");
    assert_eq!(lines[0], "maple tree on the `counter` domain");
    assert_eq!(
        lines[1],
        "a value loaded in a read section outlived its replacement: yes"
    );
    assert_eq!(
        lines[2],
        "and was freed by synchronize after the section: yes"
    );
    // 64 ranges, 40 passes, every other one storing two halves: 20 * 64 * (1 + 2).
    assert!(
        lines[3].starts_with("4 readers made ") && lines[3].ends_with(" stores"),
        "{out}"
    );
    assert_eq!(report.stores, 3840);
    assert!(report.loads >= 4 * 32, "{report:?}");
    assert_eq!(lines[4], "loads that found the wrong value or none: 0");
    // Each of the two `synchronize` calls ends two grace periods; how many more end
    // while the writer runs depends on when the readers' counters drain.
    assert!(report.grace_periods >= 4, "{report:?}");
    assert_eq!(lines[6], "retired objects pending after synchronize: 0");
    // 64 initial values, 1 replacement, 3840 stores.
    assert_eq!(lines[7], "values created: 3905, dropped: 3905");
}
