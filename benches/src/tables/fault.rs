//! **fault**: two threads take simulated page faults on random VMAs of one address space,
//! alone and while a writer thread unmaps a random VMA and maps it back. The normal fault
//! path ([`Mm::fault`]: the per-VMA read lock, `mmap_lock` only as a fallback) against a
//! fault path that always takes `mmap_read_lock` + `find_vma` (the kernel before per-VMA
//! locks), and, for reference, store-free speculation ([`Mm::lookup`]). The read-path
//! counters of [`Mm::stats`] are reported for the run with the writer.
//!
//! Three views, because contention needs threads that really run at the same time and a
//! small shared machine seldom gives them that: wall-clock windows of the workload as
//! stated ([`run_window`], [`interleave`]), each thread's CPU time per operation, and
//! co-running bursts of pinned threads that keep only bursts in which no thread was
//! preempted ([`run_corun`], [`interleave_corun`]; as many threads as cores, so one
//! faulter beside the writer on 2 cores).
//!
//! The runners here are shared with the hot-vma table and the criterion bench
//! ([`run_threads`] runs a fixed number of operations).

use std::cell::Cell;
use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use rcu::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use vmlock::{
    Access, Backing, Errno, LockStats, MapFlags, MapRequest, Mm, MmConfig, Prot, VmaInfo, PAGE_SIZE,
};

use super::{Ctx, TableDef};
use crate::harness::Stopwatch;
use crate::report::{fmt_count, fmt_ratio, fmt_vs, verdict, Table};
use crate::workload::SplitMix64;

/// Registry entry.
pub const DEF: TableDef = TableDef {
    name: "fault",
    about: "2 threads fault on random VMAs (+ a mapping writer): per-VMA locks vs mmap_lock",
    run,
};

/// Number of faulting threads (the brief's workload; the machine has 2 cores).
pub const FAULTERS: usize = 2;

/// What one threaded batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Wall time from the start signal until the last reader finished.
    pub wall: Duration,
    /// Operations the readers performed together.
    pub ops: u64,
    /// CPU time of the readers together (each thread's own clock).
    pub reader_cpu: Duration,
    /// Steps the writer completed meanwhile (0 without a writer).
    pub writer_steps: u64,
    /// Number of reader threads.
    pub readers: usize,
}

/// A per-thread operation: gets the thread's random generator.
pub type Op<'a> = &'a (dyn Fn(&mut SplitMix64) + Sync);

/// When the readers of a batch stop.
#[derive(Clone, Copy, Debug)]
enum Until {
    /// After this many operations each.
    Ops(u64),
    /// When the window has passed (checked every [`CHUNK`] operations).
    Time(Duration),
}

/// Operations a reader performs between looks at the stop flag.
const CHUNK: u64 = 32;

/// Spin until `go` is set, yielding the CPU (more threads than cores are common here).
fn wait_for(go: &AtomicBool) {
    // Acquire: pairs with the release store that starts the batch.
    while !go.load(Ordering::Acquire) {
        thread::yield_now();
    }
}

