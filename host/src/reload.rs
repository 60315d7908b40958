//! Watching the configuration file and the plugin files for changes. Editors and
//! `cargo build` write a file several times, so changes are debounced: a reload starts
//! once the files have been quiet for a moment.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::plugin::{Source, catalog};

/// How long the watched files must be quiet before a reload starts.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// A file that keeps changing is reloaded after this long anyway.
const MAX_DEBOUNCE: Duration = Duration::from_secs(2);

pub struct FileWatcher {
    watcher: RecommendedWatcher,
    /// Directories watched: a file is replaced by rename as often as written in place,
    /// so its directory is watched, not the file.
    directories: HashSet<PathBuf>,
    /// Each name watched, and the files whose change it is: a file itself, and the first
    /// link of a file that is a symbolic link into its own directory (several files may
    /// share it: a ConfigMap's, a Secret's certificate and key).
    files: Arc<RwLock<HashMap<PathBuf, Vec<PathBuf>>>>,
    changes: mpsc::UnboundedReceiver<PathBuf>,
}

impl FileWatcher {
    pub fn new() -> anyhow::Result<FileWatcher> {
        let (sender, changes) = mpsc::unbounded_channel();
        let files: Arc<RwLock<HashMap<PathBuf, Vec<PathBuf>>>> = Arc::default();
        let watched = Arc::clone(&files);
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            let files = watched.read().unwrap_or_else(|p| p.into_inner());
            for file in event.paths.iter().filter_map(|p| files.get(p)).flatten() {
                let _ = sender.send(file.clone());
            }
        })
        .context("cannot watch files")?;
        Ok(FileWatcher {
            watcher,
            directories: HashSet::new(),
            files,
            changes,
        })
    }

    /// Watches exactly `files` from now on.
    pub fn watch(&mut self, files: Vec<PathBuf>) {
        let files: HashSet<PathBuf> = files.into_iter().filter_map(|f| std::path::absolute(f).ok()).collect();
        let directories: HashSet<PathBuf> = files.iter().filter_map(|f| f.parent().map(Path::to_path_buf)).collect();
        for gone in self.directories.difference(&directories) {
            let _ = self.watcher.unwatch(gone);
        }
        for new in directories.difference(&self.directories) {
            // A directory that does not exist holds no file to load: loading says so, in
            // its own words, and that is the error to read.
            if !new.is_dir() {
                tracing::debug!("not watching {}: no such directory", new.display());
                continue;
            }
            if let Err(e) = self.watcher.watch(new, RecursiveMode::NonRecursive) {
                tracing::warn!(
                    "cannot watch {} for changes ({e}): changes there need SIGHUP",
                    new.display()
                );
            }
        }
        self.directories = directories;
        let mut names: HashMap<PathBuf, Vec<PathBuf>> = HashMap::new();
        for file in &files {
            for name in watched_names(file) {
                names.entry(name).or_default().push(file.clone());
            }
        }
        *self.files.write().unwrap_or_else(|p| p.into_inner()) = names;
    }

    /// Waits for a change, then for the files to be quiet; returns what changed.
    pub async fn changed(&mut self) -> Vec<PathBuf> {
        let Some(first) = self.changes.recv().await else {
            return std::future::pending().await;
        };
        let mut changed = vec![first];
        let deadline = tokio::time::Instant::now() + MAX_DEBOUNCE;
        while let Ok(Some(path)) = tokio::time::timeout(DEBOUNCE, self.changes.recv()).await {
            if !changed.contains(&path) {
                changed.push(path);
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        changed
    }
}

/// The names in `file`'s directory whose change is a change of `file`: its own, and, if it
/// is a symbolic link into its directory, the first name of the link. Kubernetes mounts a
/// ConfigMap that way (`wasmtpd.toml -> ..data/wasmtpd.toml`) and updates it by swapping
/// `..data`, which the file's own name never hears of.
fn watched_names(file: &Path) -> Vec<PathBuf> {
    let mut names = vec![file.to_path_buf()];
    if let (Ok(target), Some(dir)) = (std::fs::read_link(file), file.parent())
        && target.is_relative()
        && let Some(std::path::Component::Normal(first)) = target.components().next()
        && target.components().count() > 1
    {
        names.push(dir.join(first));
    }
    names
}

/// The files a configuration depends on: the file itself, the plugins loaded from disk and
/// the listeners' certificates and keys.
pub fn files_of(config: &Config, config_path: Option<&Path>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = config_path.map(Path::to_path_buf).into_iter().collect();
    // A renewed certificate is served from the next session on.
    for tls in config.listeners.iter().filter_map(|l| l.tls.as_ref()) {
        for file in [&tls.cert, &tls.key] {
            if !files.contains(file) {
                files.push(file.clone());
            }
        }
    }
    let chains = config
        .listeners
        .iter()
        .map(|l| config.chain_of(l))
        .chain(config.tenants.iter().map(|t| t.plugins.as_slice()));
    for chain in chains {
        for entry in chain {
            if let Ok(spec) = catalog::spec(entry, config)
                && let Source::File(path) = spec.source
                && !files.contains(&path)
            {
                files.push(path);
            }
        }
    }
    files
}
