//! How much of the runtime one chain's plugin calls may take at once. Calls run on the
//! runtime's threads, interleaved with sessions' I/O (a guest yields at every epoch tick);
//! capping each chain at half the threads keeps a plugin that computes for its whole budget
//! from holding up everyone else.

/// The runtime's worker threads (see [`crate::worker_threads`]), asked of the runtime
/// itself, so that both are right.
pub fn threads() -> usize {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime.metrics().num_workers(),
        Err(_) => std::thread::available_parallelism().map_or(2, |n| n.get()),
    }
}

/// Plugin calls one chain (tenant) may run at once unless configured: half the threads.
pub fn default_concurrent_calls() -> usize {
    (threads() / 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_follows_the_runtimes_worker_count() {
        for workers in [1, 2, 4, 6] {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .build()
                .unwrap();
            let (threads, calls) = runtime.block_on(async { (threads(), default_concurrent_calls()) });
            assert_eq!(threads, workers);
            assert_eq!(calls, (workers / 2).max(1));
        }
    }
}