fn run_batch(
    readers: usize,
    until: Until,
    seed: u64,
    read: Op<'_>,
    writer: Option<Op<'_>>,
) -> Batch {
    let readers = readers.max(1);
    let go = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let ready = AtomicUsize::new(0);
    let running = AtomicUsize::new(readers);
    let threads = readers + usize::from(writer.is_some());
    fn join<T>(h: thread::ScopedJoinHandle<'_, T>) -> T {
        h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
    thread::scope(|s| {
        let (go, stop, ready, running) = (&go, &stop, &ready, &running);
        let w = writer.map(|write| {
            s.spawn(move || {
                let mut rng = SplitMix64::new(seed ^ 0x5752_4954_4552);
                // Relaxed: a head count; the start signal orders the batch.
                ready.fetch_add(1, Ordering::Relaxed);
                wait_for(go);
                let mut steps = 0u64;
                // Relaxed: only tells the writer when to stop; joining orders the rest.
                while !stop.load(Ordering::Relaxed) {
                    write(&mut rng);
                    steps += 1;
                }
                steps
            })
        });
        let rs: Vec<_> = (0..readers as u64)
            .map(|i| {
                s.spawn(move || {
                    let mut rng = SplitMix64::new(seed.wrapping_add(i.wrapping_mul(0x9E37)));
                    // Relaxed: a head count; the start signal orders the batch.
                    ready.fetch_add(1, Ordering::Relaxed);
                    wait_for(go);
                    let cpu = Stopwatch::start();
                    let mut ops = 0u64;
                    match until {
                        Until::Ops(n) => {
                            for _ in 0..n {
                                read(&mut rng);
                            }
                            ops = n;
                            // Relaxed: the last reader out stops the writer; see its loop.
                            if running.fetch_sub(1, Ordering::Relaxed) == 1 {
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                        Until::Time(_) => {
                            // At least one chunk, even if the window passed before
                            // this thread got a CPU.
                            loop {
                                for _ in 0..CHUNK {
                                    read(&mut rng);
                                }
                                ops += CHUNK;
                                // Relaxed: a stop request; joining orders the rest.
                                if stop.load(Ordering::Relaxed) {
                                    break;
                                }
                            }
                        }
                    }
                    (ops, cpu.elapsed())
                })
            })
            .collect();
        // Relaxed: a head count; nothing is published through it.
        while ready.load(Ordering::Relaxed) < threads {
            thread::yield_now();
        }
        let t = Instant::now();
        // Release: pairs with the threads' acquire wait.
        go.store(true, Ordering::Release);
        if let Until::Time(window) = until {
            thread::sleep(window);
            // Relaxed: a stop request; joining orders the rest.
            stop.store(true, Ordering::Relaxed);
        }
        let (mut ops, mut reader_cpu) = (0, Duration::ZERO);
        for (o, c) in rs.into_iter().map(join) {
            ops += o;
            reader_cpu += c;
        }
        let wall = t.elapsed();
        let writer_steps = w.map_or(0, join);
        Batch {
            wall,
            ops,
            reader_cpu,
            writer_steps,
            readers,
        }
    })
}

/// Run `readers` threads performing `iters` calls of `read` between them (rounded up to a
/// multiple of `readers`), optionally with one thread calling `writer` in a loop until the
/// last reader is done. Every thread gets its own generator derived from `seed`. All
/// threads are started first and released together; the wall time is taken from that
/// release until the last reader finished. A panic in any thread is propagated.
///
/// ```
/// use benches::tables::fault::run_threads;
/// use rcu::sync::atomic::{AtomicU64, Ordering};
/// let n = AtomicU64::new(0);
/// // Relaxed: a plain counter, read after the threads are joined.
/// let b = run_threads(2, 1000, 1, &|_| { n.fetch_add(1, Ordering::Relaxed); }, None);
/// assert_eq!((b.ops, n.load(Ordering::Relaxed), b.writer_steps), (1000, 1000, 0));
/// ```
pub fn run_threads(
    readers: usize,
    iters: u64,
    seed: u64,
    read: Op<'_>,
    writer: Option<Op<'_>>,
) -> Batch {
    let per = iters.div_ceil(readers.max(1) as u64).max(1);
    run_batch(readers, Until::Ops(per), seed, read, writer)
}

/// Like [`run_threads`], but the readers run for `window` (wall clock, checked every few
/// operations) instead of a fixed count. Thread start-up and wake-up latencies, which on
/// a loaded machine last milliseconds, then cost a small share of the batch whatever the
/// speed of the operation.
///
/// ```
/// use benches::tables::fault::run_window;
/// use std::time::Duration;
/// let b = run_window(2, Duration::from_millis(5), 1, &|_| {}, Some(&|_| {}));
/// assert!(b.ops > 0 && b.wall >= Duration::from_millis(5));
/// ```
pub fn run_window(
    readers: usize,
    window: Duration,
    seed: u64,
    read: Op<'_>,
    writer: Option<Op<'_>>,
) -> Batch {
    run_batch(readers, Until::Time(window), seed, read, writer)
}

/// Medians over the windows of one contender.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    /// Operations per wall-clock second, all readers together.
    pub wall: f64,
    /// Reader CPU nanoseconds per operation.
    pub cpu_ns: f64,
    /// Writer steps per second.
    pub writer: f64,
    /// Half the spread between the 25th and 75th percentile of `wall`, relative to it.
    pub spread: f64,
    /// Share of the wall time the readers were on a CPU (1.0: every reader all the time).
    pub cpu_share: f64,
}

/// A contender of [`interleave`]: runs one window and reports it.
pub type Window<'a> = Box<dyn FnMut(u64) -> Batch + 'a>;

/// Run every contender for one untimed warm-up window, then `rounds` rounds of one
/// window each, interleaved (a slow phase of a shared machine hits all alike); return the
/// medians. Each call gets the round number as a seed.
pub fn interleave(rounds: usize, contenders: &mut [Window<'_>]) -> Vec<Rates> {
    for c in contenders.iter_mut() {
        c(u64::MAX);
    }
    let mut batches: Vec<Vec<Batch>> = vec![Vec::new(); contenders.len()];
    for round in 0..rounds.max(1) {
        for (c, b) in contenders.iter_mut().zip(&mut batches) {
            b.push(c(round as u64));
        }
    }
    batches
        .into_iter()
        .map(|bs| {
            let per_sec = |n: u64, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
            let mut wall: Vec<f64> = bs.iter().map(|b| per_sec(b.ops, b.wall)).collect();
            let mut cpu: Vec<f64> = bs
                .iter()
                .map(|b| b.reader_cpu.as_secs_f64() * 1e9 / b.ops.max(1) as f64)
                .collect();
            let mut writer: Vec<f64> = bs.iter().map(|b| per_sec(b.writer_steps, b.wall)).collect();
            let q = |v: &mut Vec<f64>, p: f64| {
                v.sort_by(f64::total_cmp);
                v[((v.len() - 1) as f64 * p).round() as usize]
            };
            let mut share: Vec<f64> = bs
                .iter()
                .map(|b| {
                    b.reader_cpu.as_secs_f64() / (b.wall.as_secs_f64() * b.readers as f64).max(1e-9)
                })
                .collect();
            let median = q(&mut wall, 0.5);
            Rates {
                cpu_share: q(&mut share, 0.5),
                wall: median,
                cpu_ns: q(&mut cpu, 0.5),
                writer: q(&mut writer, 0.5),
                spread: (q(&mut wall, 0.75) - q(&mut wall, 0.25)) / 2.0 / median.max(1e-9),
            }
        })
        .collect()
}

/// Involuntary context switches of the calling thread so far (`None` where the platform
/// does not say).
pub fn preemptions() -> Option<i64> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `rusage` is plain old data; all-zero is a valid value.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid, writable rusage for the duration of the call.
        let r = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
        (r == 0).then_some(ru.ru_nivcsw as i64)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Pin the calling thread to the `i`-th CPU (modulo their number) of those the process may
/// use, so that co-running threads get different CPUs. Best effort: does nothing where
/// the platform has no affinity call or the call fails.
pub fn pin_to(i: usize) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `cpu_set_t` is a plain bit set; all-zero is the empty set.
        let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: `allowed` is a valid, writable set of `size` bytes.
        if unsafe { libc::sched_getaffinity(0, size, &mut allowed) } != 0 {
            return;
        }
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `c` is below CPU_SETSIZE, the capacity of the set.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &allowed) })
            .collect();
        if cpus.is_empty() {
            return;
        }
        // SAFETY: as above.
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: the CPU number comes from the allowed set, so it is below CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpus[i % cpus.len()], &mut one) };
        // SAFETY: `one` is a valid set of `size` bytes; 0 means the calling thread.
        unsafe { libc::sched_setaffinity(0, size, &one) };
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = i;
    }
}

