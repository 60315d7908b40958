//! Maildir delivery: write into `tmp/`, then rename into `new/`, so that a reader never
//! sees half a message.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The message as stored: a `Return-Path:` header with the envelope sender first.
pub fn with_return_path(mail_from: &str, received: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!("Return-Path: <{mail_from}>\r\n").into_bytes();
    if !received.is_empty() {
        out.extend_from_slice(received.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(data);
    out
}

/// A name unique within this Maildir: time, a per-instance counter and the time's
/// nanoseconds (instances are per session, so two may share a counter value).
fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}.M{}Q{n}.wasmtpd", now.as_secs(), now.subsec_nanos())
}

/// Delivers `message` into the Maildir at `root`, creating it if needed; returns the name.
pub fn deliver(root: &Path, message: &[u8]) -> std::io::Result<String> {
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(root.join(sub))?;
    }
    let name = unique_name();
    let tmp = root.join("tmp").join(&name);
    let mut file = std::fs::File::create_new(&tmp)?;
    file.write_all(message)?;
    file.sync_all()?;
    std::fs::rename(&tmp, root.join("new").join(&name))?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_into_new_via_tmp() {
        let root = std::env::temp_dir().join(format!("store-test-{}", std::process::id()));
        let name = deliver(&root, b"Subject: x\r\n\r\nbody\r\n").unwrap();
        assert_eq!(
            std::fs::read(root.join("new").join(&name)).unwrap(),
            b"Subject: x\r\n\r\nbody\r\n"
        );
        assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
        let other = deliver(&root, b"y").unwrap();
        assert_ne!(name, other);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn return_path_first_then_the_trace() {
        assert_eq!(
            with_return_path("a@b.c", "Received: from x\r\n\tby y", b"X: y\r\n"),
            b"Return-Path: <a@b.c>\r\nReceived: from x\r\n\tby y\r\nX: y\r\n"
        );
        assert_eq!(
            with_return_path("a@b.c", "", b"X: y\r\n"),
            b"Return-Path: <a@b.c>\r\nX: y\r\n"
        );
    }
}
