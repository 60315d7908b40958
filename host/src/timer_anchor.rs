//! A timer that always stands in the runtime's timer wheel, a second or less ahead.
//!
//! When a task sets a timer earlier than the time driver's next wake-up, or while the
//! wheel is empty, tokio wakes the driver through its eventfd: a write, and one more turn
//! of `epoll_wait`, even when the only worker is the one setting the timer. A session sets
//! such a timer twice: its first read timeout (on a quiet server the wheel is empty between
//! connections) and the DATA timeout, shorter than the command one. With this timer
//! standing, a session's timeouts (seconds to minutes) are never the earliest, and the
//! driver is woken once a second instead: at 1 session, a connection a message, two
//! eventfd writes a message fewer.

use std::time::Duration;

use tokio::time::MissedTickBehavior;

/// How far ahead the standing timer is at most: shorter than any session timeout.
const AHEAD: Duration = Duration::from_secs(1);

/// Keeps a timer in the wheel for as long as the runtime runs.
pub async fn stand() {
    let mut tick = tokio::time::interval(AHEAD);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}
