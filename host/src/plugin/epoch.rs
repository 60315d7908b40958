//! The clock that time budgets are counted in: the engine's epoch, advanced every
//! [`EPOCH_TICK`] by a thread of its own, so that a guest spinning on a runtime thread
//! cannot starve the clock that ends it.
//!
//! It ticks only while guests compute. Most calls last microseconds, so the thread looks
//! every [`WATCH`] whether one is running; once a look finds one, it ticks every
//! [`EPOCH_TICK`] for [`LINGER`] after the last look that did. A plugin that computes is
//! found within `WATCH` and from then on stopped at every tick, its next calls too; a
//! server whose plugins answer fast is not woken a thousand times a second (at 1,400
//! messages a second that cost 10 µs of CPU a message); and one with no calls at all for
//! [`DEEP_IDLE`] sleeps until the next one starts.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use wasmtime::Engine;

/// How often the epoch advances while guests run: the granularity of every time budget.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// How often the thread looks for a running guest when it saw none at its last look.
pub const WATCH: Duration = Duration::from_millis(10);

/// How long the clock goes on ticking after a look last found a guest running.
pub const LINGER: Duration = Duration::from_millis(100);

/// Without a guest for this long, the thread sleeps until one starts: while calls keep
/// coming, starting one does not cost a wake-up.
const DEEP_IDLE: Duration = Duration::from_secs(1);

/// How often a sleeping clock looks whether its engine is gone.
const IDLE_CHECK: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct EpochClock {
    /// Guest entries in progress.
    running: AtomicUsize,
    /// The thread waits on `wake` (or is about to): the next guest must wake it.
    sleeping: AtomicBool,
    idle: Mutex<()>,
    wake: Condvar,
}

/// Held while guest code may run: the clock ticks while one exists.
#[must_use]
pub struct Running(Arc<EpochClock>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
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
                // When a look last found a guest running; none yet: asleep until the first.
                let mut seen: Option<Instant> = None;
                loop {
                    if ticking.running.load(Ordering::SeqCst) > 0 {
                        seen = Some(Instant::now());
                    }
                    let since = seen.map(|at| at.elapsed());
                    if since.is_some_and(|s| s < LINGER) {
                        // A tick's length after the guest was seen, not at once: a short
                        // call then runs through without being stopped to yield.
                        std::thread::sleep(EPOCH_TICK);
                        if !advance() {
                            return;
                        }
                    } else if since.is_some_and(|s| s < DEEP_IDLE) {
                        std::thread::sleep(WATCH);
                    } else {
                        // Woken by a guest (even one already done: calls are coming again,
                        // and waking this thread for each would cost more than ticking),
                        // or IDLE_CHECK passed: is the engine gone?
                        if ticking.wait_for_guests() {
                            seen = Some(Instant::now());
                        } else if Arc::strong_count(&ticking) == 1 {
                            return;
                        }
                    }
                }
            })
            .expect("cannot start the epoch thread");
        clock
    }

    /// Marks guest code as running until the guard is dropped. The first one wakes the
    /// thread if it sleeps: under the lock, so that the wake cannot fall between the
    /// thread's look at the count and its wait.
    pub fn running(self: &Arc<Self>) -> Running {
        if self.running.fetch_add(1, Ordering::SeqCst) == 0 && self.sleeping.load(Ordering::SeqCst) {
            let _idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            self.wake.notify_one();
        }
        Running(Arc::clone(self))
    }

    /// Sleeps until a guest starts (true) or IDLE_CHECK passes with none (false).
    fn wait_for_guests(&self) -> bool {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        self.sleeping.store(true, Ordering::SeqCst);
        let woken = self.running.load(Ordering::SeqCst) > 0
            || !self
                .wake
                .wait_timeout(idle, IDLE_CHECK)
                .map_or(true, |(_, timeout)| timeout.timed_out());
        self.sleeping.store(false, Ordering::SeqCst);
        woken
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

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
