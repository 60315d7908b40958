//! The clock that time budgets are counted in: the engine's epoch, advanced every
//! [`EPOCH_TICK`] by a thread of its own, so that a guest spinning on a runtime thread
//! cannot starve the clock that ends it.
//!
//! It ticks only while a call has lasted a tick: one that computes, or one that waits in
//! the host (a relay, DNS, HTTP; a wait is not charged as computing, see `pacing`). Most
//! calls last microseconds, and a tick is a wake-up of this thread (on a VM, 15 to 30 µs
//! of CPU each): at 1,000 messages a second, ticking whenever any call was running cost
//! the server as much as 30 µs a message. So each call's start is kept, and the thread
//! looks every [`WATCH`] for one that has run [`EPOCH_TICK`] or more. Once a look finds
//! one, it ticks at once, and then every [`EPOCH_TICK`] for [`LINGER`] after the last look
//! that did. A plugin that computes is stopped within `WATCH` of starting and from then on
//! at every tick, its next calls too; calls that answer at once never make it tick; and a
//! server with no calls at all for [`DEEP_IDLE`] sleeps until the next one starts.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use wasmtime::Engine;

/// How often the epoch advances while guests run: the granularity of every time budget.
/// A call that has run this long computes.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// How often the thread looks for a call that computes when it saw none at its last look.
pub const WATCH: Duration = Duration::from_millis(10);

/// How long the clock goes on ticking after a look last found a call that computes.
pub const LINGER: Duration = Duration::from_millis(100);

/// Without a call for this long, the thread sleeps until one starts: while calls keep
/// coming, starting one does not cost a wake-up.
const DEEP_IDLE: Duration = Duration::from_secs(1);

/// How often a sleeping clock looks whether its engine is gone.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The guest entries in progress: when each started. A slot a call ended is reused, so
/// the table is as long as the most calls at once.
#[derive(Default)]
struct Calls {
    started: Vec<Option<Instant>>,
    free: Vec<usize>,
    /// The thread waits on `wake` (or is about to): the next call must wake it.
    sleeping: bool,
}

impl Calls {
    /// When the oldest call in progress started, if one is.
    fn oldest(&self) -> Option<Instant> {
        if self.free.len() == self.started.len() {
            return None;
        }
        self.started.iter().flatten().min().copied()
    }
}

#[derive(Default)]
pub struct EpochClock {
    calls: Mutex<Calls>,
    wake: Condvar,
}

/// Held while guest code may run: the clock ticks once one has been held for a tick.
#[must_use]
pub struct Running {
    clock: Arc<EpochClock>,
    slot: usize,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut calls = self.clock.lock();
        calls.started[self.slot] = None;
        calls.free.push(self.slot);
    }
}

/// What the thread does after a look.
#[derive(Debug, PartialEq)]
enum Next {
    /// Advance the epoch after a tick's sleep.
    Tick,
    /// Look again after this long (a call in progress may come to compute, or a quiet
    /// spell may come to be deep).
    Look(Duration),
    /// Sleep until a call starts.
    Sleep,
}

/// The thread's decision after a look at `now`: `oldest` is the oldest call in
/// progress, `computing` when a look last found one that computes, `called` when a look
/// last found any call.
fn next(now: Instant, oldest: Option<Instant>, computing: Option<Instant>, called: Option<Instant>) -> Next {
    if computing.is_some_and(|at| now.duration_since(at) < LINGER) {
        return Next::Tick;
    }
    if let Some(started) = oldest {
        // Looked at again once it has run a tick, if it still runs.
        let left = EPOCH_TICK.saturating_sub(now.duration_since(started));
        return Next::Look(left.clamp(Duration::from_micros(100), WATCH));
    }
    if called.is_some_and(|at| now.duration_since(at) < DEEP_IDLE) {
        Next::Look(WATCH)
    } else {
        Next::Sleep
    }
}

impl EpochClock {
    /// Starts the clock's thread for `engine`; it ends once the engine is dropped.
    pub fn start(engine: &Engine) -> Arc<EpochClock> {
        let weak = engine.weak();
        EpochClock::start_with(move || match weak.upgrade() {
            Some(engine) => {
                engine.increment_epoch();
                true
            }
            None => false,
        })
    }

    /// The clock with `advance` for a tick; its thread ends when `advance` returns false.
    fn start_with(mut advance: impl FnMut() -> bool + Send + 'static) -> Arc<EpochClock> {
        let clock = Arc::new(EpochClock::default());
        let ticking = Arc::clone(&clock);
        std::thread::Builder::new()
            .name("wasmtpd-epoch".into())
            .spawn(move || {
                let mut computing: Option<Instant> = None;
                let mut called: Option<Instant> = None;
                let mut looked: Option<Instant> = None;
                loop {
                    let now = Instant::now();
                    // While it ticks, the table is looked at every WATCH, not at every
                    // tick: with thousands of calls in progress a look is a long scan.
                    let ticking_now = computing.is_some_and(|at| now.duration_since(at) < LINGER);
                    let mut oldest = None;
                    if !ticking_now || looked.is_none_or(|at| now.duration_since(at) >= WATCH) {
                        looked = Some(now);
                        oldest = ticking.lock().oldest();
                        if let Some(started) = oldest {
                            called = Some(now);
                            if now.duration_since(started) >= EPOCH_TICK {
                                computing = Some(now);
                            }
                        }
                    }
                    match next(now, oldest, computing, called) {
                        // At once: the call found has computed a tick already.
                        Next::Tick => {
                            if !advance() {
                                return;
                            }
                            std::thread::sleep(EPOCH_TICK);
                        }
                        Next::Look(after) => std::thread::sleep(after),
                        // Woken by a call (even one already done: calls are coming again,
                        // and waking this thread for each would cost more than looking),
                        // or IDLE_CHECK passed: is the engine gone?
                        Next::Sleep => {
                            if ticking.wait_for_calls() {
                                called = Some(Instant::now());
                            } else if Arc::strong_count(&ticking) == 1 {
                                return;
                            }
                        }
                    }
                }
            })
            .expect("cannot start the epoch thread");
        clock
    }