/// One thread's part of one co-running burst.
#[derive(Clone, Copy, Debug)]
struct Part {
    start: Instant,
    end: Instant,
    count: u64,
    preempted: bool,
}

/// What co-running bursts of one contender gave.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CoRun {
    /// Reader operations per second, all readers together, median over accepted bursts
    /// (NaN if fewer than 3 were accepted).
    pub rate: f64,
    /// Writer steps per second in the accepted bursts (median).
    pub writer: f64,
    /// Bursts accepted (no thread preempted).
    pub accepted: usize,
    /// Bursts run.
    pub tried: usize,
}

/// Run `bursts` bursts of `burst` wall time each with `readers` reader threads and an
/// optional writer, all started by a spinning barrier so that they run at the same time,
/// and report each burst's reader operations per second (and writer steps per second) if
/// **no thread was preempted** during it (`getrusage` counts involuntary context switches;
/// a reader blocking on a lock is a voluntary switch and stays in) and all threads started
/// it within 5% of its length of each other. On a loaded machine this keeps only the
/// bursts in which the threads really ran side by side, which is what contention between
/// them needs; use no more threads than cores.
///
/// ```
/// use benches::tables::fault::run_corun;
/// use std::time::Duration;
/// let r = run_corun(1, Duration::from_micros(200), 5, 1, &|_| {}, None);
/// assert_eq!(r.len(), 5);
/// assert!(r.iter().flatten().all(|&(rate, _)| rate > 0.0));
/// ```
pub fn run_corun(
    readers: usize,
    burst: Duration,
    bursts: usize,
    seed: u64,
    read: Op<'_>,
    writer: Option<Op<'_>>,
) -> Vec<Option<(f64, f64)>> {
    let readers = readers.max(1);
    let threads = readers + usize::from(writer.is_some());
    let arrived = AtomicUsize::new(0);
    let barrier = |b: usize| {
        // Relaxed: a head count; each burst's parts are collected after joining.
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
    let body = |cpu: usize, mut rng: SplitMix64, op: Op<'_>, per_step: u64| {
        pin_to(cpu);
        let mut parts = Vec::with_capacity(bursts);
        for b in 0..bursts {
            barrier(b);
            let before = preemptions();
            let start = Instant::now();
            let deadline = start + burst;
            let mut count = 0u64;
            loop {
                for _ in 0..per_step {
                    op(&mut rng);
                }
                count += per_step;
                if Instant::now() >= deadline {
                    break;
                }
            }
            let end = Instant::now();
            let preempted = match (before, preemptions()) {
                (Some(a), Some(z)) => z != a,
                _ => false,
            };
            parts.push(Part {
                start,
                end,
                count,
                preempted,
            });
        }
        parts
    };
    let body = &body;
    let (reader_parts, writer_parts) = thread::scope(|s| {
        let w = writer
            .map(|write| s.spawn(move || body(readers, SplitMix64::new(seed ^ 0x5752), write, 1)));
        let rs: Vec<_> = (0..readers as u64)
            .map(|i| {
                let rng = SplitMix64::new(seed.wrapping_add(i.wrapping_mul(0x9E37)));
                s.spawn(move || body(i as usize, rng, read, CHUNK))
            })
            .collect();
        let join = |h: thread::ScopedJoinHandle<'_, Vec<Part>>| {
            h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
        };
        let rp: Vec<Vec<Part>> = rs.into_iter().map(join).collect();
        (rp, w.map(join))
    });
    (0..bursts)
        .map(|b| {
            let mut all = reader_parts.iter().map(|p| p[b]);
            let wp = writer_parts.as_ref().map(|p| p[b]);
            // Kept only if no thread was preempted and all started within 5% of a burst
            // of each other (a thread can lose its CPU between the barrier and its
            // start without that counting as a preemption of the burst).
            let parts = || all.clone().chain(wp);
            let first_start = parts().map(|p| p.start).min()?;
            let last_start = parts().map(|p| p.start).max()?;
            if parts().any(|p| p.preempted) || last_start - first_start > burst / 20 {
                return None;
            }
            let first = all.next()?;
            let (mut start, mut end, mut ops) = (first.start, first.end, first.count);
            for p in all {
                start = start.min(p.start);
                end = end.max(p.end);
                ops += p.count;
            }
            let secs = (end - start).as_secs_f64().max(1e-9);
            let steps = wp.map_or(0.0, |p| {
                p.count as f64 / (p.end - p.start).as_secs_f64().max(1e-9)
            });
            Some((ops as f64 / secs, steps))
        })
        .collect()
}

