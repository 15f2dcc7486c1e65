//! A small timing harness for the `compare` binary.
//!
//! The machine these tables are made on is small and shared, so absolute times drift while
//! a table runs. The harness therefore measures the contenders of one table row
//! **interleaved**: after a warm-up and a calibration of each contender's batch size, it runs
//! one batch of every contender per round, for several rounds, and reports each contender's
//! median time per operation over its batches. A slow phase of the machine then hits every
//! contender alike, and the ratio between them stays meaningful.
//!
//! Single-threaded contenders are timed with the calling thread's **CPU time**
//! ([`Stopwatch`]), not wall time: on a shared machine a batch that is descheduled for a
//! few milliseconds would otherwise count those milliseconds. (Multi-threaded workloads,
//! where blocking is part of what is measured, use wall time.)

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), or wall time since the first
/// call where that clock is unavailable.
pub fn thread_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if r == 0 {
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    } else {
        static BASE: OnceLock<Instant> = OnceLock::new();
        BASE.get_or_init(Instant::now).elapsed()
    }
}

/// Measures the calling thread's CPU time between `start` and `elapsed`.
///
/// ```
/// let w = benches::harness::Stopwatch::start();
/// let mut x = 0u64;
/// for i in 0..100_000 { x = std::hint::black_box(x + i); }
/// assert!(w.elapsed() > std::time::Duration::ZERO);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Stopwatch {
    start: Duration,
}

impl Stopwatch {
    /// Start measuring.
    #[inline]
    pub fn start() -> Self {
        Self {
            start: thread_time(),
        }
    }

    /// CPU time of this thread since `start`.
    #[inline]
    pub fn elapsed(&self) -> Duration {
        thread_time().saturating_sub(self.start)
    }
}

/// A row's time budget, in batch lengths (see [`Config::max_row`]).
pub const ROW_BUDGET: u32 = 600;

/// How long and how often to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Time spent running each contender before calibration.
    pub warmup: Duration,
    /// Target duration of one batch.
    pub batch: Duration,
    /// Number of rounds (batches per contender); the median is taken over them.
    pub rounds: usize,
}

impl Config {
    /// Time budget of one row (all its contenders, all rounds): [`ROW_BUDGET`] batches.
    /// Rows whose rounds are slower get fewer rounds.
    pub fn max_row(&self) -> Duration {
        self.batch * ROW_BUDGET
    }

    /// For development: a few short batches.
    pub const QUICK: Config = Config {
        warmup: Duration::from_millis(20),
        batch: Duration::from_millis(5),
        rounds: 5,
    };
    /// The default run (about a minute for every table).
    pub const DEFAULT: Config = Config {
        warmup: Duration::from_millis(50),
        batch: Duration::from_millis(10),
        rounds: 11,
    };
    /// Longer, steadier measurements.
    pub const FULL: Config = Config {
        warmup: Duration::from_millis(200),
        batch: Duration::from_millis(25),
        rounds: 21,
    };
}

/// One contender: a routine that performs `iters` operations and returns how long the
/// measured part took (so a routine can keep set-up and tear-down out of the timing).
pub struct Contender<'a> {
    name: String,
    routine: Box<dyn FnMut(u64) -> Duration + 'a>,
    fixed_iters: Option<u64>,
}

impl std::fmt::Debug for Contender<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contender")
            .field("name", &self.name)
            .field("fixed_iters", &self.fixed_iters)
            .finish_non_exhaustive()
    }
}

impl<'a> Contender<'a> {
    /// A routine timed as a whole (thread CPU time): `f(iters)` performs `iters` operations.
    pub fn new(name: impl Into<String>, mut f: impl FnMut(u64) + 'a) -> Self {
        Self::timed(name, move |iters| {
            let t = Stopwatch::start();
            f(iters);
            t.elapsed()
        })
    }

    /// A routine that times itself (for set-up outside the measurement), normally with a
    /// [`Stopwatch`].
    pub fn timed(name: impl Into<String>, f: impl FnMut(u64) -> Duration + 'a) -> Self {
        Self {
            name: name.into(),
            routine: Box::new(f),
            fixed_iters: None,
        }
    }

    /// Skip calibration: every batch performs exactly `iters` operations (for workloads
    /// whose state evolves, so that all contenders see the same operation sequence).
    pub fn fixed(mut self, iters: u64) -> Self {
        self.fixed_iters = Some(iters.max(1));
        self
    }

