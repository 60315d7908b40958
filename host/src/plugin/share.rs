//! How much of the runtime one chain's plugin calls may take at once. Calls run on the
//! runtime's threads, interleaved with sessions' I/O (a guest yields at every epoch tick);
//! capping each chain at half the threads keeps a plugin that computes for its whole budget
//! from holding up everyone else.

/// The runtime's threads: one per core.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Plugin calls one chain (tenant) may run at once unless configured: half the threads.
pub fn default_concurrent_calls() -> usize {
    (threads() / 2).max(1)
}
