//! How a running guest shares its thread. At every epoch tick (about 1 ms of guest code,
//! the first within 10 ms of its start: see `epoch`) the call yields to the runtime so that the sessions beside it are served. A call that
//! has computed for longer than plugins normally do also pauses at each tick, four times
//! as long as it ran since the last one: a plugin that spins until its budget ends then
//! costs a fifth of a thread instead of a whole one, and cannot slow another tenant's
//! sessions down. Pauses are measured, not ticks counted: a busy machine that delays the
//! epoch thread makes the slices longer and the pauses with them. Time spent waiting in
//! the host (a relay, for instance) never reaches a tick, so it does not count.

use std::time::{Duration, Instant};

use super::cpu_budget::CpuBudget;

/// Guest time a call computes at full speed.
pub const FULL_SPEED: Duration = Duration::from_millis(20);

/// Past it, each slice of computing is followed by this many times its length of pause.
pub const PAUSE_FACTOR: u32 = 4;

/// The longest single pause, so that a long slice does not leave the call asleep.
pub const MAX_PAUSE: Duration = Duration::from_millis(50);

/// One call's clock: its deadline and how long it has computed.
#[derive(Debug, Clone, Copy)]
pub struct CallClock {
    deadline: Instant,
    /// When the guest last went on running (the call's start, or the end of a pause).
    resumed: Instant,
    computed: Duration,
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
            resumed: now,
            computed: Duration::ZERO,
        }
    }

    /// Called at each epoch tick while the guest runs.
    /// When the call in progress must be over.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// `budget`: the tenant's CPU budget, charged with the slice; a tenant over it
    /// pauses for what it owes (see `cpu_budget`).
    pub fn tick(&mut self, now: Instant, budget: Option<&CpuBudget>) -> Step {
        if now >= self.deadline {
            return Step::Interrupt;
        }
        let slice = now.saturating_duration_since(self.resumed);
        self.computed += slice;
        let paced = if self.computed <= FULL_SPEED {
            Duration::ZERO
        } else {
            slice * PAUSE_FACTOR
        };
        let owed = budget.map_or(Duration::ZERO, |b| b.charge(slice, now));
        let pause = paced.max(owed).min(MAX_PAUSE);
        // A pause for the tenant's CPU share is the host's doing, not the plugin's: it
        // moves the deadline, so that a throttled call is slowed, never timed out.
        self.deadline += pause.saturating_sub(paced);
        // Never sleep past the deadline: the call ends on time.
        let pause = pause.min(self.deadline - now);
        self.resumed = now + pause;
        if pause.is_zero() {
            Step::Yield
        } else {
            Step::Pause(pause)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    impl CallClock {
        fn tick_alone(&mut self, now: Instant) -> Step {
            self.tick(now, None)
        }
    }

    #[test]
    fn a_short_call_only_yields() {
        let t0 = Instant::now();
        let mut clock = CallClock::start(t0, Duration::from_secs(1));
        for i in 1..=20 {
            assert_eq!(clock.tick_alone(t0 + MS * i), Step::Yield, "tick {i}");
        }
    }

    #[test]
    fn a_long_call_pauses_four_times_each_slice_it_computes() {
        let t0 = Instant::now();
        let mut clock = CallClock::start(t0, Duration::from_secs(1));
        assert_eq!(clock.tick_alone(t0 + MS * 20), Step::Yield);
        assert_eq!(clock.tick_alone(t0 + MS * 21), Step::Pause(MS * 4));
        // Resumed at 25 ms; a longer slice (a delayed tick) gets a longer pause ...
        assert_eq!(clock.tick_alone(t0 + MS * 28), Step::Pause(MS * 12));
        // ... but never one past the cap.
        assert_eq!(clock.tick_alone(t0 + MS * 140), Step::Pause(MAX_PAUSE));
    }

    #[test]
    fn the_deadline_interrupts_and_no_pause_outlasts_it() {
        let t0 = Instant::now();
        let budget = Duration::from_millis(100);
        let mut clock = CallClock::start(t0, budget);
        clock.tick_alone(t0 + MS * 30);
        assert_eq!(clock.tick_alone(t0 + MS * 99), Step::Pause(MS));
        assert_eq!(clock.tick_alone(t0 + budget), Step::Interrupt);
    }

    #[test]
    fn a_tenant_over_its_cpu_budget_pauses_for_what_it_owes() {
        let t0 = Instant::now();
        let mut clock = CallClock::start(t0, Duration::from_secs(1));
        // A tenth of a CPU: its burst is 10 ms, each ms over it owes 10 ms.
        let budget = CpuBudget::new(MS * 100, t0);
        for i in 1..=9 {
            assert_eq!(clock.tick(t0 + MS * i, Some(&budget)), Step::Yield, "tick {i}");
        }
        let Step::Pause(pause) = clock.tick(t0 + MS * 12, Some(&budget)) else {
            panic!("over its budget, it must pause")
        };
        // 12 ms used against a full 10 ms bucket and 1.1 ms earned since (the first tick's
        // 0.1 ms found it full): 0.9 ms owed, 9 ms to earn back.
        assert!(pause > MS * 17 / 2 && pause < MS * 19 / 2, "{pause:?}");
        // The pause does not count against the call's time budget.
        assert_eq!(clock.deadline(), t0 + Duration::from_secs(1) + pause);
    }
}
