//! The idle instances of a `stateless` plugin (see the WIT), kept for the next call of
//! any session of the chain: making an instance is most of a short call's cost, and for
//! a guest that starts an interpreter (CPython, a JavaScript engine) by far the most.

use std::sync::Mutex;

use super::instance::PluginInstance;

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

    /// An instance whose call is over and that may serve again.
    pub fn give_back(&self, instance: PluginInstance) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.keep {
            idle.push(instance);
        }
        // Past `keep`, the instance is dropped here, outside no lock that matters: its
        // slot goes back to the pool.
    }
}
