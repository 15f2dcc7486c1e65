//! The machinery shared by the concurrent targets (`maple_rcu`, `vmlock_rcu`): a schedule
//! of *rounds* decoded from the input, a baton that runs them in order, boxed canary values,
//! and a watchdog that turns a hang into a failure.
//!
//! # Rounds: making the interleaving part of the input
//!
//! A concurrent target decodes its whole input up front into one list of *events* per
//! thread (a writer and one or two readers), each tagged with a *round* number. Rounds run
//! strictly one after another ([`Baton`]): every thread with events in round `r` runs them,
//! in order, and round `r + 1` starts only when all of them are done. So
//!
//! - a round with one thread is a deterministic step: the input fixes exactly which reader
//!   operations (a point read, a few steps of an iterator, the end of a read section) happen
//!   between which writer operations, and a failure found this way replays exactly;
//! - a round with several threads is a real race (the input sets a spin delay before each
//!   event to shift the threads against each other); whatever it finds replays often
//!   rather than always, which is enough for `cargo fuzz tmin`.
//!
//! Read sections and iterators may span rounds: a reader can enter a section, read, let
//! the writer run a dozen stores, iterate on, and only then leave.
//!
//! # Versions
//!
//! The writer counts every published change in [`Shared::version`] (Release, after the
//! change). A reader reads it (Acquire) before and after each operation: a result must
//! then match the model at some version in `[before, after]`, or `[before, after + 1]` if
//! the writer was running in that round (a change can be visible before it is counted).
//! In a round without the writer the window is a single version, so a stale or torn read
//! there is caught deterministically.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Thread ids in round masks: the writer is 0, readers are 1 and 2.
pub const WRITER: usize = 0;

/// The most threads one input runs (a writer and two readers).
pub const MAX_THREADS: usize = 3;

