//! The examples run as tests, with their output checked. Each runs on a worker thread and
//! fails after a bound instead of hanging.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

#[allow(dead_code)] // its `main` is for `cargo run --example`
#[path = "../examples/address_space.rs"]
mod address_space;

use address_space::Target;

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
fn address_space_example() {
    let report = bounded(Duration::from_secs(120), address_space::run);
    let out = report.to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("3 threads made 60000 faults while a writer made "),
        "{out}"
    );
    assert!(report.changes >= 500, "{out}");
    let mut total = 0;
    for (t, n) in report.tallies {
        total += n.total();
        match t {
            // Always mapped with the access allowed: served, whatever the writer does.
            Target::Text | Target::Data | Target::Heap | Target::ChurnRead => {
                assert_eq!(n.ok(), n.total(), "{t:?}\n{out}")
            }
            // Refused only while the writer had the page read-only.
            Target::ChurnWrite => assert_eq!(n.efault, 0, "{out}"),
            Target::Hole => assert_eq!(n.efault, n.total(), "{out}"),
        }
        assert!(n.total() > 0, "{t:?}\n{out}");
    }
    assert_eq!(total, 60_000);
    // Faults away from the writer never needed the mmap_lock.
    for t in [Target::Text, Target::Data, Target::Heap] {
        let n = report.tallies.iter().find(|x| x.0 == t).map(|x| x.1);
        assert_eq!(n.map(|n| n.mmap_lock), Some(0), "{t:?}\n{out}");
    }
    assert!(
        lines.contains(&"address space valid after the run: true"),
        "{out}"
    );
    assert!(
        lines.contains(&"final layout is the writer's alone: true"),
        "{out}"
    );
    // The listing: text, data, heap, then the churn region's VMAs below the hole.
    let n = report.listing.len();
    assert!(
        lines.contains(&&*format!("final layout ({n} VMAs):")),
        "{out}"
    );
    assert!(
        lines[lines.len() - 1].ends_with(" r-xp file 1 at page 0"),
        "{out}"
    );
    assert!(
        lines[lines.len() - 2].ends_with(" rw-p file 1 at page 32"),
        "{out}"
    );
    assert!(lines[lines.len() - 3].ends_with(" rw-p anonymous"), "{out}");
}
