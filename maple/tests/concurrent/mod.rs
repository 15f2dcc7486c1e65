//! Helpers for concurrency tests that must fail instead of hanging.
//!
//! * [`run_bounded`] runs a whole scenario on a detached worker thread and panics if it
//!   has not finished within a bound (a hang in the code under test fails the test; the
//!   stuck worker is left behind and dies with the process).
//! * [`Steps`] is a deadline plus an abort flag for hand-written handshakes between the
//!   threads of one scenario: every wait is bounded, and a thread that panics (or
//!   finishes early) wakes the others' waits instead of leaving them spinning.
//! * [`Items`] records what a double-ended iteration yielded from each end and checks the
//!   ordering half of the iteration contract (`ReadGuard::range`): front items strictly
//!   increase, back items strictly decrease, no index is yielded twice.
#![allow(dead_code)]

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Run `f` on a worker thread; panic if it panics (with its message) or runs longer than
/// `bound`.
pub fn run_bounded<R: Send + 'static>(
    what: &str,
    bound: Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .name(what.to_string())
        .spawn(move || {
            let r = f();
            // The receiver may be gone if we already timed out.
            let _ = tx.send(());
            r
        })
        .expect("spawn the scenario thread");
    match rx.recv_timeout(bound) {
        // Finished (sent) or panicked (the sender dropped): join to get the result or the
        // panic; the thread has already left `f`, so this does not block.
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => worker
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e)),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: did not finish within {bound:?} (hang?)")
        }
    }
}

/// A deadline and an abort flag shared by the threads of one scenario.
#[derive(Debug)]
pub struct Steps {
    deadline: Instant,
    abort: AtomicBool,
}

impl Steps {
    /// Waits fail once `bound` has passed from now.
    pub fn new(bound: Duration) -> Steps {
        Steps {
            deadline: Instant::now() + bound,
            abort: AtomicBool::new(false),
        }
    }

    /// Whether another thread gave up (panicked or called [`Steps::abort`]).
    pub fn aborted(&self) -> bool {
        // Relaxed: a plain flag; the data each thread checks is synchronised separately.
        self.abort.load(Ordering::Relaxed)
    }

    /// Make every pending and later wait fail.
    pub fn abort(&self) {
        // Relaxed: as in `aborted`.
        self.abort.store(true, Ordering::Relaxed);
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Spin (yielding) until `cond` holds; panic if the other side aborted or the
    /// deadline passed.
    pub fn wait(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let mut spins = 0u32;
        while !cond() {
            if self.aborted() {
                panic!("{what}: another thread of the scenario failed");
            }
            spins += 1;
            if spins % 64 == 0 && self.expired() {
                self.abort();
                panic!("{what}: no progress before the deadline (stalled?)");
            }
            std::thread::yield_now();
        }
    }

    /// A guard for one participating thread: when it is dropped by a panic, the other
    /// threads' waits fail at once instead of waiting for the deadline.
    pub fn member(&self) -> Member<'_> {
        Member(self)
    }
}

/// See [`Steps::member`].
#[derive(Debug)]
pub struct Member<'a>(&'a Steps);

impl Drop for Member<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abort();
        }
    }
}

/// One yielded item and the clip bounds in force when it was yielded: `lo` is one past the
/// last front item (0 before any), `hi` one below the last back item (`usize::MAX` before
/// any). By the contract, an item is the stored range it came from cut to `[lo, hi]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub span: RangeInclusive<usize>,
    pub value: usize,
    pub back: bool,
    pub lo: usize,
    pub hi: usize,
}

impl Item {
    /// What the contract says this item must be if it came from the stored range `piece`.
    pub fn expected(&self, piece: &RangeInclusive<usize>) -> RangeInclusive<usize> {
        (*piece.start()).max(self.lo)..=(*piece.end()).min(self.hi)
    }
}

/// The items of one iteration, checked for order and disjointness as they arrive.
#[derive(Clone, Debug, Default)]
pub struct Items {
    front: Vec<Item>,
    back: Vec<Item>,
    lo: usize,
    hi: usize,
}

impl Items {
    pub fn new() -> Items {
        Items {
            front: Vec::new(),
            back: Vec::new(),
            lo: 0,
            hi: usize::MAX,
        }
    }

    /// The clip bounds the next item will be checked against.
    pub fn bounds(&self) -> (usize, usize) {
        (self.lo, self.hi)
    }

    /// Record an item from the front (`back == false`) or the back; panics (naming
    /// `what`) if it overlaps or is out of order with what was yielded before.
    pub fn push(
        &mut self,
        what: &str,
        back: bool,
        span: RangeInclusive<usize>,
        value: usize,
    ) -> &Item {
        let (a, b) = (*span.start(), *span.end());
        assert!(a <= b, "{what}: inverted item {span:?}");
        assert!(
            a >= self.lo && b <= self.hi,
            "{what}: item {span:?} from the {} overlaps or precedes what was yielded \
             (front yielded below {}, back above {}); last items: {:?} / {:?}",
            if back { "back" } else { "front" },
            self.lo,
            self.hi,
            tail(&self.front),
            tail(&self.back)
        );
        let item = Item {
            span,
            value,
            back,
            lo: self.lo,
            hi: self.hi,
        };
        if back {
            self.hi = a.wrapping_sub(1);
            self.back.push(item);
            self.back.last().unwrap()
        } else {
            self.lo = b.wrapping_add(1);
            self.front.push(item);
            self.front.last().unwrap()
        }
    }

    /// Every item in index order.
    pub fn in_order(&self) -> Vec<Item> {
        let mut v = self.front.clone();
        v.extend(self.back.iter().rev().cloned());
        v
    }

    /// How many items were yielded.
    pub fn len(&self) -> usize {
        self.front.len() + self.back.len()
    }

    /// Assert the items tile `[a, b]` with no gap: the first starts at or before `a`, each
    /// next one starts right after the previous, the last ends at or after `b`.
    pub fn assert_tiles(&self, what: &str, a: usize, b: usize) {
        let v = self.in_order();
        let mut next = a;
        for (n, it) in v.iter().enumerate() {
            assert!(
                *it.span.start() <= next,
                "{what}: index {next} of the always-covered {a}..={b} was skipped; items \
                 around it: {:?}",
                &v[n.saturating_sub(3)..(n + 3).min(v.len())]
            );
            if *it.span.end() >= b {
                return;
            }
            next = it.span.end() + 1;
        }
        panic!(
            "{what}: items stop before {b} (at {next}) in the always-covered {a}..={b}; last \
             items: {:?}",
            tail(&v)
        );
    }
}

/// The last few items, for failure messages.
fn tail(v: &[Item]) -> &[Item] {
    &v[v.len().saturating_sub(3)..]
}

/// Drive `it` to the end, taking each item from the back when `pick_back()` says so;
/// record and check every item (values mapped by `val`).
pub fn drive<V, I>(
    what: &str,
    mut it: I,
    mut pick_back: impl FnMut() -> bool,
    val: impl Fn(V) -> usize,
) -> Items
where
    I: DoubleEndedIterator<Item = (RangeInclusive<usize>, V)>,
{
    let mut items = Items::new();
    loop {
        let back = pick_back();
        let got = if back { it.next_back() } else { it.next() };
        match got {
            Some((span, v)) => {
                items.push(what, back, span, val(v));
            }
            None => {
                // Exhausted from one end means exhausted from both.
                assert!(
                    it.next().is_none() && it.next_back().is_none(),
                    "{what}: not fused"
                );
                return items;
            }
        }
    }
}