/// A contender of [`interleave_corun`]: runs a series of bursts (see [`run_corun`]).
pub type Bursts<'a> = Box<dyn FnMut(u64) -> Vec<Option<(f64, f64)>> + 'a>;

/// Summarise the bursts of one contender: medians over the accepted ones.
pub fn corun_summary(bursts: &[Option<(f64, f64)>]) -> CoRun {
    let mut rates: Vec<f64> = bursts.iter().flatten().map(|b| b.0).collect();
    let mut writer: Vec<f64> = bursts.iter().flatten().map(|b| b.1).collect();
    let med = |v: &mut Vec<f64>| {
        if v.len() < 3 {
            return f64::NAN;
        }
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    CoRun {
        rate: med(&mut rates),
        writer: med(&mut writer),
        accepted: rates.len(),
        tried: bursts.len(),
    }
}

/// Co-running bursts for several contenders, interleaved: `rounds` rounds, each giving
/// every contender `bursts` bursts; medians over all accepted bursts.
pub fn interleave_corun(rounds: usize, contenders: &mut [Bursts<'_>]) -> Vec<CoRun> {
    let mut all: Vec<Vec<Option<(f64, f64)>>> = vec![Vec::new(); contenders.len()];
    for round in 0..rounds.max(1) {
        for (c, a) in contenders.iter_mut().zip(&mut all) {
            a.extend(c(round as u64));
        }
    }
    all.iter().map(|a| corun_summary(a)).collect()
}

/// First VMA of the benchmark layouts.
pub const BASE: usize = 0x1000_0000;
/// Pages per VMA of the fault layout.
pub const PAGES: usize = 4;
/// Distance between VMAs: one unmapped page between neighbours, so they never merge.
pub const STRIDE: usize = (PAGES + 1) * PAGE_SIZE;

/// An address space of `n` private read-write VMAs of [`PAGES`] pages, [`STRIDE`] apart
/// from [`BASE`] on.
#[derive(Debug)]
pub struct Space {
    /// The address space.
    pub mm: Mm,
    n: usize,
}

impl Space {
    /// Map the `n` VMAs.
    pub fn new(n: usize) -> Self {
        let mm = Mm::new(MmConfig::default());
        let space = Space { mm, n };
        for i in 0..n {
            space.map_slot(i);
        }
        space
    }

    /// Number of VMA slots.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no slots.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    fn map_slot(&self, i: usize) {
        let req = MapRequest {
            addr: Some(BASE + i * STRIDE),
            len: PAGES * PAGE_SIZE,
            prot: Prot::READ | Prot::WRITE,
            flags: MapFlags::PRIVATE | MapFlags::FIXED,
            backing: Backing::Anonymous,
        };
        let got = self.mm.mmap(&req);
        assert_eq!(got, Ok(BASE + i * STRIDE), "mapping slot {i}");
    }

    /// A random byte in a random slot.
    pub fn random_addr(&self, rng: &mut SplitMix64) -> usize {
        let i = rng.below(self.n as u64) as usize;
        BASE + i * STRIDE + rng.below((PAGES * PAGE_SIZE) as u64) as usize
    }

    /// One writer step: unmap a random slot, then map it back (two mmap write sections).
    pub fn churn(&self, rng: &mut SplitMix64) {
        let i = rng.below(self.n as u64) as usize;
        let unmapped = self.mm.munmap(BASE + i * STRIDE, PAGES * PAGE_SIZE);
        assert_eq!(unmapped, Ok(()), "unmapping slot {i}");
        self.map_slot(i);
    }
}

/// How a simulated fault finds its VMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// [`Mm::fault`]: the per-VMA read lock, `mmap_lock` as a fallback.
    VmaLock,
    /// [`Mm::lookup`]: store-free speculation, `mmap_lock` as a fallback.
    Speculation,
    /// `mmap_read_lock` + `find_vma` every time.
    MmapLock,
}

