//! What every read of a session waits for beside its data: the read's deadline and the
//! server's shutdown. Both are made once a session and armed again before each read. A
//! fresh `timeout` and `cancelled()` a read put an entry into the timer wheel and a waiter
//! into the token's list and took both out again, six times a message; re-arming a later
//! deadline is one compare-and-swap (tokio moves the wheel entry only when it fires early),
//! and the shutdown waiter stays in its list.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Longer than any one read is meant to wait: a configured timeout past it waits this
/// long (and `Instant + Duration` cannot overflow).
const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

pub(super) struct ReadWaits {
    /// Made at the first read, in the runtime that serves the session.
    deadline: Option<Pin<Box<Sleep>>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl ReadWaits {
    pub(super) fn new(shutdown: &CancellationToken) -> ReadWaits {
        ReadWaits {
            deadline: None,
            shutdown: Box::pin(shutdown.clone().cancelled_owned()),
        }
    }

    /// Sets the deadline `timeout` from now and gives both waits, to be polled beside the
    /// read: the deadline ends when the read has waited `timeout`, the shutdown when the
    /// server begins to stop.
    pub(super) fn arm(&mut self, timeout: Duration) -> (Pin<&mut Sleep>, Pin<&mut WaitForCancellationFutureOwned>) {
        let at = Instant::now() + timeout.min(MAX_TIMEOUT);
        let deadline = match &mut self.deadline {
            Some(sleep) => {
                sleep.as_mut().reset(at);
                sleep
            }
            empty => empty.insert(Box::pin(tokio::time::sleep_until(at))),
        };
        (deadline.as_mut(), self.shutdown.as_mut())
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::task::Poll;

    use super::*;

    /// Polls once: whether the wait has ended.
    async fn ended<F: std::future::Future>(future: Pin<&mut F>) -> bool {
        let mut future = future;
        poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx).is_ready())).await
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_moves_with_each_arming_later_and_earlier() {
        let token = CancellationToken::new();
        let mut waits = ReadWaits::new(&token);
        let (deadline, _) = waits.arm(Duration::from_secs(10));
        assert!(!ended(deadline).await);
        tokio::time::advance(Duration::from_secs(8)).await;
        // Armed again: 10 s from now, not from the first arming.
        let (deadline, _) = waits.arm(Duration::from_secs(10));
        assert!(!ended(deadline).await);
        tokio::time::advance(Duration::from_secs(8)).await;
        let (deadline, _) = waits.arm(Duration::from_secs(10));
        assert!(!ended(deadline).await);
        tokio::time::advance(Duration::from_secs(11)).await;
        let (mut deadline, _) = waits.arm(Duration::from_secs(10));
        assert!(!ended(deadline.as_mut()).await, "re-armed after it would have ended");
        // An earlier deadline than the one set (DATA's shorter timeout) is kept too.
        let (deadline, _) = waits.arm(Duration::from_secs(2));
        assert!(!ended(deadline).await);
        tokio::time::advance(Duration::from_millis(1999)).await;
        let (deadline, _) = waits.arm(Duration::from_secs(2));
        assert!(!ended(deadline).await, "re-armed 1.999 s after");
        tokio::time::advance(Duration::from_millis(2001)).await;
        assert!(
            ended(waits.deadline.as_mut().unwrap().as_mut()).await,
            "2 s after the last arming"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_past_a_year_waits_a_year() {
        let token = CancellationToken::new();
        let mut waits = ReadWaits::new(&token);
        let (deadline, _) = waits.arm(Duration::MAX);
        assert!(!ended(deadline).await);
        tokio::time::advance(MAX_TIMEOUT - Duration::from_secs(1)).await;
        let deadline = waits.deadline.as_mut().unwrap().as_mut();
        assert!(!ended(deadline).await, "a second before the year");
        tokio::time::advance(Duration::from_secs(2)).await;
        let deadline = waits.deadline.as_mut().unwrap().as_mut();
        assert!(ended(deadline).await, "a second after the year");
    }

    #[tokio::test]
    async fn the_shutdown_wait_ends_when_the_token_is_cancelled_and_stays_ended() {
        let token = CancellationToken::new();
        let mut waits = ReadWaits::new(&token);
        let (_, shutdown) = waits.arm(Duration::from_secs(10));
        assert!(!ended(shutdown).await);
        token.cancel();
        for _ in 0..2 {
            let (_, shutdown) = waits.arm(Duration::from_secs(10));
            assert!(ended(shutdown).await);
        }
    }
}
