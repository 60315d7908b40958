//! Room for message data in memory, server-wide (`[limits] max_message_memory`): a session
//! takes room as its message comes in and gives it back when the transaction ends. A
//! message that finds no room goes to the spool as it comes in, and waits for room before
//! its handlers are called (they take it in memory). A session never waits for room while
//! it holds some, so sessions cannot hold each other up for good.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::spool::{Spool, SpoolError, SpoolFile};

/// Room is taken a MiB at a time: fewer trips to the semaphore.
const STEP: usize = 1 << 20;

pub struct MessageRoom {
    /// Free room, in MiB.
    free: Arc<Semaphore>,
    /// All the room, in MiB.
    mib: usize,
    /// Where messages without room go; none where the room has no bound.
    spool: Option<Spool>,
}

/// Room a session holds; given back when dropped.
#[derive(Default)]
pub struct Held {
    permit: Option<OwnedSemaphorePermit>,
}

impl Held {
    /// Octets held.
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits() * STEP)
    }

    fn add(&mut self, more: OwnedSemaphorePermit) {
        match &mut self.permit {
            Some(permit) => permit.merge(more),
            None => self.permit = Some(more),
        }
    }
}

/// MiB that hold `bytes`.
fn steps(bytes: usize) -> usize {
    bytes.div_ceil(STEP)
}

impl MessageRoom {
    /// `total` octets of room (at least one MiB), and where messages without room go
    /// (without a spool they are deferred).
    pub fn new(total: usize, spool: Option<Spool>) -> Arc<MessageRoom> {
        let mib = steps(total).clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(MessageRoom {
            free: Arc::new(Semaphore::new(mib)),
            mib,
            spool,
        })
    }

    /// Room without bound, and no spool: for a single delivery (`--deliver`) and tests.
    pub fn unbounded() -> Arc<MessageRoom> {
        let mib = Semaphore::MAX_PERMITS;
        Arc::new(MessageRoom {
            free: Arc::new(Semaphore::new(mib)),
            mib,
            spool: None,
        })
    }

    /// Room free now, in octets (for the metrics and tests).
    pub fn free(&self) -> usize {
        self.free.available_permits() * STEP
    }

    /// Grows `held` to at least `bytes` if the room is free now; false if it is not
    /// (then `held` is as it was).
    pub fn try_hold(&self, held: &mut Held, bytes: usize) -> bool {
        let missing = steps(bytes).saturating_sub(steps(held.bytes()));
        if missing == 0 {
            return true;
        }
        let Ok(missing) = u32::try_from(missing) else {
            return false;
        };
        match Arc::clone(&self.free).try_acquire_many_owned(missing) {
            Ok(more) => {
                held.add(more);
                true
            }
            Err(_) => false,
        }
    }

    /// Room for `bytes` (at most all of it), waiting up to `wait` in turn with the other
    /// sessions that wait; `None` if it did not come. The caller holds no room meanwhile.
    pub async fn wait_for(&self, bytes: usize, wait: Duration) -> Option<Held> {
        let want = u32::try_from(steps(bytes).min(self.mib)).unwrap_or(u32::MAX);
        let acquired = tokio::time::timeout(wait, Arc::clone(&self.free).acquire_many_owned(want)).await;
        match acquired {
            Ok(Ok(permit)) => Some(Held { permit: Some(permit) }),
            // The semaphore is never closed.
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// A new spool file for a message that finds no room.
    pub fn spool(&self) -> Result<SpoolFile, SpoolError> {
        match &self.spool {
            Some(spool) => spool.create(),
            None => Err(SpoolError::Full { limit: 0 }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn room_is_taken_by_the_mib_and_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let room = MessageRoom::new(4 << 20, Some(Spool::open(dir.path().to_path_buf(), 1 << 30).unwrap()));
        let mut held = Held::default();
        assert!(room.try_hold(&mut held, 1));
        assert_eq!((held.bytes(), room.free()), (1 << 20, 3 << 20));
        assert!(room.try_hold(&mut held, 3 << 20));
        assert!(!room.try_hold(&mut held, (4 << 20) + 1), "past the total");
        assert_eq!(held.bytes(), 3 << 20);
        let mut other = Held::default();
        assert!(room.try_hold(&mut other, 1 << 20));
        assert!(!room.try_hold(&mut Held::default(), 1));
        drop(held);
        assert_eq!(room.free(), 3 << 20);
        // Waiting: served when room comes back, or not at all within the wait.
        assert!(room.wait_for(4 << 20, Duration::from_millis(20)).await.is_none());
        drop(other);
        let all = room
            .wait_for(64 << 20, Duration::from_millis(20))
            .await
            .expect("all of it");
        assert_eq!((all.bytes(), room.free()), (4 << 20, 0));
    }
}
