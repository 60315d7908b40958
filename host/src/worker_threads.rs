//! How many worker threads the runtime gets. A thread for each core but one: the kernel's
//! network processing (on loopback, in the sender's context), the log and output threads,
//! the epoch clock and the plugin compiler need a core too, and a worker that has to share
//! its core with them is descheduled in the middle of its work. On 2 cores with the load
//! generator beside it, one worker used 16% less CPU a message than two (the two woke each
//! other up 2.5 times a message, to steal work neither had time for) and moved 1.15-1.3x the
//! messages at 10 sessions. `TOKIO_WORKER_THREADS` still decides when it is set.
//!
//! One worker still runs tokio's multi-thread scheduler. Its current-thread scheduler ran
//! 1-4% fewer instructions a message at 1 session (callgrind), no difference measurable
//! in throughput at 10 and 100 sessions, and it runs the server's own future (reloads,
//! signals) on the same thread as the sessions, where the multi-thread one runs it on the
//! main thread beside the worker.

use anyhow::{Context, bail};

/// The environment variable that overrides the choice (tokio's own name for it).
pub const ENV: &str = "TOKIO_WORKER_THREADS";

/// Worker threads for a process that may use `cores` cores (its CPU affinity and cgroup
/// quota, as `std::thread::available_parallelism` sees them), unless `env` (the value of
/// [`ENV`]) names a number.
pub fn worker_threads(cores: usize, env: Option<&str>) -> anyhow::Result<usize> {
    if let Some(value) = env {
        let n: usize = value
            .trim()
            .parse()
            .with_context(|| format!("{ENV}={value:?} is not a number of threads"))?;
        if n == 0 {
            bail!("{ENV}=0: the server needs at least one worker thread");
        }
        return Ok(n);
    }
    Ok(cores.saturating_sub(1).max(1))
}

/// The choice for this process: the number, and a line for the log that says why.
pub fn for_this_process() -> anyhow::Result<(usize, String)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let env = std::env::var(ENV).ok();
    let threads = worker_threads(cores, env.as_deref())?;
    let plural = if threads == 1 { "" } else { "s" };
    let why = match env {
        Some(_) => format!("{threads} worker thread{plural}, as {ENV} says ({cores} usable cores)"),
        None => format!("{threads} worker thread{plural} for {cores} usable cores ({ENV} sets another number)"),
    };
    Ok((threads, why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_core_is_left_to_the_rest_of_the_machine() {
        assert_eq!(worker_threads(1, None).unwrap(), 1);
        assert_eq!(worker_threads(2, None).unwrap(), 1);
        assert_eq!(worker_threads(4, None).unwrap(), 3);
        assert_eq!(worker_threads(64, None).unwrap(), 63);
    }

    #[test]
    fn the_environment_decides_when_set() {
        assert_eq!(worker_threads(2, Some("2")).unwrap(), 2);
        assert_eq!(worker_threads(64, Some(" 4 ")).unwrap(), 4);
        let zero = worker_threads(2, Some("0")).unwrap_err().to_string();
        assert!(zero.contains("at least one"), "{zero}");
        let word = worker_threads(2, Some("many")).unwrap_err().to_string();
        assert!(word.contains("TOKIO_WORKER_THREADS=\"many\""), "{word}");
    }
}
