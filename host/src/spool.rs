//! The spool: files that hold messages which found no room in memory while they come in.
//! The directory is private to the server (mode 0700), its files together are capped
//! (`[limits] max_spool_bytes`), and each file is locked while its transaction lasts and
//! removed when it ends. Files nobody holds a lock on were left by a process that ended
//! without removing them (a crash): they are removed at the next start.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Spool file names start so: the cleaning at start touches no other file.
const PREFIX: &str = "wasmtpd-";
const SUFFIX: &str = ".msg";

/// Why a message cannot be spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool is full ({limit} octets in all)")]
    Full { limit: u64 },
    #[error("spool {dir}: {source}")]
    Io { dir: PathBuf, source: std::io::Error },
}

pub struct Spool {
    dir: PathBuf,
    limit: u64,
    /// Octets in the spool's files now.
    used: Arc<AtomicU64>,
}

impl Spool {
    /// The directories tried when none is configured, in order: `spool` in the state
    /// directory, then `$TMPDIR/wasmtpd-spool`.
    pub fn default_dirs() -> Vec<PathBuf> {
        let state = crate::state_dir::default_state_dir().map(|state| state.join("spool"));
        state
            .into_iter()
            .chain([std::env::temp_dir().join("wasmtpd-spool")])
            .collect()
    }

    /// A spool in `dir` of at most `limit` octets. The directory is made private if it
    /// is new, and refused if other users may write to it (one could swap a message).
    pub fn open(dir: PathBuf, limit: u64) -> Result<Spool, SpoolError> {
        let io = |source| SpoolError::Io {
            dir: dir.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io)?;
        let mode = std::fs::metadata(&dir).map_err(io)?.permissions().mode();
        if mode & 0o022 != 0 {
            let open = std::io::Error::other(format!(
                "other users may write to it (mode {:o}): make it 0700",
                mode & 0o777
            ));
            return Err(io(open));
        }
        // A directory that is there but not ours to write in fails now, not at the first
        // message that needs it.
        tempfile::tempfile_in(&dir).map_err(io)?;
        Ok(Spool {
            dir,
            limit,
            used: Arc::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new spool file, locked, removed when dropped.
    pub fn create(&self) -> Result<SpoolFile, SpoolError> {
        let io = |source| SpoolError::Io {
            dir: self.dir.clone(),
            source,
        };
        let file = tempfile::Builder::new()
            .prefix(PREFIX)
            .suffix(SUFFIX)
            .tempfile_in(&self.dir)
            .map_err(io)?;
        file.as_file().lock().map_err(io)?;
        Ok(SpoolFile {
            file,
            len: 0,
            limit: self.limit,
            used: Arc::clone(&self.used),
            dir: self.dir.clone(),
        })
    }

    /// Removes the spool files nobody holds a lock on (their process is gone); the
    /// number removed. Run at start, before any session.
    pub fn clean(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with(PREFIX) && name.ends_with(SUFFIX)) {
                continue;
            }
            let path = entry.path();
            let stale = File::options()
                .write(true)
                .open(&path)
                .is_ok_and(|f| f.try_lock().is_ok());
            if stale {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) => tracing::warn!("cannot remove the stale spool file {}: {e}", path.display()),
                }
            }
        }
        removed
    }
}

/// A message on disk while it comes in.
pub struct SpoolFile {
    file: tempfile::NamedTempFile,
    len: u64,
    limit: u64,
    used: Arc<AtomicU64>,
    dir: PathBuf,
}

impl SpoolFile {
    /// Appends `octets` (handed back, for reuse), within the spool's limit. Written on a
    /// blocking thread: pieces of a few hundred KiB, to the page cache.
    pub async fn append(&mut self, octets: Vec<u8>) -> Result<Vec<u8>, SpoolError> {
        let len = octets.len() as u64;
        let before = self.used.fetch_add(len, Ordering::Relaxed);
        if before + len > self.limit {
            self.used.fetch_sub(len, Ordering::Relaxed);
            return Err(SpoolError::Full { limit: self.limit });
        }
        self.len += len;
        let mut file = self.file.as_file().try_clone().map_err(|e| self.io(e))?;
        let written = tokio::task::spawn_blocking(move || file.write_all(&octets).map(|()| octets)).await;
        written
            .map_err(std::io::Error::other)
            .and_then(|w| w)
            .map_err(|e| self.io(e))
    }

    /// Octets written so far.
    pub fn octets(&self) -> u64 {
        self.len
    }

    /// The whole message, read back through the file this process holds open (not by
    /// its name); the file goes when `self` is dropped.
    pub async fn read_all(&self) -> Result<Vec<u8>, SpoolError> {
        let mut file = self.file.as_file().try_clone().map_err(|e| self.io(e))?;
        let capacity = usize::try_from(self.len).unwrap_or(0);
        let read = tokio::task::spawn_blocking(move || {
            file.seek(SeekFrom::Start(0))?;
            let mut body = Vec::with_capacity(capacity);
            file.read_to_end(&mut body).map(|_| body)
        })
        .await;
        read.map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(|e| self.io(e))
    }

    fn io(&self, source: std::io::Error) -> SpoolError {
        SpoolError::Io {
            dir: self.dir.clone(),
            source,
        }
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        self.used.fetch_sub(self.len, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_in(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[tokio::test]
    async fn a_spool_file_holds_the_message_within_the_limit_and_goes_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path().join("spool"), 30).unwrap();
        let mode = std::fs::metadata(spool.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let mut file = spool.create().unwrap();
        file.append(b"Subject: x\r\n".to_vec()).await.unwrap();
        file.append(b"\r\nbody\r\n".to_vec()).await.unwrap();
        assert_eq!(file.octets(), 20);
        assert_eq!(file.read_all().await.unwrap(), b"Subject: x\r\n\r\nbody\r\n");
        // The spool holds 30 octets in all files together.
        let mut other = spool.create().unwrap();
        assert!(matches!(
            other.append(vec![b'x'; 11]).await,
            Err(SpoolError::Full { limit: 30 })
        ));
        other.append(vec![b'x'; 10]).await.unwrap();
        assert_eq!(files_in(spool.dir()), 2);
        drop(file);
        other.append(vec![b'x'; 20]).await.unwrap();
        drop(other);
        assert_eq!(files_in(spool.dir()), 0);
    }

    #[test]
    fn files_nobody_holds_are_cleaned_at_start_and_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path().to_path_buf(), 1 << 20).unwrap();
        let live = spool.create().unwrap();
        std::fs::write(dir.path().join("wasmtpd-left-by-a-crash.msg"), b"half a message").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"not the spool's").unwrap();
        assert_eq!(spool.clean(), 1);
        assert_eq!(files_in(dir.path()), 2);
        assert!(dir.path().join("notes.txt").exists());
        drop(live);
    }

    #[test]
    fn a_directory_others_may_write_to_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let refused = Spool::open(open, 1).err().expect("refused");
        assert!(refused.to_string().contains("mode 777"), "{refused}");
    }
}
