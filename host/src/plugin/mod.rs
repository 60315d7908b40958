//! The WebAssembly plugin runtime: one engine, plugins compiled once (and cached) and
//! pre-instantiated, an instance per plugin per session (or shared between sessions for a
//! plugin that keeps no state), every call under a time budget
//! and every instance under a memory cap.

pub mod bindings;
pub mod breaker;
pub mod builtin;
pub mod catalog;
pub mod chain;
pub mod compile;
pub mod component;
pub mod component_table;
pub mod cpu_budget;
pub mod edits;
pub mod engine;
pub mod epoch;
pub mod exports;
pub mod http;
pub mod inspect;
pub mod instance;
pub mod keyvalue;
pub mod memory_cap;
pub mod output;
pub mod pacing;
pub mod quarantine;
pub mod recipients;
pub mod router;
pub mod share;
pub mod state;
pub mod warm;

pub use chain::PluginChain;
pub use component::{Plugin, PluginSpec, Source};
pub use engine::{EngineOptions, PluginEngine};
pub use output::OutputTarget;

/// wasmtime has an error type of its own; the host's are `anyhow` errors.
trait WasmtimeResultExt<T> {
    fn anyhow(self) -> anyhow::Result<T>;
}

impl<T> WasmtimeResultExt<T> for wasmtime::Result<T> {
    fn anyhow(self) -> anyhow::Result<T> {
        self.map_err(anyhow::Error::from)
    }
}
