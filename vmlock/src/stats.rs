//! Sharded read-path counters.
//!
//! Each thread adds to one of [`SHARDS`] cache-line-padded shards (picked from the
//! address of a thread-local), so counting on a fast path does not make one line hot for
//! every CPU. A snapshot sums the shards (not atomic as a whole).

use crate::sync::atomic::{AtomicU64, Ordering};
use crate::types::LockStats;

/// Number of shards.
const SHARDS: usize = 16;

/// What to count.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Counter {
    Success = 0,
    Abort,
    Miss,
    Retry,
    Fallback,
    SpecOk,
    SpecFailed,
}

const COUNTERS: usize = 7;

#[repr(align(128))] // two cache lines: no false sharing even with adjacent-line prefetch
#[derive(Default)]
struct Shard {
    c: [AtomicU64; COUNTERS],
}

/// The counters of one `Mm`.
pub(crate) struct Stats {
    shards: Box<[Shard]>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }
}

thread_local! {
    static KEY: u8 = const { 0 };
}

fn shard_index() -> usize {
    // Thread-locals of different threads live at different addresses; mix the bits.
    let addr = KEY.with(|k| k as *const u8 as usize);
    (addr >> 6 ^ addr >> 12 ^ addr >> 20) % SHARDS
}

impl Stats {
    pub(crate) fn add(&self, c: Counter) {
        // Relaxed: a statistic; nothing is ordered by it.
        self.shards[shard_index()].c[c as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> LockStats {
        let sum = |c: Counter| {
            // Relaxed: a statistic snapshot.
            self.shards
                .iter()
                .map(|s| s.c[c as usize].load(Ordering::Relaxed))
                .sum()
        };
        LockStats {
            success: sum(Counter::Success),
            abort: sum(Counter::Abort),
            miss: sum(Counter::Miss),
            retry: sum(Counter::Retry),
            fallback: sum(Counter::Fallback),
            spec_ok: sum(Counter::SpecOk),
            spec_failed: sum(Counter::SpecFailed),
        }
    }
}