impl Path {
    /// All paths, in table order.
    pub const ALL: [Path; 3] = [Path::VmaLock, Path::Speculation, Path::MmapLock];

    /// Row label.
    pub fn label(self) -> &'static str {
        match self {
            Path::VmaLock => "per-VMA lock (`Mm::fault`)",
            Path::Speculation => "speculation (`Mm::lookup`)",
            Path::MmapLock => "mmap_lock only (`mmap_read_lock` + `find_vma`)",
        }
    }

    /// Take a read fault at `addr`: `Ok` if a readable VMA contains it, `EFAULT` if
    /// nothing does, `EACCES` if the VMA is not readable (the checks of [`Mm::fault`]).
    ///
    /// ```
    /// use benches::tables::fault::{Path, Space, BASE, STRIDE};
    /// let s = Space::new(2);
    /// for p in Path::ALL {
    ///     assert_eq!(p.fault(&s.mm, BASE + 5), Ok(()));
    ///     assert_eq!(p.fault(&s.mm, BASE + STRIDE - 1), Err(vmlock::Errno::EFAULT));
    /// }
    /// ```
    pub fn fault(self, mm: &Mm, addr: usize) -> Result<(), Errno> {
        let check = |v: VmaInfo| {
            if v.prot.contains(Prot::READ) {
                Ok(())
            } else {
                Err(Errno::EACCES)
            }
        };
        match self {
            Path::VmaLock => mm.fault(addr, Access::Read).map(drop),
            Path::Speculation => mm.lookup(addr).map_or(Err(Errno::EFAULT), check),
            Path::MmapLock => {
                let g = mm.mmap_read_lock();
                match g.find_vma(addr) {
                    Some(v) if v.start <= addr => check(v),
                    _ => Err(Errno::EFAULT),
                }
            }
        }
    }
}

/// Counter differences `after - before`.
pub fn stats_delta(before: LockStats, after: LockStats) -> LockStats {
    after - before
}

/// Results of one path in one setting.
#[derive(Clone, Debug, PartialEq)]
pub struct PathResult {
    /// The path.
    pub path: Path,
    /// Median rates over the windows.
    pub rates: Rates,
    /// Faults taken over all windows (incl. warm-up), for the counters.
    pub faults: u64,
    /// The counters of [`Mm::stats`] over all windows.
    pub stats: LockStats,
}

