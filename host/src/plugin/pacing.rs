//! How a running guest shares its thread. At every epoch tick (about 1 ms of guest code,
//! the first within 10 ms of its start: see `epoch`) the call yields to the runtime so that the sessions beside it are served. A call that
//! has computed for longer than plugins normally do also pauses at each tick, four times
//! as long as it ran since the last one: a plugin that spins until its budget ends then
//! costs a fifth of a thread instead of a whole one, and cannot slow another tenant's
//! sessions down. Pauses are measured, not ticks counted: a busy machine that delays the
//! epoch thread makes the slices longer and the pauses with them. Time spent in the host
//! (a relay waiting, a pause, a yield's wait in line) is bracketed by the call hook and
//! does not count. What a call ran after its last tick is left for the call's end to
//! charge ([`CallClock::uncharged`]).

use std::time::{Duration, Instant};

use super::cpu_budget::CpuBudget;

/// Guest time a call computes at full speed.
pub const FULL_SPEED: Duration = Duration::from_millis(20);

/// Past it, each slice of computing is followed by this many times its length of pause.
pub const PAUSE_FACTOR: u32 = 4;

/// The longest single pause, so that a long slice does not leave the call asleep.
pub const MAX_PAUSE: Duration = Duration::from_millis(50);

/// Pauses for the tenant's CPU share move a call's deadline, up to this many times its
/// budget in all: a tenant whose share is far too small for its plugin gets 451s in the
/// end rather than clients held for ever.
pub const MAX_STRETCH: u32 = 10;

