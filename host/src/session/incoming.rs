//! A message as it comes in, by DATA or BDAT: in memory while the server-wide room allows,
//! else in a spool file; and at its end, in memory with room held for it and the plugins'
//! copies, or nowhere if no room came within the data timeout (the client is answered
//! `452 4.3.1`).

use std::sync::Arc;
use std::time::Duration;

use crate::message_room::{Held, MessageRoom};
use crate::spool::{SpoolError, SpoolFile};

/// A spooling message is written out in pieces of this size.
const SPOOL_PIECE: usize = 256 * 1024;

pub(super) struct Incoming {
    room: Arc<MessageRoom>,
    /// The message so far, or (spooling) what is not written out yet.
    body: Vec<u8>,
    held: Held,
    spool: Option<SpoolFile>,
    /// The spool failed: the rest of the message is read and dropped, then deferred.
    failed: Option<SpoolError>,
}

/// Why a message could not be kept.
#[derive(Debug, thiserror::Error)]
pub(super) enum NoRoom {
    #[error("no room for it in memory within {0:?}")]
    Memory(Duration),
    #[error("it could not be spooled: {0}")]
    Spool(SpoolError),
}

impl Incoming {
    /// Room is taken for up to `size_hint` octets if it is free now.
    pub fn new(room: Arc<MessageRoom>, size_hint: usize) -> Incoming {
        let mut held = Held::default();
        let capacity = if room.try_hold(&mut held, size_hint) {
            size_hint
        } else {
            0
        };
        Incoming {
            room,
            body: Vec::with_capacity(capacity),
            held,
            spool: None,
            failed: None,
        }
    }

    /// Where the receiver appends the message; [`Incoming::settle`] after each append.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.body
    }

    /// After an append: the body stays in the room it holds, or grows it, or goes to
    /// the spool when there is no room (its memory given back), as does all that follows.
    /// A spool that cannot be written is remembered for [`Incoming::finish`].
    pub async fn settle(&mut self) {
        if self.failed.is_some() {
            self.body.clear();
            return;
        }
        if let Err(e) = self.keep().await {
            tracing::warn!("cannot spool a message that finds no room in memory: {e}");
            self.failed = Some(e);
            self.body = Vec::new();
            self.held = Held::default();
            self.spool = None;
        }
    }

    async fn keep(&mut self) -> Result<(), SpoolError> {
        if let Some(spool) = &mut self.spool {
            if self.body.len() >= SPOOL_PIECE {
                self.body = spool.append(std::mem::take(&mut self.body)).await?;
                self.body.clear();
            }
            return Ok(());
        }
        if self.room.try_hold(&mut self.held, self.body.capacity()) {
            return Ok(());
        }
        tracing::info!(
            size = self.body.len(),
            "no room in memory for a message coming in: spooling it"
        );
        let mut spool = self.room.spool()?;
        spool.append(std::mem::take(&mut self.body)).await?;
        self.body = Vec::with_capacity(SPOOL_PIECE);
        self.held = Held::default();
        self.spool = Some(spool);
        Ok(())
    }

    /// The message in memory, with room held for it and `copies` more of it (the
    /// plugins' copies) until the returned [`Held`] is dropped; waiting for the room up
    /// to `wait`.
    pub async fn finish(mut self, copies: usize, wait: Duration) -> Result<(Vec<u8>, Held), NoRoom> {
        if let Some(e) = self.failed.take() {
            return Err(NoRoom::Spool(e));
        }
        let spooled = self.spool.as_ref().map_or(0, SpoolFile::octets);
        let size = usize::try_from(spooled)
            .unwrap_or(usize::MAX)
            .saturating_add(self.body.len());
        let need = size.saturating_mul(copies + 1);
        if self.spool.is_none() && self.room.try_hold(&mut self.held, need.max(self.body.capacity())) {
            return Ok((self.body, self.held));
        }
        // Not all of it free now: the message waits on disk, holding no room, so that
        // sessions waiting for room never hold any.
        let mut spool = match self.spool.take() {
            Some(spool) => spool,
            None => self.room.spool().map_err(NoRoom::Spool)?,
        };
        spool
            .append(std::mem::take(&mut self.body))
            .await
            .map_err(NoRoom::Spool)?;
        drop(std::mem::take(&mut self.held));
        let held = self.room.wait_for(need, wait).await.ok_or(NoRoom::Memory(wait))?;
        let body = spool.read_all().await.map_err(NoRoom::Spool)?;
        Ok((body, held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(30);

    fn room(total: usize) -> (Arc<MessageRoom>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let spool = crate::spool::Spool::open(dir.path().to_path_buf(), 1 << 30).unwrap();
        (MessageRoom::new(total, Some(spool)), dir)
    }

    fn spooled(dir: &tempfile::TempDir) -> usize {
        std::fs::read_dir(dir.path()).map_or(0, |d| d.count())
    }

    async fn receive(incoming: &mut Incoming, octets: usize) {
        for _ in 0..octets / 4096 {
            incoming.buffer().extend_from_slice(&[b'x'; 4096]);
            incoming.settle().await;
        }
    }

    #[tokio::test]
    async fn a_message_with_room_stays_in_memory_and_holds_room_for_its_copies() {
        let (room, dir) = room(8 << 20);
        let mut incoming = Incoming::new(Arc::clone(&room), 0);
        receive(&mut incoming, 1 << 20).await;
        assert_eq!(spooled(&dir), 0);
        let (body, held) = incoming.finish(1, WAIT).await.unwrap();
        assert_eq!(body.len(), 1 << 20);
        assert!(held.bytes() >= 2 << 20);
        drop(held);
        assert_eq!(room.free(), 8 << 20);
    }

    #[tokio::test]
    async fn without_room_a_message_is_spooled_then_waits_for_room() {
        let (room, dir) = room(4 << 20);
        // Another session holds most of the room.
        let mut other = Held::default();
        assert!(room.try_hold(&mut other, 3 << 20));
        let mut incoming = Incoming::new(Arc::clone(&room), 0);
        receive(&mut incoming, 3 << 20).await;
        assert_eq!(spooled(&dir), 1, "spooled once the room ran out");
        assert_eq!(room.free(), 1 << 20, "a spooling message holds no room");
        let finishing = tokio::spawn(incoming.finish(0, WAIT));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!finishing.is_finished(), "waits for room");
        drop(other);
        let (body, held) = finishing.await.unwrap().unwrap();
        assert_eq!(body.len(), 3 << 20);
        assert!(body.iter().all(|&b| b == b'x'));
        assert_eq!(held.bytes(), 3 << 20);
        assert_eq!(spooled(&dir), 0, "the spool file is gone");
    }

    #[tokio::test(start_paused = true)]
    async fn room_that_does_not_come_is_no_room_and_the_file_goes() {
        let (room, dir) = room(2 << 20);
        let mut other = Held::default();
        assert!(room.try_hold(&mut other, 2 << 20));
        let mut incoming = Incoming::new(Arc::clone(&room), 0);
        receive(&mut incoming, 1 << 20).await;
        assert!(matches!(incoming.finish(0, WAIT).await, Err(NoRoom::Memory(_))));
        assert_eq!(spooled(&dir), 0);
    }
}