/// How long one input may run before it is declared hung (seconds; `MAPLE_FUZZ_HANG_SECS`
/// overrides it, e.g. for sanitiser builds or Miri).
pub fn hang_limit() -> Duration {
    static SECS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    Duration::from_secs(*SECS.get_or_init(|| {
        std::env::var("MAPLE_FUZZ_HANG_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60)
    }))
}

/// The schedule: which threads take part in each round.
#[derive(Clone, Debug, Default)]
pub struct Rounds {
    masks: Vec<u8>,
}

impl Rounds {
    /// Put an event of thread `t` into the schedule. It joins the current round if `join`
    /// is set or `t` is the only thread in it so far (consecutive events of one thread need
    /// no barrier between them); otherwise it opens a new round. Returns the round.
    pub fn place(&mut self, t: usize, join: bool) -> usize {
        let bit = 1u8 << t;
        match self.masks.last_mut() {
            Some(m) if join || *m == bit => *m |= bit,
            _ => self.masks.push(bit),
        }
        self.masks.len() - 1
    }

    /// Number of rounds.
    pub fn len(&self) -> usize {
        self.masks.len()
    }

    /// Whether there are no rounds.
    pub fn is_empty(&self) -> bool {
        self.masks.is_empty()
    }

    /// Whether thread `t` runs in round `r`.
    pub fn has(&self, r: usize, t: usize) -> bool {
        self.masks.get(r).is_some_and(|m| m & (1 << t) != 0)
    }

    /// Whether round `r` runs more than one thread.
    pub fn is_race(&self, r: usize) -> bool {
        self.masks.get(r).is_some_and(|m| m.count_ones() > 1)
    }
}

/// Runs the rounds in order; see the module docs.
#[derive(Debug)]
pub struct Baton {
    rounds: Rounds,
    state: Mutex<BatonState>,
    cv: Condvar,
}

#[derive(Debug)]
struct BatonState {
    /// The round now running (`rounds.len()` when all are done).
    round: usize,
    /// Threads of the running round that have not finished it.
    pending: u8,
    /// Set when a thread failed or the watchdog fired: everybody stops.
    abort: bool,
}

/// The run was aborted (another thread failed or the input hung).
#[derive(Debug)]
pub struct Aborted;

impl Baton {
    /// A baton for `rounds`, positioned at round 0.
    pub fn new(rounds: Rounds) -> Self {
        let pending = rounds.masks.first().copied().unwrap_or(0);
        Baton {
            rounds,
            state: Mutex::new(BatonState {
                round: 0,
                pending,
                abort: false,
            }),
            cv: Condvar::new(),
        }
    }

    /// The schedule.
    pub fn rounds(&self) -> &Rounds {
        &self.rounds
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BatonState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Block until round `r` runs.
    pub fn wait_round(&self, r: usize) -> Result<(), Aborted> {
        let mut st = self.lock();
        while st.round < r && !st.abort {
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if st.abort {
            Err(Aborted)
        } else {
            Ok(())
        }
    }

    /// Thread `t` finished its events of the running round; the last one to finish starts
    /// the next round.
    pub fn done(&self, t: usize) {
        let mut st = self.lock();
        st.pending &= !(1u8 << t);
        if st.pending == 0 {
            st.round += 1;
            st.pending = self.rounds.masks.get(st.round).copied().unwrap_or(0);
            self.cv.notify_all();
        }
    }

    /// Stop every thread at its next wait.
    pub fn abort(&self) {
        self.lock().abort = true;
        self.cv.notify_all();
    }

    /// Wait until every round has run; `Err` with a description if it takes longer than
    /// `limit` (the run is then aborted).
    pub fn wait_all(&self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let mut st = self.lock();
        while st.round < self.rounds.len() && !st.abort {
            let now = Instant::now();
            if now >= deadline {
                let msg = format!(
                    "hang: round {} of {} still running after {limit:?} (threads not done: {:#b})",
                    st.round,
                    self.rounds.len(),
                    st.pending
                );
                drop(st);
                self.abort();
                return Err(msg);
            }
            st = self
                .cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(())
    }
}

/// A thread's walk through its own events: waits for each event's round and reports the
/// previous round done.
#[derive(Debug)]
pub struct Turns<'b> {
    baton: &'b Baton,
    me: usize,
    current: Option<usize>,
}

impl<'b> Turns<'b> {
    /// Thread `me`'s view of `baton`.
    pub fn new(baton: &'b Baton, me: usize) -> Self {
        Turns {
            baton,
            me,
            current: None,
        }
    }

    /// Get ready to run an event of round `r`: finish the current round if `r` is a later
    /// one and wait for `r`. Returns whether the writer runs in round `r` too.
    pub fn enter(&mut self, r: usize) -> Result<bool, Aborted> {
        if self.current != Some(r) {
            if self.current.is_some() {
                self.baton.done(self.me);
            }
            self.current = None;
            self.baton.wait_round(r)?;
            self.current = Some(r);
        }
        Ok(self.baton.rounds.has(r, WRITER))
    }

    /// Whether the writer runs in the current round (false between rounds).
    pub fn writer_active(&self) -> bool {
        self.current
            .is_some_and(|r| self.baton.rounds.has(r, WRITER))
    }

    /// All events ran: finish the current round.
    pub fn finish(&mut self) {
        if self.current.take().is_some() {
            self.baton.done(self.me);
        }
    }
}

/// Spin `n` times (a delay the input chooses, to shift racing threads against each other).
pub fn delay(n: u32) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
    if n > 512 {
        std::thread::yield_now();
    }
}

/// State every thread of one run sees.
#[derive(Debug, Default)]
pub struct Shared {
    /// Published writer changes (see the module docs).
    pub version: AtomicU64,
}

impl Shared {
    /// The current version (Acquire: a reader that reads `v` sees every change up to `v`).
    pub fn now(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The writer published one more change (Release: the change happens-before any read
    /// of the new count).
    pub fn publish(&self) {
        self.version.fetch_add(1, Ordering::Release);
    }
}

/// The message of a panic payload.
pub fn panic_message(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-string panic)".to_string())
}

/// Spawn `f` as a thread of a run: a panic aborts the baton (so the other threads stop
/// waiting) and comes back as `Err(message)` from the join handle.
pub fn spawn<T: Send + 'static>(
    name: &str,
    baton: Arc<Baton>,
    f: impl FnOnce(&Baton) -> T + Send + 'static,
) -> std::thread::JoinHandle<Result<T, String>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(|| f(&baton)));
            r.map_err(|p| {
                baton.abort();
                panic_message(&*p)
            })
        })
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"))
}

