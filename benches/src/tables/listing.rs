//! **listing**: how long a writer's `mprotect` takes while other threads list the address
//! space, with the lock-free listing ([`Mm::vmas_rcu`], as Linux reads `/proc/pid/maps`
//! since 6.17) against the listing under `mmap_read_lock` ([`Mm::vmas`], as before): a
//! locked listing makes every writer wait until it is done. The kernel reported about 10x
//! better update latency with the lock-free `/proc/pid/maps`.
//!
//! The writer splits a VMA in the middle of the space (`mprotect` of its first page) and
//! merges it back (the old protection), timing each call; the readers list continuously.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use vmlock::{Backing, MapFlags, MapRequest, Mm, MmConfig, Prot, PAGE_SIZE};

use super::fault::{pin_to, preemptions, BASE};
use super::{Ctx, TableDef};
use crate::report::{fmt_ns, fmt_ratio, verdict, Table};
use crate::workload::SplitMix64;

/// Registry entry.
pub const DEF: TableDef = TableDef {
    name: "listing",
    about: "writer latency while readers list: lock-free listing vs listing under the mmap_lock",
    run,
};

/// VMAs in the address space (a mid-sized process).
pub const VMAS: usize = 500;
/// The writer's own work between two split-and-merge pairs (spinning).
pub const THINK: Duration = Duration::from_micros(5);

/// How the readers list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Listing {
    /// No readers: the writer alone.
    Alone,
    /// [`Mm::vmas`]: under `mmap_read_lock`.
    Locked,
    /// [`Mm::vmas_rcu`]: lock-free.
    Rcu,
}

impl Listing {
    /// All variants, in table order.
    pub const ALL: [Listing; 3] = [Listing::Locked, Listing::Rcu, Listing::Alone];

    /// Row label.
    pub fn label(self) -> &'static str {
        match self {
            Listing::Alone => "no readers",
            Listing::Locked => "readers list with `vmas()` (mmap_lock)",
            Listing::Rcu => "readers list with `vmas_rcu()` (lock-free)",
        }
    }

    /// List once.
    pub fn list(self, mm: &Mm) -> usize {
        match self {
            Listing::Alone => 0,
            Listing::Locked => black_box(mm.vmas()).len(),
            Listing::Rcu => black_box(mm.vmas_rcu()).len(),
        }
    }
}

/// An address space of [`VMAS`] two-page VMAs with a free page between them.
///
/// ```
/// use benches::tables::listing::{ListSpace, Listing, VMAS};
/// let s = ListSpace::new();
/// let mut rng = benches::workload::SplitMix64::new(1);
/// for _ in 0..10 {
///     s.split_and_merge(&mut rng);
/// }
/// assert_eq!(Listing::Rcu.list(&s.mm), VMAS);
/// assert_eq!(Listing::Locked.list(&s.mm), VMAS);
/// ```
#[derive(Debug)]
pub struct ListSpace {
    /// The address space.
    pub mm: Mm,
}

impl Default for ListSpace {
    fn default() -> Self {
        Self::new()
    }
}

impl ListSpace {
    /// Build it.
    pub fn new() -> Self {
        let mm = Mm::new(MmConfig::default());
        for i in 0..VMAS {
            let req = MapRequest {
                addr: Some(BASE + i * 3 * PAGE_SIZE),
                len: 2 * PAGE_SIZE,
                prot: Prot::READ | Prot::WRITE,
                flags: MapFlags::PRIVATE | MapFlags::FIXED,
                backing: Backing::Anonymous,
            };
            assert!(mm.mmap(&req).is_ok());
        }
        ListSpace { mm }
    }

    /// Split a VMA of the middle half (re-protect its first page) and merge it back;
    /// returns the two calls' latencies in nanoseconds.
    pub fn split_and_merge(&self, rng: &mut SplitMix64) -> [f64; 2] {
        let i = VMAS / 4 + rng.below((VMAS / 2) as u64) as usize;
        let a = BASE + i * 3 * PAGE_SIZE;
        let t0 = Instant::now();
        let split = self.mm.mprotect(a, PAGE_SIZE, Prot::READ);
        let t1 = Instant::now();
        let merge = self.mm.mprotect(a, PAGE_SIZE, Prot::READ | Prot::WRITE);
        let t2 = Instant::now();
        assert!(split.is_ok() && merge.is_ok());
        [(t1 - t0).as_nanos() as f64, (t2 - t1).as_nanos() as f64]
    }
}