    fn lock(&self) -> MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks guest code as running until the guard is dropped; wakes the thread if it
    /// sleeps.
    pub fn running(self: &Arc<Self>) -> Running {
        let now = Instant::now();
        let mut calls = self.lock();
        let slot = match calls.free.pop() {
            Some(slot) => {
                calls.started[slot] = Some(now);
                slot
            }
            None => {
                calls.started.push(Some(now));
                calls.started.len() - 1
            }
        };
        if calls.sleeping {
            calls.sleeping = false;
            self.wake.notify_one();
        }
        Running {
            clock: Arc::clone(self),
            slot,
        }
    }

    /// Sleeps until a call starts (true) or IDLE_CHECK passes with none (false).
    fn wait_for_calls(&self) -> bool {
        let mut calls = self.lock();
        if calls.oldest().is_some() {
            return true;
        }
        calls.sleeping = true;
        let (mut calls, _) = self
            .wake
            .wait_timeout_while(calls, IDLE_CHECK, |calls| calls.sleeping)
            .unwrap_or_else(|e| e.into_inner());
        let woken = !calls.sleeping;
        calls.sleeping = false;
        woken
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[test]
    fn a_look_ticks_only_for_a_call_that_has_run_a_tick() {
        let now = Instant::now();
        let ago = |d: Duration| Some(now - d);
        let tick = EPOCH_TICK;
        // A call found that has computed a tick: ticking, for LINGER after.
        assert_eq!(next(now, ago(tick), Some(now), Some(now)), Next::Tick);
        assert_eq!(next(now, None, ago(LINGER / 2), ago(LINGER / 2)), Next::Tick);
        // A young call is looked at again when it would have run a tick, and no tick
        // is made for it.
        let young = tick / 4;
        assert_eq!(next(now, ago(young), None, Some(now)), Next::Look(tick - young));
        // Once the linger is over, short calls never make it tick.
        assert_eq!(next(now, ago(young), ago(LINGER), Some(now)), Next::Look(tick - young));
        // No call in progress: a look every WATCH, then sleep.
        assert_eq!(next(now, None, ago(LINGER), ago(WATCH)), Next::Look(WATCH));
        assert_eq!(next(now, None, None, ago(DEEP_IDLE)), Next::Sleep);
        assert_eq!(next(now, None, None, None), Next::Sleep);
    }

    #[test]
    fn calls_that_answer_at_once_never_make_it_tick() {
        // A round where this thread was held up mid-call (a loaded machine) made a call
        // that did last a tick, and proves nothing: up to five rounds.
        for _ in 0..5 {
            let ticks = Arc::new(AtomicU64::new(0));
            let counted = Arc::clone(&ticks);
            let clock = EpochClock::start_with(move || {
                counted.fetch_add(1, Ordering::Relaxed);
                true
            });
            // Calls of 50 µs, 200 µs apart, for 300 ms: a quarter of the time a call runs.
            let until = Instant::now() + Duration::from_millis(300);
            let (mut calls, mut longest) = (0, Duration::ZERO);
            while Instant::now() < until {
                let started = Instant::now();
                let running = clock.running();
                while started.elapsed() < Duration::from_micros(50) {
                    std::hint::spin_loop();
                }
                drop(running);
                longest = longest.max(started.elapsed());
                calls += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            if longest >= EPOCH_TICK / 2 {
                continue;
            }
            assert!(calls > 100, "{calls} calls");
            assert_eq!(ticks.load(Ordering::Relaxed), 0, "{calls} short calls made it tick");
            return;
        }
        panic!("every round had a call held up for half a tick: the machine is too loaded to tell");
    }

    #[test]
    fn the_clock_ticks_only_while_a_guest_runs() {
        let ticks = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&ticks);
        let clock = EpochClock::start_with(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            true
        });
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(ticks.load(Ordering::Relaxed), 0, "no guest ran: no tick");

        let running = clock.running();
        std::thread::sleep(Duration::from_millis(50));
        let while_running = ticks.load(Ordering::Relaxed);
        // 50 ticks if the machine keeps up; a loaded one sleeps longer than asked.
        assert!(while_running >= 5, "{while_running} ticks in 50 ms of guest code");

        drop(running);
        std::thread::sleep(LINGER + WATCH * 2);
        let stopped = ticks.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            ticks.load(Ordering::Relaxed),
            stopped,
            "no guest runs: the clock stopped"
        );
    }

    #[test]
    fn the_thread_ends_with_its_engine() {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).unwrap();
        let clock = EpochClock::start(&engine);
        let running = clock.running();
        drop(engine);
        // The thread sees the engine gone at its next tick and lets go of the clock.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&clock) > 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            Arc::strong_count(&clock),
            2,
            "the clock and its guard are all that is left"
        );
        drop(running);
    }
}
