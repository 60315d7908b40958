//! A plugin loaded and checked: compiled (through the cache), linked, its exports found.
//! Which hooks it has is decided here, once, from what the component exports.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use wasmtime::component::{Component, Instance, InstancePre};
use wasmtime::{CallHook, Engine, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::ClosedInputStream;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::WasiHttpCtx;

use super::bindings::{handler, recipient_handler, stateless};
use super::compile;
use super::component_table::ContentId;
use super::engine::PluginEngine;
use super::epoch::EpochClock;
use super::exports::{HookGuests, HookIndices, find_export, interface_name};
use super::http::HttpHooks;
use super::instance::{PluginInstance, failure};
use super::keyvalue::KvGrant;
use super::memory_cap::MemoryCap;
use super::output::{Capture, OutputTarget};
use super::pacing::{CallClock, Step};
use super::share::TenantShare;
use super::state::{PluginInfo, PluginState};
use crate::config::MessagePart;
use crate::handler::PluginFailure;
use crate::hook::HookKind;

/// Where a plugin's component comes from.
#[derive(Clone, Debug)]
pub enum Source {
    BuiltIn(&'static str, &'static [u8]),
    File(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::BuiltIn(name, _) => write!(f, "built-in {name}"),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Everything needed to load one plugin.
pub struct PluginSpec {
    pub info: PluginInfo,
    pub source: Source,
    pub time_budget: Duration,
    pub memory_limit: usize,
    pub stdout: OutputTarget,
    pub message: MessagePart,
    pub grants: Grants,
}

/// The WASI capabilities a plugin is granted beyond stdout, stderr, clocks and random.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    pub dirs: Vec<GrantedDir>,
    pub env: BTreeMap<String, String>,
}

/// A host directory a plugin may open (a WASI preopen).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantedDir {
    pub host: PathBuf,
    /// Where the plugin sees it, e.g. `/maildir`.
    pub guest: String,
    /// Whether it may create, change and delete files there.
    pub writable: bool,
}

pub struct Plugin {
    pub info: Arc<PluginInfo>,
    pub source: Source,
    /// A hash of the component's bytes: which version of the plugin this is.
    pub version: String,
    /// Its compiled component (the pre-instance holds it too): held here so that the
    /// engine's table keeps it for the other plugins made of the same bytes.
    component: Arc<Component>,
    /// Whether a plugin loaded before it was made of the same bytes, and its compiled
    /// code was taken from that one.
    pub shares_code: bool,
    engine: Engine,
    /// Ticks while one of this plugin's calls has lasted a tick (see [`EpochClock`]).
    pub(super) clock: Arc<EpochClock>,
    pre: InstancePre<PluginState>,
    handler: handler::GuestIndices,
    per_recipient: Option<recipient_handler::GuestIndices>,
    hooks: HookIndices,
    /// The plugin declared that it keeps no state between calls (the WIT's `stateless`):
    /// its instances are shared by its chain's sessions.
    pub stateless: bool,
    pub time_budget: Duration,
    memory_limit: usize,
    pub stdout: OutputTarget,
    /// What of the message `process-message` is handed.
    pub message: MessagePart,
    grants: Grants,
}

impl Plugin {
    /// Compiles (or takes from the cache), links and checks a plugin; it is instantiated
    /// once here, so that a component that cannot start is refused now, not per session.
    pub async fn load(engine: &PluginEngine, spec: PluginSpec) -> anyhow::Result<Arc<Plugin>> {
        let name = spec.info.name.clone();
        let source = spec.source.clone();
        let context = || format!("plugin {name} ({source})");
        // Read and hashed on a blocking thread: a Python or JavaScript component is tens of
        // megabytes, and a reload must not hold up the sessions on the runtime's threads
        // (on a small machine, one).
        let read = spec.source.clone();
        let (bytes, id) = tokio::task::spawn_blocking(move || {
            let bytes: Arc<[u8]> = match &read {
                Source::BuiltIn(_, bytes) => Arc::from(*bytes),
                Source::File(path) => Arc::from(compile::read_component(path)?),
            };
            let id = ContentId::of(&bytes);
            anyhow::Ok((bytes, id))
        })
        .await
        .context("the thread that reads plugins")??;
        let version = id.short();
        let shared = engine.components.get(&id);
        let shares_code = shared.is_some();
        let component = match shared {
            Some(component) => component,
            None => {
                let path = match &spec.source {
                    Source::File(path) => Some(path.as_path()),
                    Source::BuiltIn(..) => None,
                };
                let component = compile::compile(engine, bytes, path)
                    .await
                    .with_context(|| format!("{}: not a valid component", context()))?;
                let component = Arc::new(component);
                engine.components.insert(id, &component);
                component
            }
        };
        let pre = engine
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "{}: imports something wasmtpd does not provide (only WASI and wasmtpd:plugin/host)",
                    context()
                )
            })?;
        let handler = find_export(&pre, "handler", handler::GuestIndices::new)
            .with_context(context)?
            .with_context(|| {
                let name = interface_name("handler");
                format!("{}: does not export {name} (process-message)", context())
            })?;
        let per_recipient =
            find_export(&pre, "recipient-handler", recipient_handler::GuestIndices::new).with_context(context)?;
        let hooks = HookIndices::find(&pre).with_context(context)?;
        let stateless = find_export(&pre, "stateless", stateless::GuestIndices::new).with_context(context)?;
        let mut plugin = Plugin {
            info: Arc::new(spec.info),
            source: spec.source,
            version,
            component: Arc::clone(&component),
            shares_code,
            engine: engine.engine.clone(),
            clock: Arc::clone(&engine.clock),
            pre,
            handler,
            per_recipient,
            hooks,
            stateless: false,
            time_budget: spec.time_budget,
            memory_limit: spec.memory_limit,
            stdout: spec.stdout,
            message: spec.message,
            grants: spec.grants,
        };
        // Typed exports are checked when loaded into an instance: do it once now, and ask
        // the instance whether it keeps state.
        let mut instance = plugin
            .instantiate_in(None, None)
            .await
            .with_context(|| format!("{}: cannot start", context()))?;
        if let Some(indices) = stateless {
            plugin.stateless = instance
                .keeps_no_session_state(&indices, &plugin.clock, plugin.time_budget)
                .await
                .map_err(|failure| anyhow::anyhow!(failure.message))
                .with_context(|| format!("{}: keeps-no-session-state", context()))?;
        }
        Ok(Arc::new(plugin))
    }

    /// Its compiled component.
    pub fn component(&self) -> &Component {
        &self.component
    }

    /// Whether the plugin exports this hook.
    pub fn has_hook(&self, kind: HookKind) -> bool {
        self.hooks.has(kind)
    }

    /// The names of the hooks the plugin exports, for the log.
    pub fn hook_names(&self) -> Vec<&'static str> {
        self.hooks.names()
    }

    /// A fresh instance in a store of its own: its memory cap, and no WASI capability but
    /// stdout/stderr (captured), clocks, random, and what its configuration grants. Its
    /// key-value namespace is `namespace` (its tenant's), or the plugin's own without one.
    /// `share`: the tenant whose CPU time the start functions are charged to.
    pub async fn instantiate(
        self: &Arc<Self>,
        namespace: Option<&Arc<str>>,
        share: &Arc<TenantShare>,
    ) -> Result<PluginInstance, PluginFailure> {
        self.instantiate_in(namespace, Some(share))
            .await
            .map(|instance| instance.into_instance(Arc::clone(self)))
    }

    /// A fresh instance, not yet tied to its plugin's `Arc` (the plugin being loaded has none).
    async fn instantiate_in(
        &self,
        namespace: Option<&Arc<str>>,
        share: Option<&Arc<TenantShare>>,
    ) -> Result<Instantiated, PluginFailure> {
        let stdout = Capture::default();
        let stderr = Capture::default();
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdin(ClosedInputStream)
            .stdout(stdout.clone())
            .stderr(stderr.clone());
        for dir in &self.grants.dirs {
            let perms = if dir.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&dir.host, &dir.guest, perms).map_err(|e| {
                let why = anyhow::Error::from(e).root_cause().to_string();
                PluginFailure::new(
                    crate::handler::PluginError::Other,
                    format!("cannot grant directory {}: {why}", dir.host.display()),
                )
            })?;
        }
        for (key, value) in &self.grants.env {
            wasi.env(key, value);
        }
        let wasi = wasi.build();
        let state = PluginState {
            info: Arc::clone(&self.info),
            // Start functions run under the same budget as calls.
            clock: CallClock::start(Instant::now(), self.time_budget),
            share: share.cloned(),
            wasi,
            table: Default::default(),
            memory: MemoryCap::new(self.memory_limit),
            stdout,
            stderr,
            facts: Arc::default(),
            edits: None,
            kv: self.info.store.as_ref().map(|own| KvGrant {
                namespace: Arc::clone(namespace.unwrap_or(&own.namespace)),
                ..own.clone()
            }),
            http_ctx: WasiHttpCtx::new(),
            http_hooks: HttpHooks {
                info: Arc::clone(&self.info),
                deadline: Instant::now(),
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.memory);
        // At every epoch tick a running guest yields or pauses (see `pacing`), so that a
        // plugin that loops shares its thread with other sessions until its budget ends.
        store.epoch_deadline_callback(|mut store| {
            let state = store.data_mut();
            let now = Instant::now();
            // This runs in a libcall, between the call hook's `CallingHost` and
            // `ReturningFromHost`: the wait in line or the pause is not computing.
            let step = state
                .clock
                .tick(now, state.share.as_ref().and_then(|share| share.cpu.as_ref()));
            if let Some(share) = &state.share {
                share.activity.ticked(state.clock.guest_time(now), now);
            }
            Ok(match step {
                Step::Interrupt => UpdateDeadline::Interrupt,
                // Not `Yield`, whose wake puts the call first in line again (tokio's LIFO
                // slot) before the runtime looks at its sockets: on one worker thread a
                // tenant computing 9 ms a message left another 69 messages a second of
                // 18,000. `yield_now` goes behind the I/O that is ready.
                Step::Yield => UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())),
                Step::Pause(pause) => UpdateDeadline::YieldCustom(1, Box::pin(tokio::time::sleep(pause))),
            })
        });
        // Time in the host is not computing (see `CallClock::host_call_starts`).
        store.call_hook(|mut store, hook| {
            let clock = &mut store.data_mut().clock;
            match hook {
                CallHook::CallingHost => clock.host_call_starts(Instant::now()),
                CallHook::ReturningFromHost => clock.resumes(Instant::now()),
                CallHook::CallingWasm | CallHook::ReturningFromWasm => {}
            }
            Ok(())
        });
        store.set_epoch_deadline(1);
        let budget_ms = self.time_budget.as_millis();
        let running = self.clock.running();
        let instance = match self.pre.instantiate_async(&mut store).await {
            Ok(instance) => instance,
            Err(e) => return Err(failure(e, store.data(), budget_ms)),
        };
        let loaded = self.handler.load(&mut store, &instance).and_then(|handler| {
            let per_recipient = self
                .per_recipient
                .as_ref()
                .map(|i| i.load(&mut store, &instance))
                .transpose()?;
            let hooks = self.hooks.load(&mut store, &instance)?;
            Ok(((handler, per_recipient), hooks))
        });
        drop(running);
        let (handlers, hooks) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => return Err(failure(e, store.data(), budget_ms)),
        };
        Ok(Instantiated {
            store,
            instance,
            handlers,
            hooks,
        })
    }
}

/// An instance before it is tied to its plugin (see [`Plugin::instantiate_in`]).
struct Instantiated {
    store: Store<PluginState>,
    instance: Instance,
    handlers: (handler::Guest, Option<recipient_handler::Guest>),
    hooks: HookGuests,
}

impl Instantiated {
    fn into_instance(self, plugin: Arc<Plugin>) -> PluginInstance {
        PluginInstance::new(plugin, self.store, self.handlers, self.hooks)
    }

    /// The `stateless` export's answer, called under the start budget.
    async fn keeps_no_session_state(
        &mut self,
        indices: &stateless::GuestIndices,
        clock: &Arc<EpochClock>,
        budget: Duration,
    ) -> Result<bool, PluginFailure> {
        let _running = clock.running();
        let result = match indices.load(&mut self.store, &self.instance) {
            Ok(guest) => guest.call_keeps_no_session_state(&mut self.store).await,
            Err(e) => Err(e),
        };
        result.map_err(|e| failure(e, self.store.data(), budget.as_millis()))
    }
}