/// What the kept bursts of one variant gave.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bursts {
    /// The writer's call latencies in nanoseconds.
    pub latencies: Vec<f64>,
    /// Listings done by the readers.
    pub listings: usize,
    /// Wall time of the kept bursts (the stretches all threads ran).
    pub secs: f64,
    /// Writer calls counted (each gives two latencies: the split and the merge).
    pub calls: usize,
    /// Bursts kept (no thread preempted, side by side for at least half the burst).
    pub kept: usize,
    /// Bursts run.
    pub tried: usize,
}

/// One thread's part of one burst.
#[derive(Clone, Copy, Debug)]
struct Part {
    start: Instant,
    end: Instant,
    count: usize,
    preempted: bool,
}

/// `bursts` co-running bursts of `burst` each: `readers` threads list with `how` while the
/// writer splits and merges, all started together by a spinning barrier, each on a CPU of
/// its own. A burst is kept only if no thread was preempted during it (`getrusage`'s
/// involuntary context switches; waiting for a lock is a voluntary switch and stays in)
/// and all threads ran it side by side for at least half its length; only the writer calls
/// that started within that common stretch count (with their whole latency, also where it
/// runs past the stretch: a writer held up by a listing often gets in only when the readers
/// stop). Then the readers really ran while the writer did,
/// which is what the writer's waits depend on. Use no more threads than cores.
pub fn bursts(
    space: &ListSpace,
    how: Listing,
    readers: usize,
    burst: Duration,
    bursts: usize,
    seed: u64,
) -> Bursts {
    let readers = if how == Listing::Alone { 0 } else { readers };
    let threads = readers + 1;
    let arrived = AtomicUsize::new(0);
    let barrier = |b: usize| {
        // Relaxed: a head count; the parts are collected after joining.
        arrived.fetch_add(1, Ordering::Relaxed);
        let mut spins = 0u32;
        // Relaxed: as above.
        while arrived.load(Ordering::Relaxed) < (b + 1) * threads {
            spins += 1;
            if spins % 256 == 0 {
                // Let a sibling thread waiting for this CPU get to the barrier.
                thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    };
    let barrier = &barrier;
    // Runs `step` until the burst's deadline, on `cpu`; `step` returns how much it did.
    let body = |cpu: usize, step: &mut dyn FnMut(usize) -> usize| {
        pin_to(cpu);
        (0..bursts)
            .map(|b| {
                barrier(b);
                let before = preemptions();
                let start = Instant::now();
                let deadline = start + burst;
                let mut count = 0;
                while Instant::now() < deadline {
                    count += step(b);
                }
                let end = Instant::now();
                let preempted = match (before, preemptions()) {
                    (Some(a), Some(z)) => z != a,
                    _ => false,
                };
                Part {
                    start,
                    end,
                    count,
                    preempted,
                }
            })
            .collect::<Vec<Part>>()
    };
    let body = &body;
    // Per burst: when each writer call started, and its two latencies.
    let mut lat: Vec<Vec<(Instant, [f64; 2])>> = vec![Vec::new(); bursts];
    let lat_ref = &mut lat;
    let (writer_parts, reader_parts) = thread::scope(|s| {
        let rs: Vec<_> = (0..readers)
            .map(|r| s.spawn(move || body(1 + r, &mut |_| usize::from(how.list(&space.mm) > 0))))
            .collect();
        // The writer on a thread of its own too (like the readers: same scheduling).
        let w = s.spawn(move || {
            let mut rng = SplitMix64::new(seed);
            body(0, &mut |b| {
                let t = Instant::now();
                lat_ref[b].push((t, space.split_and_merge(&mut rng)));
                // The writer's own work between updates: without it, a writer-preferring
                // lock lets back-to-back updates starve the locked readers, which then
                // never hold the writer up.
                let until = Instant::now() + THINK;
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                2
            })
        });
        let join = |h: thread::ScopedJoinHandle<'_, Vec<Part>>| {
            h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
        };
        let rp: Vec<Vec<Part>> = rs.into_iter().map(join).collect();
        (join(w), rp)
    });
    let mut out = Bursts {
        tried: bursts,
        ..Bursts::default()
    };
    for (b, calls) in lat.into_iter().enumerate() {
        let w = writer_parts[b];
        let parts = || reader_parts.iter().map(|p| p[b]).chain([w]);
        // The stretch in which every thread was running its burst.
        let from = parts().map(|p| p.start).max().unwrap_or(w.start);
        let to = parts().map(|p| p.end).min().unwrap_or(w.end);
        if parts().any(|p| p.preempted) || to < from + burst / 2 {
            continue;
        }
        out.kept += 1;
        let mut n = 0;
        // Calls that started while every thread ran, with their whole latency: a call that
        // waits for the readers often ends only after their burst (when they stop listing).
        for (t, l) in calls {
            if t >= from && t < to {
                out.latencies.extend(l);
                n += 1;
            }
        }
        let secs = (to - from).as_secs_f64();
        out.secs += secs;
        out.calls += n;
        // Readers' listings, scaled to the common stretch.
        out.listings += reader_parts
            .iter()
            .map(|p| {
                let own = (p[b].end - p[b].start).as_secs_f64().max(1e-9);
                (p[b].count as f64 * secs / own).round() as usize
            })
            .sum::<usize>();
    }
    out
}

/// The writer's latency and the listing rate of one variant.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    /// Mean latency of the writer's call, in nanoseconds.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Share of the calls that took 10 µs or more (waited for something).
    pub slow: f64,
    /// Writer calls per second of kept burst.
    pub calls: f64,
    /// Listings per second, all readers together.
    pub listings: f64,
    /// Bursts kept.
    pub kept: usize,
    /// Bursts run.
    pub tried: usize,
}

