//! The threads plugins run on: a runtime of their own, so that a plugin that computes for
//! its whole time budget never holds up a thread that serves sessions' I/O. Guests yield
//! at every epoch tick, so the plugin calls on these threads share them too.

use std::future::Future;
use std::sync::OnceLock;

use anyhow::anyhow;
use tokio::runtime::{Handle, Runtime};

/// The plugin threads: one per core.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Plugin calls one tenant may run at once unless configured: half the threads, so that
/// a tenant whose plugin computes for its whole budget leaves the others room.
pub fn default_concurrent_calls() -> usize {
    (threads() / 2).max(1)
}

fn runtime() -> &'static Runtime {
    // Lives as long as the process: a runtime may not be dropped inside another one.
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads())
            .thread_name("wasmtpd-plugin")
            .enable_all()
            .build()
            .expect("cannot start the plugin threads")
    })
}

pub fn handle() -> &'static Handle {
    runtime().handle()
}

/// Runs `future` on the plugin threads and waits for it.
pub async fn run<F, T>(future: F) -> anyhow::Result<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    handle()
        .spawn(future)
        .await
        .map_err(|e| anyhow!("plugin task failed: {e}"))
}
