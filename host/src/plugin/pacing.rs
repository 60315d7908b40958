//! How a running guest shares its thread. At every epoch tick (about 1 ms of guest code)
//! the call yields to the runtime so that the sessions beside it are served. A call that
//! has computed for longer than plugins normally do also pauses at each tick: a plugin
//! that spins until its budget ends then costs a fifth of a thread instead of a whole
//! one, and cannot slow another tenant's sessions down. Time spent waiting in the host
//! (a relay, for instance) does not count as computing.

use std::time::{Duration, Instant};

/// Guest time (in epoch ticks, about a millisecond each) a call computes at full speed.
pub const FULL_SPEED_TICKS: u32 = 20;

/// The pause after each tick past [`FULL_SPEED_TICKS`]: one tick of work in five.
pub const PAUSE: Duration = Duration::from_millis(4);

/// One call's clock: its deadline and how long it has computed.
#[derive(Debug, Clone, Copy)]
pub struct CallClock {
    deadline: Instant,
    ticks: u32,
}

/// What a guest does at an epoch tick.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The budget is spent: the call traps.
    Interrupt,
    /// Let other tasks run, then go on.
    Yield,
    /// Sleep this long, then go on.
    Pause(Duration),
}

impl CallClock {
    pub fn start(now: Instant, budget: Duration) -> CallClock {
        CallClock {
            deadline: now + budget,
            ticks: 0,
        }
    }

    /// Called at each epoch tick while the guest runs.
    pub fn tick(&mut self, now: Instant) -> Step {
        if now >= self.deadline {
            return Step::Interrupt;
        }
        self.ticks = self.ticks.saturating_add(1);
        if self.ticks <= FULL_SPEED_TICKS {
            return Step::Yield;
        }
        // Never sleep past the deadline: the call ends on time.
        Step::Pause(PAUSE.min(self.deadline - now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_call_only_yields() {
        let t0 = Instant::now();
        let mut clock = CallClock::start(t0, Duration::from_secs(1));
        for i in 0..FULL_SPEED_TICKS {
            assert_eq!(clock.tick(t0 + Duration::from_millis(u64::from(i))), Step::Yield);
        }
    }

    #[test]
    fn a_long_call_pauses_at_each_tick_after_its_full_speed_time() {
        let t0 = Instant::now();
        let mut clock = CallClock::start(t0, Duration::from_secs(1));
        for _ in 0..FULL_SPEED_TICKS {
            clock.tick(t0);
        }
        assert_eq!(clock.tick(t0 + Duration::from_millis(30)), Step::Pause(PAUSE));
        assert_eq!(clock.tick(t0 + Duration::from_millis(35)), Step::Pause(PAUSE));
    }

    #[test]
    fn the_deadline_interrupts_and_no_pause_outlasts_it() {
        let t0 = Instant::now();
        let budget = Duration::from_millis(100);
        let mut clock = CallClock::start(t0, budget);
        for _ in 0..FULL_SPEED_TICKS {
            clock.tick(t0);
        }
        assert_eq!(
            clock.tick(t0 + Duration::from_millis(99)),
            Step::Pause(Duration::from_millis(1))
        );
        assert_eq!(clock.tick(t0 + budget), Step::Interrupt);
    }
}