impl Latency {
    /// Summarise bursts (NaN figures if none was kept).
    pub fn of(b: &Bursts) -> Latency {
        let mut v = b.latencies.clone();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| {
            if v.is_empty() {
                f64::NAN
            } else {
                v[((v.len() - 1) as f64 * p).round() as usize]
            }
        };
        let len = v.len() as f64;
        Latency {
            mean: v.iter().sum::<f64>() / len,
            p50: q(0.5),
            p99: q(0.99),
            p999: q(0.999),
            slow: v.iter().filter(|&&x| x >= 10_000.0).count() as f64 / len,
            calls: len / b.secs,
            listings: b.listings as f64 / b.secs,
            kept: b.kept,
            tried: b.tried,
        }
    }
}

/// Every variant of [`Listing::ALL`]: `rounds` rounds of `n` bursts each, interleaved
/// (after a warm-up round), pooled.
pub fn measure(
    space: &ListSpace,
    readers: usize,
    burst: Duration,
    n: usize,
    rounds: usize,
) -> Vec<Latency> {
    let mut all: Vec<Bursts> = vec![Bursts::default(); Listing::ALL.len()];
    for how in Listing::ALL {
        bursts(space, how, readers, burst, 2, u64::MAX);
    }
    for round in 0..rounds.max(1) {
        for (i, how) in Listing::ALL.into_iter().enumerate() {
            let b = bursts(space, how, readers, burst, n, round as u64);
            let a = &mut all[i];
            a.latencies.extend(b.latencies);
            a.listings += b.listings;
            a.secs += b.secs;
            a.calls += b.calls;
            a.kept += b.kept;
            a.tried += b.tried;
        }
    }
    all.iter().map(Latency::of).collect()
}