/// Measure every path with `readers` faulting threads, each on its own fresh `n`-VMA
/// space, in `rounds` interleaved windows of `window`, with or without the churning writer.
pub fn measure(
    n: usize,
    readers: usize,
    with_writer: bool,
    window: Duration,
    rounds: usize,
) -> Vec<PathResult> {
    let spaces: Vec<Space> = Path::ALL.iter().map(|_| Space::new(n)).collect();
    let faults: Vec<Cell<u64>> = Path::ALL.iter().map(|_| Cell::new(0)).collect();
    let before: Vec<LockStats> = spaces.iter().map(|s| s.mm.stats()).collect();
    let mut cs: Vec<Window<'_>> = Path::ALL
        .iter()
        .zip(&spaces)
        .zip(&faults)
        .map(|((&path, space), count)| {
            Box::new(move |seed: u64| {
                let read = |rng: &mut SplitMix64| {
                    let _ = black_box(path.fault(&space.mm, space.random_addr(rng)));
                };
                let write = |rng: &mut SplitMix64| space.churn(rng);
                let writer = with_writer.then_some(&write as Op<'_>);
                let b = run_window(readers, window, seed, &read, writer);
                count.set(count.get() + b.ops);
                b
            }) as Window<'_>
        })
        .collect();
    let rates = interleave(rounds, &mut cs);
    drop(cs);
    Path::ALL
        .iter()
        .zip(rates)
        .zip(spaces.iter().zip(&faults).zip(before))
        .map(|((&path, rates), ((s, count), before))| {
            assert_eq!(s.mm.vma_count(), n, "the writer left the layout incomplete");
            PathResult {
                path,
                rates,
                faults: count.get(),
                stats: stats_delta(before, s.mm.stats()),
            }
        })
        .collect()
}

/// Co-running bursts (see [`run_corun`]) of `faulters` threads beside the writer, every
/// path on its own fresh `n`-VMA space, `rounds` rounds of `bursts` bursts, interleaved.
pub fn measure_corun(
    n: usize,
    faulters: usize,
    burst: Duration,
    bursts: usize,
    rounds: usize,
) -> Vec<CoRun> {
    let spaces: Vec<Space> = Path::ALL.iter().map(|_| Space::new(n)).collect();
    let mut cs: Vec<Bursts<'_>> = Path::ALL
        .iter()
        .zip(&spaces)
        .map(|(&path, space)| {
            Box::new(move |seed: u64| {
                let read = |rng: &mut SplitMix64| {
                    let _ = black_box(path.fault(&space.mm, space.random_addr(rng)));
                };
                let write = |rng: &mut SplitMix64| space.churn(rng);
                run_corun(faulters, burst, bursts, seed, &read, Some(&write as Op<'_>))
            }) as Bursts<'_>
        })
        .collect();
    let r = interleave_corun(rounds, &mut cs);
    drop(cs);
    for s in &spaces {
        assert_eq!(s.mm.vma_count(), n, "the writer left the layout incomplete");
    }
    r
}

/// `12.3 M/s`.
///
/// ```
/// assert_eq!(benches::tables::fault::fmt_rate(12_345_678.0), "12.35 M/s");
/// assert_eq!(benches::tables::fault::fmt_rate(2_500.0), "2.5 k/s");
/// ```
pub fn fmt_rate(r: f64) -> String {
    if !r.is_finite() {
        "n/a".to_string()
    } else if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else if r >= 1e5 {
        format!("{:.0} k/s", r / 1e3)
    } else {
        format!("{:.1} k/s", r / 1e3)
    }
}

/// A note on the machine's load: `/proc/loadavg` against the number of cores, and the
/// share of the time the measured threads actually ran.
pub fn load_note(what: &str, share: f64) -> String {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string());
    format!(
        "Machine: {cores} cores, 1-minute load average {load} at the end of the table; \
         {what} were on a CPU {:.0}% of the wall time (median window). Below ~100% the \
         threads seldom ran at the same time, which hides contention between them.",
        100.0 * share
    )
}

/// `count (percent of total)`.
fn pct(count: u64, total: u64) -> String {
    if total == 0 {
        return count.to_string();
    }
    format!("{count} ({:.2}%)", 100.0 * count as f64 / total as f64)
}

fn rates_of(rs: &[PathResult], p: Path) -> Rates {
    rs.iter()
        .find(|r| r.path == p)
        .map_or(Rates::default(), |r| r.rates)
}

fn run(ctx: &Ctx) -> Vec<Table> {
    let n = 1000;
    let window = ctx.pick(
        Duration::from_millis(25),
        Duration::from_millis(60),
        Duration::from_millis(150),
    );
    let rounds = ctx.pick(3, 7, 11);
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let co_faulters = cores.saturating_sub(1).max(1);
    let burst = Duration::from_micros(500);
    let bursts = ctx.pick(20, 40, 80);
    let n_txt = fmt_count(n);
    ctx.progress(format!("fault {n_txt}: {FAULTERS} faulters alone"));
    let alone = measure(n, FAULTERS, false, window, rounds);
    ctx.progress(format!("fault {n_txt}: {FAULTERS} faulters + writer"));
    let shared = measure(n, FAULTERS, true, window, rounds);
    ctx.progress(format!(
        "fault {n_txt}: {co_faulters} faulter(s) + writer, co-running bursts"
    ));
    let co = measure_corun(n, co_faulters, burst, bursts, rounds);
    let mut t = Table::new(
        format!(
            "fault: {FAULTERS} threads fault on random VMAs of {n_txt} (ratios vs mmap_lock only)"
        ),
        &[
            "fault path",
            "no writer: faults/s",
            "CPU per fault",
            "writer maps/unmaps: faults/s",
            "CPU per fault",
            "writer steps/s",
            "co-running: faults/s",
            "bursts kept",
        ],
    );
    let (la, ls) = (
        rates_of(&alone, Path::MmapLock),
        rates_of(&shared, Path::MmapLock),
    );
    let co_lock = co[2].rate;
    for ((a, s), c) in alone.iter().zip(&shared).zip(&co) {
        let (a, s, p) = (a.rates, s.rates, a.path);
        t.row(vec![
            p.label().to_string(),
            format!("{} ({})", fmt_rate(a.wall), fmt_ratio(a.wall / la.wall)),
            fmt_vs(a.cpu_ns, la.cpu_ns),
            format!("{} ({})", fmt_rate(s.wall), fmt_ratio(s.wall / ls.wall)),
            fmt_vs(s.cpu_ns, ls.cpu_ns),
            fmt_rate(s.writer),
            format!("{} ({})", fmt_rate(c.rate), fmt_ratio(c.rate / co_lock)),
            format!("{}/{}", c.accepted, c.tried),
        ]);
    }
    t.note(format!(
        "{n} private read-write VMAs of {PAGES} pages, one unmapped page apart; each fault is \
         a read at a random byte of a random VMA. Writer step: munmap a random VMA and map it \
         back with MAP_FIXED (two mmap write-lock sections), in a loop. Faults/s: both \
         faulters together, wall clock, median of {rounds} interleaved windows of {window:?} \
         (ratio: higher is better). CPU per fault: the faulters' own CPU time per fault \
         (ratio: lower is better; excludes time descheduled, and time asleep on the \
         mmap_lock). {cores} cores; with the writer, {} threads share them.",
        FAULTERS + 1
    ));
    t.note(format!(
        "Co-running: {co_faulters} faulter(s) + the writer ({} threads for {cores} cores), \
         bursts of {burst:?} started together by a spinning barrier; only bursts in which \
         no thread was preempted (no involuntary context switch, per getrusage) and all \
         started within 5% of the burst are kept, \
         i.e. the threads really ran side by side; a faulter asleep on the mmap_lock is a \
         voluntary switch and stays in. Median over the kept bursts of {rounds} rounds x \
         {bursts} bursts, interleaved; n/a if fewer than 3 were kept.",
        co_faulters + 1
    ));
    let v = rates_of(&shared, Path::VmaLock);
    t.note(load_note(
        "the faulters (per-VMA path, with writer)",
        v.cpu_share,
    ));
    let vma = v.wall / ls.wall;
    t.note(format!(
        "Goal, per-VMA locks ≥ 2x mmap_lock only (faults/s) while the writer runs: {} ({}). \
         Without a writer: {}.",
        fmt_ratio(vma),
        verdict(vma >= 2.0),
        fmt_ratio(rates_of(&alone, Path::VmaLock).wall / la.wall)
    ));
    let cv = co[0].rate / co_lock;
    t.note(format!(
        "Goal, co-running ({co_faulters} faulter(s) + writer, no preemption): per-VMA locks \
         ≥ 2x mmap_lock only: {} ({}).",
        fmt_ratio(cv),
        verdict(cv >= 2.0)
    ));
    let mut st = Table::new(
        "fault: read-path counters (`Mm::stats`) while the writer maps/unmaps",
        &[
            "fault path",
            "faults",
            "success",
            "abort",
            "miss",
            "retry",
            "fallback",
            "spec ok",
            "spec failed",
        ],
    );
    for r in shared.iter().filter(|r| r.path != Path::MmapLock) {
        let s = &r.stats;
        st.row(vec![
            r.path.label().to_string(),
            r.faults.to_string(),
            pct(s.success, r.faults),
            pct(s.abort, r.faults),
            pct(s.miss, r.faults),
            pct(s.retry, r.faults),
            pct(s.fallback, r.faults),
            pct(s.spec_ok, r.faults),
            pct(s.spec_failed, r.faults),
        ]);
    }
    st.note(
        "Counted over every window of the run with the writer (warm-up included), as a \
         share of the faults taken. An abort is counted for every fault that finds nothing \
         (the unmapped page between VMAs, or a VMA the writer has just unmapped) as well as \
         for write-locked VMAs and detected races; each abort falls back to the mmap_lock. \
         Speculation fails whenever any write section overlapped it. The mmap_lock-only \
         path does not touch the counters.",
    );
    vec![t, st]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_agrees_while_nothing_changes() {
        let s = Space::new(20);
        let mut rng = SplitMix64::new(3);
        for _ in 0..500 {
            // Any address from the first slot to past the last one, mapped or not.
            let a = BASE + rng.below((21 * STRIDE) as u64) as usize;
            let want = Path::MmapLock.fault(&s.mm, a);
            let mapped = (a - BASE) % STRIDE < PAGES * PAGE_SIZE && a < BASE + 20 * STRIDE;
            assert_eq!(want.is_ok(), mapped, "{a:#x}");
            assert_eq!(Path::VmaLock.fault(&s.mm, a), want, "{a:#x}");
            assert_eq!(Path::Speculation.fault(&s.mm, a), want, "{a:#x}");
        }
        assert_eq!(s.mm.stats().success, 500 - s.mm.stats().abort);
    }

    #[test]
    fn churn_restores_the_layout() {
        let s = Space::new(8);
        let before = s.mm.vmas();
        let mut rng = SplitMix64::new(9);
        for _ in 0..50 {
            s.churn(&mut rng);
        }
        assert_eq!(s.mm.vmas(), before);
        s.mm.validate().unwrap();
    }

    #[test]
    fn faulters_under_the_writer_only_see_results_the_layout_allows() {
        let s = Space::new(16);
        let bad = AtomicUsize::new(0);
        for path in Path::ALL {
            let read = |rng: &mut SplitMix64| {
                let a = s.random_addr(rng);
                // Mapped slots may be briefly unmapped by the writer, never unreadable.
                if !matches!(path.fault(&s.mm, a), Ok(()) | Err(Errno::EFAULT)) {
                    // Relaxed: read after the threads are joined.
                    bad.fetch_add(1, Ordering::Relaxed);
                }
            };
            let write = |rng: &mut SplitMix64| s.churn(rng);
            let b = run_threads(2, 2000, 1, &read, Some(&write));
            assert_eq!(b.ops, 2000);
            assert!(b.wall > Duration::ZERO);
        }
        // Relaxed: the threads were joined.
        assert_eq!(bad.load(Ordering::Relaxed), 0);
        assert_eq!(s.mm.vma_count(), 16);
        s.mm.validate().unwrap();
    }

    #[test]
    fn measure_reports_every_path_and_counts_faults() {
        let rs = measure(16, 2, true, Duration::from_millis(3), 2);
        assert_eq!(rs.iter().map(|r| r.path).collect::<Vec<_>>(), Path::ALL);
        for r in &rs {
            assert!(
                r.rates.wall > 0.0 && r.rates.cpu_ns > 0.0 && r.faults > 0,
                "{r:?}"
            );
        }
        let v = &rs[0].stats;
        // Every fault of the per-VMA path either succeeded or aborted and fell back.
        assert_eq!(v.success + v.abort, rs[0].faults, "{v:?}");
        assert_eq!(v.abort, v.fallback, "{v:?}");
        let sp = &rs[1].stats;
        assert_eq!(sp.spec_ok + sp.spec_failed, rs[1].faults, "{sp:?}");
        assert_eq!(rs[2].stats, LockStats::default());
    }

    #[test]
    fn co_running_bursts_are_reported_per_burst_and_summarised() {
        let s = Space::new(8);
        let read = |rng: &mut SplitMix64| {
            let _ = black_box(Path::VmaLock.fault(&s.mm, s.random_addr(rng)));
        };
        let write = |rng: &mut SplitMix64| s.churn(rng);
        let bursts = run_corun(1, Duration::from_micros(300), 6, 2, &read, Some(&write));
        assert_eq!(bursts.len(), 6);
        for &(rate, steps) in bursts.iter().flatten() {
            assert!(rate > 0.0 && steps >= 0.0);
        }
        assert_eq!(s.mm.vma_count(), 8);
        let few = corun_summary(&[Some((1.0, 0.0)), None, Some((2.0, 0.0))]);
        assert!(few.rate.is_nan());
        assert_eq!((few.accepted, few.tried), (2, 3));
        let some = corun_summary(&[Some((1.0, 5.0)), Some((3.0, 5.0)), Some((2.0, 5.0)), None]);
        assert_eq!(
            (some.rate, some.writer, some.accepted, some.tried),
            (2.0, 5.0, 3, 4)
        );
    }

    #[test]
    fn a_batch_counts_reader_ops_and_writer_steps() {
        let b = run_threads(3, 10, 0, &|_| {}, Some(&|_| {}));
        assert_eq!(b.ops, 12);
        let b = run_window(1, Duration::from_millis(2), 0, &|_| {}, None);
        assert_eq!(b.ops % CHUNK, 0);
        assert!(b.ops > 0 && b.writer_steps == 0);
    }
}
