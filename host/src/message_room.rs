//! Room for message data in memory, server-wide (`[limits] max_message_memory`): a session
//! takes room as its message comes in and gives it back when the transaction ends. A
//! message that finds no room goes to a spool file as it comes in, and waits for room
//! before its handlers are called (they take it in memory). A session never waits for room
//! while it holds some, so sessions cannot hold each other up for good. Spool files are
//! removed when their transaction ends, and those a crashed process left at the next start.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Room is taken a MiB at a time: fewer trips to the semaphore.
const STEP: usize = 1 << 20;

pub struct MessageRoom {
    /// Free room, in MiB.
    free: Arc<Semaphore>,
    total: usize,
    spool_dir: PathBuf,
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
    /// `total` octets of room (at least one MiB), and where messages without room go.
    pub fn new(total: usize, spool_dir: PathBuf) -> Arc<MessageRoom> {
        let mib = steps(total).clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(MessageRoom {
            free: Arc::new(Semaphore::new(mib)),
            total: mib * STEP,
            spool_dir,
        })
    }

    /// The default spool directory: `$TMPDIR/wasmtpd-spool`.
    pub fn default_spool_dir() -> PathBuf {
        std::env::temp_dir().join("wasmtpd-spool")
    }

    pub fn total(&self) -> usize {
        self.total
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
        let want = u32::try_from(steps(bytes).min(steps(self.total))).unwrap_or(u32::MAX);
        let acquired = tokio::time::timeout(wait, Arc::clone(&self.free).acquire_many_owned(want)).await;
        match acquired {
            Ok(Ok(permit)) => Some(Held { permit: Some(permit) }),
            // The semaphore is never closed.
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// A new spool file, removed when dropped; its name carries this process's id, so
    /// that [`MessageRoom::clean_spool`] can tell a crashed process's files.
    pub fn spool(&self) -> std::io::Result<SpoolFile> {
        std::fs::create_dir_all(&self.spool_dir)?;
        let file = tempfile::Builder::new()
            .prefix(&format!("wasmtpd-{}-", std::process::id()))
            .suffix(".msg")
            .tempfile_in(&self.spool_dir)?;
        Ok(SpoolFile { file, len: 0 })
    }

    /// Removes the spool files of processes that are gone (a crash leaves them); the
    /// number removed.
    pub fn clean_spool(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.spool_dir) else {
            return 0;
        };
        entries
            .flatten()
            .filter(|entry| spool_owner(&entry.file_name().to_string_lossy()).is_some_and(|pid| !is_running(pid)))
            .filter(|entry| std::fs::remove_file(entry.path()).is_ok())
            .count()
    }
}

/// The process id in a spool file's name (`wasmtpd-PID-XXXXXX.msg`).
fn spool_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("wasmtpd-")?.strip_suffix(".msg")?;
    rest.split('-').next()?.parse().ok()
}

/// Whether a process of that id runs (Linux's /proc; elsewhere assumed so, and its files
/// stay).
fn is_running(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.exists() || proc.join(pid.to_string()).exists()
}

/// A message on disk while it comes in.
pub struct SpoolFile {
    file: tempfile::NamedTempFile,
    len: usize,
}

impl SpoolFile {
    /// Appends `octets`. A spooled message is written in pieces of a few hundred KiB, to
    /// the page cache: a short blocking write, done on a blocking thread all the same.
    pub async fn append(&mut self, octets: Vec<u8>) -> std::io::Result<Vec<u8>> {
        let mut file = self.file.as_file().try_clone()?;
        let len = octets.len();
        let octets = tokio::task::spawn_blocking(move || file.write_all(&octets).map(|()| octets))
            .await
            .map_err(std::io::Error::other)??;
        self.len += len;
        Ok(octets)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole message, read back; the file goes when `self` is dropped.
    pub async fn read_all(&self) -> std::io::Result<Vec<u8>> {
        tokio::fs::read(self.file.path()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn room_is_taken_by_the_mib_and_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let room = MessageRoom::new(4 << 20, dir.path().to_path_buf());
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

    #[tokio::test]
    async fn a_spool_file_holds_the_message_and_goes_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let room = MessageRoom::new(1 << 20, dir.path().to_path_buf());
        let mut spool = room.spool().unwrap();
        spool.append(b"Subject: x\r\n".to_vec()).await.unwrap();
        spool.append(b"\r\nbody\r\n".to_vec()).await.unwrap();
        assert_eq!(spool.len(), 20);
        assert_eq!(spool.read_all().await.unwrap(), b"Subject: x\r\n\r\nbody\r\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        drop(spool);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn files_of_processes_that_are_gone_are_cleaned_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let room = MessageRoom::new(1 << 20, dir.path().to_path_buf());
        let live = room.spool().unwrap();
        // No process has id 4194305 (above Linux's largest).
        std::fs::write(dir.path().join("wasmtpd-4194305-abc.msg"), b"left by a crash").unwrap();
        std::fs::write(dir.path().join("other-file"), b"not ours").unwrap();
        assert_eq!(room.clean_spool(), 1);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.contains(&"other-file".to_owned()));
        drop(live);
    }
}