/// Run `f` on a thread of its own and panic if it does not finish within `limit`: a test
/// of something that can hang (a grace period, a drop) fails instead of hanging.
pub fn bounded<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::Builder::new()
        .name(what.to_string())
        .spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(f));
            let _ = tx.send(());
            r
        })
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    match rx.recv_timeout(limit) {
        Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Ok(Ok(v)) => v,
            Ok(Err(p)) | Err(p) => panic!("{what}: {}", panic_message(&*p)),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("hang: {what} did not finish within {limit:?}")
        }
    }
}

/// Marks a live [`Canary`].
pub const ALIVE: u64 = 0xa11c_e5a1_ca4a_71e5;
/// Written over [`ALIVE`] when a canary is dropped.
pub const DEAD: u64 = 0xdead_dead_dead_dead;

/// Live-object accounting of one run's canaries.
#[derive(Debug, Default)]
pub struct CanaryCount {
    /// Canaries created and not yet dropped.
    pub live: AtomicUsize,
    /// Drops of a canary that was not alive (a double free that happened to hit freed
    /// memory still holding the canary).
    pub bad_drops: AtomicUsize,
}

/// A boxed tree value that knows whether it was destroyed: its `Drop` overwrites the magic
/// word, so a reader that still reaches it through a reference its read section should
/// protect sees [`DEAD`] (or, once the memory is reused, some other id). Under
/// AddressSanitizer the same read is reported as a use-after-free.
#[derive(Debug)]
pub struct Canary {
    magic: AtomicU64,
    id: u64,
    count: Arc<CanaryCount>,
}

impl Canary {
    /// A live canary carrying `id`, counted in `count`.
    pub fn new(id: u64, count: &Arc<CanaryCount>) -> Box<Canary> {
        count.live.fetch_add(1, Ordering::Relaxed);
        Box::new(Canary {
            magic: AtomicU64::new(ALIVE),
            id,
            count: count.clone(),
        })
    }

    /// The id, or `Err` with what was found if the canary is not alive.
    pub fn read(&self) -> Result<u64, String> {
        // Relaxed: a live canary's magic never changes; a dead one's was overwritten by
        // its drop, which a correct reader can never observe at all.
        match self.magic.load(Ordering::Relaxed) {
            ALIVE => Ok(self.id),
            DEAD => Err(format!("value {} was destroyed", self.id)),
            m => Err(format!(
                "value at {:p} is garbage (magic {m:#x}, id {})",
                self as *const Canary, self.id
            )),
        }
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        // `swap` through `&mut` is still an atomic RMW: a reader racing this drop (a bug
        // the target exists to catch) then races atomics, not plain memory.
        if self.magic.swap(DEAD, Ordering::Relaxed) != ALIVE {
            self.count.bad_drops.fetch_add(1, Ordering::Relaxed);
        }
        self.count.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Run statistics of the concurrent targets (whole process): how many reader observations
/// were checked, and how many of them really overlapped a writer change (the version count
/// moved while the read ran), which proves the race window was hit.
#[derive(Debug, Default)]
pub struct RaceStats {
    /// Reader observations checked.
    pub observations: AtomicU64,
    /// Of those, made while the writer published at least one change.
    pub overlapped: AtomicU64,
}

/// The process-wide [`RaceStats`].
pub static RACE_STATS: RaceStats = RaceStats {
    observations: AtomicU64::new(0),
    overlapped: AtomicU64::new(0),
};

/// Set once any reader observation has overlapped a writer change (for tests that must
/// prove the race window was hit).
pub static OVERLAP_SEEN: AtomicBool = AtomicBool::new(false);

/// Record one checked observation; `moved`: the version count changed while it ran.
pub fn count_observation(moved: bool) {
    RACE_STATS.observations.fetch_add(1, Ordering::Relaxed);
    if moved {
        RACE_STATS.overlapped.fetch_add(1, Ordering::Relaxed);
        OVERLAP_SEEN.store(true, Ordering::Relaxed);
    }
}