fn run(ctx: &Ctx) -> Vec<Table> {
    let space = ListSpace::new();
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let readers = cores.saturating_sub(1).clamp(1, 7);
    let burst = Duration::from_micros(500);
    let n = ctx.pick(20, 40, 80);
    let rounds = ctx.pick(3, 7, 11);
    ctx.progress(format!(
        "listing: {readers} reader(s), {rounds} rounds x {n} bursts"
    ));
    let r = measure(&space, readers, burst, n, rounds);
    let at = |how: Listing| r[Listing::ALL.iter().position(|&x| x == how).unwrap_or(0)];
    let base = at(Listing::Locked);
    let mut t = Table::new(
        format!(
            "listing: a writer's mprotect latency while {readers} reader(s) list {VMAS} VMAs, \
             co-running (ratio vs the listing under the mmap_lock; lower is better)"
        ),
        &[
            "readers",
            "mean",
            "median",
            "99th pct",
            "99.9th pct",
            "calls ≥ 10 µs",
            "writer calls/s",
            "listings/s",
            "bursts kept",
        ],
    );
    for how in Listing::ALL {
        let l = at(how);
        let cell = |v: f64, b: f64| format!("{} ({})", fmt_ns(v), fmt_ratio(v / b));
        t.row(vec![
            how.label().to_string(),
            cell(l.mean, base.mean),
            cell(l.p50, base.p50),
            cell(l.p99, base.p99),
            cell(l.p999, base.p999),
            format!("{:.2}%", 100.0 * l.slow),
            format!("{:.0} k", l.calls / 1e3),
            if how == Listing::Alone {
                "-".to_string()
            } else {
                format!("{:.1} k", l.listings / 1e3)
            },
            format!("{}/{}", l.kept, l.tried),
        ]);
    }
    t.note(format!(
        "The writer splits a VMA of the middle half (mprotect of its first page) and merges \
         it back, timing each call with the wall clock, then works {THINK:?} on its own \
         (without that, std's writer-preferring `RwLock` lets back-to-back updates starve \
         locked readers completely, and they never hold the writer up); the reader(s) list \
         all {VMAS} VMAs in a loop; every thread pinned to a CPU of its own. Co-running bursts of {burst:?}, \
         started together by a spinning barrier; only bursts in which no thread was \
         preempted (no involuntary context switch, per getrusage; waiting for a lock is \
         voluntary and stays in) and all threads ran side by side for at least half the \
         burst are kept, and only the writer calls that started inside that common stretch count \
         (with their whole latency). \
         {rounds} rounds x {n} bursts per variant, interleaved, latencies pooled over the \
         kept bursts."
    ));
    t.note(
        "A listing under `mmap_read_lock` holds off every writer until it ends (std's futex \
         `RwLock` then lets the waiting writer in before new readers, so the writer runs a \
         burst of calls while the readers wake up: the median hides the waits, the mean, the \
         tail and the share of slow calls show them). The lock-free listing holds each VMA's \
         read lock only while it copies that VMA, so the writer waits at most for one VMA, \
         and only if it touches that one.",
    );
    let rcu = at(Listing::Rcu);
    let (mean, p99) = (base.mean / rcu.mean, base.p99 / rcu.p99);
    t.note(format!(
        "Goal: the kernel reported about 10x better update latency with its lock-free \
         `/proc/pid/maps` (Linux 6.17). Here: mean {} better, 99th percentile {} better, \
         99.9th {} better ({} at 10x for the 99th percentile).",
        fmt_ratio(mean),
        fmt_ratio(p99),
        fmt_ratio(base.p999 / rcu.p999),
        verdict(p99 >= 10.0)
    ));
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string());
    t.note(format!(
        "Machine: {cores} cores, 1-minute load average {load} at the end of the table."
    ));
    vec![t]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_measures_and_lists_the_whole_space() {
        let s = ListSpace::new();
        for how in Listing::ALL {
            let b = bursts(&s, how, 1, Duration::from_millis(1), 3, 1);
            assert_eq!(b.tried, 3);
            let l = Latency::of(&b);
            // On a loaded machine every burst may have been preempted: then nothing is kept
            // and the figures are NaN; otherwise they must make sense.
            if b.kept > 0 {
                assert!(
                    l.calls > 0.0 && l.p50 > 0.0 && l.p50 <= l.p999,
                    "{how:?} {l:?}"
                );
            }
        }
        assert_eq!(s.mm.vmas().len(), VMAS);
        assert_eq!(s.mm.vmas_rcu(), s.mm.vmas());
    }
}
