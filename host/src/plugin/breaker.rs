//! A plugin that keeps failing is given a rest. After [`FAILURES_TO_OPEN`] failures in a
//! row (traps, timeouts, out of memory, cannot start), its calls are answered as failed
//! without entering the guest until a back-off has passed; then one trial call goes in:
//! a success closes the breaker, a failure opens it again for twice as long (up to
//! [`MAX_BACKOFF`]). A looping or crashing plugin then costs its tenant's clients a 4xx
//! and costs the server next to nothing, so that other tenants carry on.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures in a row that open the breaker.
pub const FAILURES_TO_OPEN: u32 = 3;
/// The first rest; it doubles at each failed trial.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub struct Breaker {
    state: Mutex<State>,
    /// How long a trial call may take before another trial is let in (its caller may
    /// have gone away without reporting).
    trial_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, backoff: Duration },
    Trial { until: Instant, backoff: Duration },
}

/// Why a call was not let in: the breaker is open until then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resting {
    pub until: Instant,
}

impl Breaker {
    pub fn new(call_budget: Duration) -> Breaker {
        Breaker {
            state: Mutex::new(State::Closed { failures: 0 }),
            trial_timeout: call_budget + Duration::from_secs(1),
        }
    }

    /// Whether a call may go in now.
    pub fn admit(&self, now: Instant) -> Result<(), Resting> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until, backoff } | State::Trial { until, backoff } if now >= until => {
                *state = State::Trial {
                    until: now + self.trial_timeout,
                    backoff,
                };
                Ok(())
            }
            State::Open { until, .. } | State::Trial { until, .. } => Err(Resting { until }),
        }
    }

    /// What became of a call that was let in. Returns whether this failure opened the
    /// breaker (for the log: once per opening, not once per call).
    pub fn record(&self, now: Instant, succeeded: bool) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let next = match (*state, succeeded) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 >= FAILURES_TO_OPEN => State::Open {
                until: now + FIRST_BACKOFF,
                backoff: FIRST_BACKOFF,
            },
            (State::Closed { failures }, false) => State::Closed { failures: failures + 1 },
            (State::Trial { backoff, .. }, false) => {
                let backoff = (backoff * 2).min(MAX_BACKOFF);
                State::Open {
                    until: now + backoff,
                    backoff,
                }
            }
            // Calls let in before it opened, failing late: it is open already.
            (open @ State::Open { .. }, false) => open,
        };
        let opened = matches!(next, State::Open { .. }) && !matches!(*state, State::Open { .. });
        *state = next;
        opened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn opens_after_failures_in_a_row_and_a_success_resets_the_count() {
        let breaker = Breaker::new(SECOND);
        let t = Instant::now();
        assert!(!breaker.record(t, false));
        assert!(!breaker.record(t, false));
        assert!(!breaker.record(t, true));
        assert!(!breaker.record(t, false));
        assert!(!breaker.record(t, false));
        assert!(breaker.admit(t).is_ok());
        assert!(breaker.record(t, false), "the third failure in a row opens it");
        assert_eq!(
            breaker.admit(t),
            Err(Resting {
                until: t + FIRST_BACKOFF
            })
        );
        assert!(!breaker.record(t, false), "a late failure does not open it twice");
    }

    #[test]
    fn one_trial_after_the_rest_then_twice_the_rest_or_closed() {
        let breaker = Breaker::new(SECOND);
        let t = Instant::now();
        for _ in 0..FAILURES_TO_OPEN {
            breaker.record(t, false);
        }
        let later = t + FIRST_BACKOFF;
        assert!(breaker.admit(later).is_ok(), "the trial");
        assert!(breaker.admit(later).is_err(), "only one trial at a time");
        assert!(breaker.record(later, false));
        assert_eq!(
            breaker.admit(later + FIRST_BACKOFF),
            Err(Resting {
                until: later + 2 * FIRST_BACKOFF
            })
        );
        let again = later + 2 * FIRST_BACKOFF;
        assert!(breaker.admit(again).is_ok());
        breaker.record(again, true);
        assert!(breaker.admit(again).is_ok());
        assert!(breaker.admit(again).is_ok(), "closed: everyone goes in");
    }

    #[test]
    fn a_trial_whose_caller_vanished_is_retried_and_the_rest_is_capped() {
        let breaker = Breaker::new(SECOND);
        let mut t = Instant::now();
        for _ in 0..FAILURES_TO_OPEN {
            breaker.record(t, false);
        }
        t += FIRST_BACKOFF;
        assert!(breaker.admit(t).is_ok());
        // Never recorded; after the call's budget and a second, another trial goes in.
        assert!(breaker.admit(t + SECOND).is_err());
        t += 2 * SECOND;
        assert!(breaker.admit(t).is_ok());
        for _ in 0..20 {
            breaker.record(t, false);
            t += MAX_BACKOFF;
            assert!(breaker.admit(t).is_ok(), "never resting longer than MAX_BACKOFF");
        }
    }
}
