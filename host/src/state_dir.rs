//! Where wasmtpd keeps state between runs by default (the key-value store, the spool):
//! `$XDG_STATE_HOME/wasmtpd`, else `~/.local/state/wasmtpd`.

use std::path::PathBuf;

/// The default state directory; `None` without `XDG_STATE_HOME` or a home directory.
pub fn default_state_dir() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))?;
    Some(state.join("wasmtpd"))
}
