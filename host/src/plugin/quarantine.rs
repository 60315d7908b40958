//! Quarantine: a message a plugin set aside is written, whole and with the edits made so
//! far, into a Maildir (`tmp/`, then renamed into `new/`, so that a reader never sees half
//! a file). Fields before it say who quarantined it and why, and keep its envelope (the
//! sender, every recipient, Bcc ones too) and its trace, so that it can be released.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use wasmtpd_protocol::header::Field;

use crate::handler::Message;

/// Writes `message` into the Maildir at `dir` (made if missing); returns the file's path.
pub async fn store(dir: &Path, plugin: &str, reason: &str, message: &Message) -> anyhow::Result<PathBuf> {
    let dir = dir.to_owned();
    let mut contents = label(plugin, reason);
    contents.extend_from_slice(&envelope(message));
    contents.extend_from_slice(&message.data);
    tokio::task::spawn_blocking(move || write(&dir, &contents))
        .await
        .context("the writing thread failed")?
}

/// `X-Wasmtpd-Quarantine: by PLUGIN: REASON`, CRLF-ended; a reason that is not a safe
/// field value is left out, never written as it is.
fn label(plugin: &str, reason: &str) -> Vec<u8> {
    let field = Field::new("X-Wasmtpd-Quarantine", &format!("by {plugin}: {reason}"))
        .or_else(|_| Field::new("X-Wasmtpd-Quarantine", &format!("by {plugin}")))
        .map(|f| f.raw().to_vec())
        .unwrap_or_default();
    let mut out = field;
    if !out.is_empty() {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `Return-Path:`, an `X-Wasmtpd-Envelope-To:` for each recipient, the trace: all CRLF-ended
/// (the addresses were checked as paths, the trace is the host's own).
fn envelope(message: &Message) -> Vec<u8> {
    let from = message.mail_from.as_ref().map_or("", |a| a.as_str());
    let mut out = format!("Return-Path: <{from}>\r\n");
    for rcpt in &message.rcpt_to {
        out.push_str(&format!("X-Wasmtpd-Envelope-To: <{}>\r\n", rcpt.as_str()));
    }
    out.push_str(&message.received);
    out.push_str("\r\n");
    out.into_bytes()
}

fn write(dir: &Path, contents: &[u8]) -> anyhow::Result<PathBuf> {
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(dir.join(sub)).with_context(|| format!("cannot make {}", dir.join(sub).display()))?;
    }
    let name = unique_name();
    let tmp = dir.join("tmp").join(&name);
    let new = dir.join("new").join(&name);
    let mut file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &new).with_context(|| format!("cannot move {} into new/", tmp.display()))?;
    Ok(new)
}

/// `SECONDS.MICROS_P<pid>_Q<n>.wasmtpd`: unique within this process and across processes.
fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.M{}P{}Q{n}.wasmtpd",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_label_never_injects_lines() {
        assert_eq!(
            label("filter", "spam score 12"),
            b"X-Wasmtpd-Quarantine: by filter: spam score 12\r\n"
        );
        assert_eq!(
            label("filter", "x\r\nBcc: victim@example.com"),
            b"X-Wasmtpd-Quarantine: by filter\r\n"
        );
    }

    #[test]
    fn names_are_unique() {
        assert_ne!(unique_name(), unique_name());
    }
}