/// One call's clock: its deadline and how long it has computed.
#[derive(Debug, Clone, Copy)]
pub struct CallClock {
    deadline: Instant,
    /// The latest the deadline may be moved to.
    latest: Instant,
    /// When the guest last went on running: the call's start, the end of a pause or
    /// yield, or its return from a host call.
    resumed: Instant,
    /// Computing since the last tick that ended in a host call: not yet counted.
    unticked: Duration,
    /// Host calls in progress. A host call can run guest code again (its result lowered
    /// through the guest's `cabi_realloc`, whose entry checks the epoch), and with it
    /// another host call: only the outermost one ends a stretch of computing.
    host_depth: u32,
    computed: Duration,
    /// Paused for the tenant's CPU share.
    throttled: Duration,
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
            latest: now + budget * MAX_STRETCH,
            resumed: now,
            unticked: Duration::ZERO,
            host_depth: 0,
            computed: Duration::ZERO,
            throttled: Duration::ZERO,
        }
    }

    /// The guest calls the host (an import, or a libcall: an epoch tick's yield or pause,
    /// a memory.grow): what it computed since it last went on running counts; the time in
    /// the host (a relay waiting for its upstream, a pause) does not.
    pub fn host_call_starts(&mut self, now: Instant) {
        if self.host_depth == 0 {
            self.unticked += now.saturating_duration_since(self.resumed);
        }
        self.host_depth += 1;
        self.resumed = self.resumed.max(now);
    }

    /// The host call returned (after a yield or a pause too): the guest goes on running.
    /// Never earlier than it last did.
    pub fn resumes(&mut self, now: Instant) {
        self.host_depth = self.host_depth.saturating_sub(1);
        self.resumed = self.resumed.max(now);
    }

    /// Guest time the call has run until `now`: what its ticks counted (and its tenant
    /// was charged), and what it ran since, which no tick saw (most calls end between
    /// ticks, and none come while the epoch clock only watches).
    pub fn guest_time(&self, now: Instant) -> Duration {
        let running = match self.host_depth {
            0 => now.saturating_duration_since(self.resumed),
            _ => Duration::ZERO,
        };
        self.computed + self.unticked + running
    }

    /// Guest time the call ran until `now` that no tick charged to its tenant: all of it
    /// for a call that ended between ticks (most do; the clock ticks only for calls that
    /// last one).
    pub fn uncharged(&self, now: Instant) -> Duration {
        self.guest_time(now).saturating_sub(self.computed)
    }

    /// How long the call was paused for its tenant's CPU share.
    pub fn throttled(&self) -> Duration {
        self.throttled
    }

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
        let slice = std::mem::take(&mut self.unticked) + now.saturating_duration_since(self.resumed);
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
        self.deadline = (self.deadline + pause.saturating_sub(paced)).min(self.latest);
        // Never sleep past the deadline: the call ends on time.
        let pause = pause.min(self.deadline - now);
        self.throttled += pause.saturating_sub(paced);
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
    fn guest_time_counts_what_no_tick_saw_and_not_the_time_in_the_host() {
        let us = Duration::from_micros;
        let t0 = Instant::now();
        let mut clock = CallClock::start(t0, MS * 100);
        // 300 µs of guest code, then 5 ms in a host call: 300 µs.
        clock.host_call_starts(t0 + us(300));
        assert_eq!(clock.guest_time(t0 + us(300) + MS * 5), us(300));
        // Back in the guest for 400 µs more: 700 µs, though no tick came.
        clock.resumes(t0 + us(300) + MS * 5);
        assert_eq!(clock.guest_time(t0 + us(700) + MS * 5), us(700));
        // A tick counts it all, and the guest runs on 200 µs after the tick.
        assert_eq!(clock.tick(t0 + us(1700) + MS * 5, None), Step::Yield);
        assert_eq!(clock.guest_time(t0 + us(1900) + MS * 5), us(1900));
    }

    #[test]
    fn what_no_tick_charged_is_left_for_the_call_end() {
        let us = Duration::from_micros;
        let t0 = Instant::now();
        let mut clock = CallClock::start(t0, MS * 100);
        // A call that ends between ticks: all of its guest time, none of its host time.
        clock.host_call_starts(t0 + us(300));
        clock.resumes(t0 + MS * 5);
        assert_eq!(clock.uncharged(t0 + MS * 5 + us(200)), us(500));
        // A tick charges what ran before it; only what ran after is left.
        let budget = CpuBudget::new(MS * 1000, t0);
        assert_eq!(clock.tick(t0 + MS * 6, Some(&budget)), Step::Yield);
        assert_eq!(clock.uncharged(t0 + MS * 6 + us(250)), us(250));
        assert_eq!(clock.guest_time(t0 + MS * 6 + us(250)), us(1550));
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

    #[test]
    fn time_in_host_calls_and_pauses_is_not_computing() {
        let t0 = Instant::now();
        let mut clock = CallClock::start(t0, Duration::from_secs(1));
        let budget = CpuBudget::new(MS * 100, t0);
        // 2 ms of computing, 500 ms waiting for a relay, 1 ms of computing: 3 ms charged.
        clock.host_call_starts(t0 + MS * 2);
        clock.resumes(t0 + MS * 502);
        assert_eq!(clock.tick(t0 + MS * 503, Some(&budget)), Step::Yield);
        // A yield that waited 5 ms in line before the guest went on: not charged either.
        clock.resumes(t0 + MS * 508);
        assert_eq!(clock.tick(t0 + MS * 509, Some(&budget)), Step::Yield);
        // Had the waits counted, 509 ms would be far over a 10 ms burst. 4 ms used, then
        // 5 more: 2.1 ms left, and 4 more (0.4 earned meanwhile) is over.
        assert_eq!(clock.tick(t0 + MS * 514, Some(&budget)), Step::Yield);
        assert!(matches!(clock.tick(t0 + MS * 518, Some(&budget)), Step::Pause(_)));
    }

    #[test]
    fn a_host_call_that_runs_guest_code_again_is_still_not_computing() {
        // A relay that waits 300 ms for its upstream, then lowers its result through the
        // guest's allocator, whose entry sees the epoch and calls the host again.
        let t0 = Instant::now();
        let budget = CpuBudget::new(MS * 100, t0);
        let mut clock = CallClock::start(t0, Duration::from_secs(1));
        clock.host_call_starts(t0 + MS);
        clock.host_call_starts(t0 + MS * 301);
        assert_eq!(clock.tick(t0 + MS * 301, Some(&budget)), Step::Yield);
        clock.resumes(t0 + MS * 302);
        clock.resumes(t0 + MS * 302);
        // 1 ms computed before the relay and 1 after it, not 300.
        assert_eq!(clock.tick(t0 + MS * 303, Some(&budget)), Step::Yield);
        assert!(clock.computed < MS * 3, "{:?}", clock.computed);
    }

    #[test]
    fn a_resume_from_before_the_call_charges_nothing() {
        // A warm instance's next call starts 3 s after its last; a resume time from
        // before the call (the bug of a stale mark, fixed) must not move its start back.
        let t0 = Instant::now();
        let next = t0 + Duration::from_secs(3);
        let budget = CpuBudget::new(MS * 500, t0);
        let mut clock = CallClock::start(next, Duration::from_secs(1));
        clock.resumes(t0 + MS);
        // 1 ms computed, not 3 s: no pause owed.
        assert_eq!(clock.tick(next + MS, Some(&budget)), Step::Yield);
    }
}
