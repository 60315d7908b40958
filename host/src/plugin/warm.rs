//! The idle instances of a `stateless` plugin (see the WIT), kept for the next call of
//! any session of the chain: making an instance is most of a short call's cost, and for
//! a guest that starts an interpreter (CPython, a JavaScript engine) by far the most.
//!
//! A kept instance is retired, as a worker of a pre-forking server is after so many
//! requests, when it has served [`MAX_CALLS`] calls or its linear memory has grown more
//! than [`MAX_GROWTH`] past its size after its first message, or its 16th call if no
//! message came first (a baseline that includes what handling a message takes: an
//! interpreter's heap, the message's copy). A wasm memory cannot shrink: a guest whose
//! heap crept up (a leak, or an interpreter's fragmentation) would keep that memory for
//! as long as the server runs, and a leak the host cannot see (in the guest's own
//! tables) would go on. Retired, its memory goes back at once; the next call makes a
//! fresh instance.

use std::sync::Mutex;

use super::instance::PluginInstance;

/// Calls a kept instance serves at most.
pub const MAX_CALLS: u32 = 10_000;

/// Growth of a kept instance's linear memory past its baseline (see above) beyond which
/// it is retired.
pub const MAX_GROWTH: usize = 16 << 20;

/// What an instance has been through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wear {
    /// Calls the guest returned from.
    pub calls: u32,
    /// Octets its linear memory grew past its baseline.
    pub grown: usize,
}

impl Wear {
    /// Why it should not serve again, if it should not.
    pub fn retirement(self) -> Option<&'static str> {
        if self.grown > MAX_GROWTH {
            Some("its memory grew")
        } else if self.calls >= MAX_CALLS {
            Some("it served its calls")
        } else {
            None
        }
    }
}

pub struct WarmInstances {
    idle: Mutex<Vec<PluginInstance>>,
    /// Idle instances kept at most; one given back past it is dropped.
    keep: usize,
}

impl WarmInstances {
    /// `keep`: as many as calls may run at once, so that a busy chain rarely makes one.
    pub fn new(keep: usize) -> WarmInstances {
        WarmInstances {
            idle: Mutex::new(Vec::new()),
            keep: keep.max(1),
        }
    }

    /// An idle instance, the one given back last (its memory is the likeliest to be in
    /// the cache), or `None`: the caller makes one.
    pub fn take(&self) -> Option<PluginInstance> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// An instance whose call is over and that may serve again, unless it is worn out.
    pub fn give_back(&self, instance: PluginInstance) {
        let wear = instance.wear();
        if let Some(why) = wear.retirement() {
            // At most once every 10,000 calls, or a sign of a leak worth a line.
            tracing::info!(plugin = %instance.plugin_name(), calls = wear.calls, grown_kib = wear.grown >> 10, "retired a shared instance: {why}");
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.keep {
            idle.push(instance);
        }
        // Past `keep`, the instance is dropped here, outside no lock that matters: its
        // slot goes back to the pool.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_retired_after_its_calls_or_when_its_memory_grew() {
        let wear = |calls, grown| Wear { calls, grown }.retirement();
        assert_eq!(wear(1, 0), None);
        assert_eq!(wear(MAX_CALLS - 1, MAX_GROWTH), None);
        assert_eq!(wear(MAX_CALLS, 0), Some("it served its calls"));
        assert_eq!(wear(2, MAX_GROWTH + 1), Some("its memory grew"));
    }
}