    /// The contender's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The result of measuring one contender.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// The contender's name.
    pub name: String,
    /// Median nanoseconds per operation over the batches.
    pub ns_per_op: f64,
    /// Half the spread between the 25th and 75th percentile batch, relative to the median.
    pub spread: f64,
    /// Operations per batch.
    pub iters: u64,
}

/// Run `iters` operations of a simple closure: `f` is called once per operation with the
/// operation number, and its result is passed to [`black_box`].
///
/// ```
/// let mut sum = 0u64;
/// benches::harness::repeat(10, |i| sum += i);
/// assert_eq!(sum, 45);
/// ```
#[inline]
pub fn repeat<R>(iters: u64, mut f: impl FnMut(u64) -> R) {
    for i in 0..iters {
        black_box(f(i));
    }
}

/// Calibrate and warm up one contender: its operations per batch, and how long (wall
/// clock, set-up included) one batch of that size took.
fn calibrate(c: &mut Contender<'_>, cfg: &Config) -> (u64, Duration) {
    let timed = |c: &mut Contender<'_>, n: u64| {
        let t = Instant::now();
        (c.routine)(n);
        t.elapsed()
    };
    if let Some(n) = c.fixed_iters {
        // Warm up with one batch even when the size is fixed.
        return (n, timed(c, n));
    }
    let warm_until = Instant::now() + cfg.warmup;
    let mut iters = 1u64;
    loop {
        let t = (c.routine)(iters);
        if t >= cfg.batch / 4 || iters >= 1 << 40 {
            let per_op = t.as_secs_f64() / iters as f64;
            let n = ((cfg.batch.as_secs_f64() / per_op.max(1e-12)) as u64).max(1);
            // Keep warming while the warm-up time has not passed, at the calibrated size.
            let mut wall = timed(c, n);
            while Instant::now() < warm_until {
                wall = timed(c, n);
            }
            return (n, wall);
        }
        iters *= 2;
    }
}

/// Fewest rounds a row gets, however slow its contenders.
pub const MIN_ROUNDS: usize = 5;

/// Measure every contender, interleaved round by round; results in the same order.
///
/// A row gets `cfg.rounds` rounds, fewer (down to [`MIN_ROUNDS`]) when one round of all
/// its contenders would take so long that the row exceeds [`Config::max_row`].
pub fn run(cfg: &Config, contenders: &mut [Contender<'_>]) -> Vec<Measurement> {
    let (iters, walls): (Vec<u64>, Vec<Duration>) =
        contenders.iter_mut().map(|c| calibrate(c, cfg)).unzip();
    let round: Duration = walls.iter().sum();
    let affordable = (cfg.max_row().as_secs_f64() / round.as_secs_f64().max(1e-9)) as usize;
    let rounds = cfg.rounds.min(affordable.max(MIN_ROUNDS)).max(1);
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); contenders.len()];
    for _ in 0..rounds {
        for (i, c) in contenders.iter_mut().enumerate() {
            let t = (c.routine)(iters[i]);
            samples[i].push(t.as_secs_f64() * 1e9 / iters[i] as f64);
        }
    }
    contenders
        .iter()
        .zip(samples)
        .zip(iters)
        .map(|((c, mut s), iters)| {
            s.sort_by(f64::total_cmp);
            let q = |p: f64| s[((s.len() - 1) as f64 * p).round() as usize];
            let median = q(0.5);
            let spread = if median > 0.0 {
                (q(0.75) - q(0.25)) / 2.0 / median
            } else {
                0.0
            };
            Measurement {
                name: c.name.clone(),
                ns_per_op: median,
                spread,
                iters,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slower_routine_measures_slower() {
        let cfg = Config {
            warmup: Duration::from_millis(1),
            batch: Duration::from_millis(2),
            rounds: 3,
        };
        let mut cs = vec![
            Contender::new("fast", |n| repeat(n, |i| i)),
            Contender::new("slow", |n| {
                repeat(n, |i| (0..1000u64).fold(i, |a, b| black_box(a ^ b)))
            }),
            Contender::timed("fixed", |n| Duration::from_nanos(7 * n)).fixed(100),
        ];
        let m = run(&cfg, &mut cs);
        assert_eq!(m.len(), 3);
        assert!(m[1].ns_per_op > 10.0 * m[0].ns_per_op, "{m:?}");
        assert_eq!(m[2].iters, 100);
        assert!((m[2].ns_per_op - 7.0).abs() < 1e-9);
    }
}
