//! A plugin loaded and checked: compiled (through the cache), linked, its exports found.
//! Which hooks it has is decided here, once, from what the component exports.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use wasmtime::component::{Component, InstancePre};
use wasmtime::{Engine, Store, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::p2::pipe::ClosedInputStream;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::WasmtimeResultExt;
use super::bindings::{
    auth_hook, connect_hook, data_hook, handler, helo_hook, mail_hook, quit_hook, rcpt_hook, rset_hook,
};
use super::engine::PluginEngine;
use super::instance::{Guests, PluginInstance};
use super::output::{Capture, OutputTarget};
use super::pacing::{CallClock, Step};
use super::state::{PluginInfo, PluginState};
use crate::config::DirGrant;

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
    pub grants: Grants,
}

/// The WASI capabilities a plugin is granted beyond stdout, stderr, clocks and random.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    pub dirs: Vec<DirGrant>,
    pub env: BTreeMap<String, String>,
}

/// The export indices of the hook interfaces a plugin has; `None` for those it lacks.
#[derive(Clone)]
pub struct HookIndices {
    pub connect: Option<connect_hook::GuestIndices>,
    pub helo: Option<helo_hook::GuestIndices>,
    pub mail: Option<mail_hook::GuestIndices>,
    pub rcpt: Option<rcpt_hook::GuestIndices>,
    pub data: Option<data_hook::GuestIndices>,
    pub rset: Option<rset_hook::GuestIndices>,
    pub quit: Option<quit_hook::GuestIndices>,
    pub auth: Option<auth_hook::GuestIndices>,
}

pub struct Plugin {
    pub info: Arc<PluginInfo>,
    pub source: Source,
    /// A hash of the component's bytes: which version of the plugin this is.
    pub version: String,
    engine: Engine,
    pre: InstancePre<PluginState>,
    handler: handler::GuestIndices,
    pub hooks: HookIndices,
    pub time_budget: Duration,
    memory_limit: usize,
    pub stdout: OutputTarget,
    grants: Grants,
}

const PACKAGE: &str = "wasmtpd:plugin";
const VERSION: &str = "0.1.0";

/// Finds an exported interface: `Ok(None)` if the component does not export it, an
/// error if it does but not as the contract says.
fn optional<I>(
    pre: &InstancePre<PluginState>,
    interface: &str,
    new: fn(&InstancePre<PluginState>) -> wasmtime::Result<I>,
) -> anyhow::Result<Option<I>> {
    let name = format!("{PACKAGE}/{interface}@{VERSION}");
    if pre.component().get_export_index(None, &name).is_none() {
        return Ok(None);
    }
    Ok(Some(new(pre).anyhow().with_context(|| {
        format!("its export {name} does not match the contract")
    })?))
}

/// A short, stable hash of a component's bytes (FNV-1a, 64 bits), to name its version.
fn content_hash(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

impl Plugin {
    /// Compiles (or takes from the cache), links and checks a plugin; it is instantiated
    /// once here, so that a component that cannot start is refused now, not per session.
    pub async fn load(engine: &PluginEngine, spec: PluginSpec) -> anyhow::Result<Arc<Plugin>> {
        let name = spec.info.name.clone();
        let source = spec.source.clone();
        let context = || format!("plugin {name} ({source})");
        let bytes: Arc<[u8]> = match &spec.source {
            Source::BuiltIn(_, bytes) => Arc::from(*bytes),
            Source::File(path) => {
                let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
                if !bytes.starts_with(b"\0asm") {
                    bail!("{} is not a WebAssembly file", path.display());
                }
                Arc::from(bytes)
            }
        };
        let version = content_hash(&bytes);
        // Compiling takes a while on a cache miss: keep it off the runtime's threads.
        let compile_engine = engine.engine.clone();
        let component = tokio::task::spawn_blocking(move || Component::new(&compile_engine, &bytes))
            .await
            .context("the compiler thread failed")?
            .anyhow()
            .with_context(|| format!("{}: not a valid component", context()))?;
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
        let handler_name = format!("{PACKAGE}/handler@{VERSION}");
        let handler = optional(&pre, "handler", handler::GuestIndices::new)
            .with_context(context)?
            .with_context(|| format!("{}: does not export {handler_name} (process-message)", context()))?;
        let hooks = HookIndices {
            connect: optional(&pre, "connect-hook", connect_hook::GuestIndices::new).with_context(context)?,
            helo: optional(&pre, "helo-hook", helo_hook::GuestIndices::new).with_context(context)?,
            mail: optional(&pre, "mail-hook", mail_hook::GuestIndices::new).with_context(context)?,
            rcpt: optional(&pre, "rcpt-hook", rcpt_hook::GuestIndices::new).with_context(context)?,
            data: optional(&pre, "data-hook", data_hook::GuestIndices::new).with_context(context)?,
            rset: optional(&pre, "rset-hook", rset_hook::GuestIndices::new).with_context(context)?,
            quit: optional(&pre, "quit-hook", quit_hook::GuestIndices::new).with_context(context)?,
            auth: optional(&pre, "auth-hook", auth_hook::GuestIndices::new).with_context(context)?,
        };
        let plugin = Arc::new(Plugin {
            info: Arc::new(spec.info),
            source: spec.source,
            version,
            engine: engine.engine.clone(),
            pre,
            handler,
            hooks,
            time_budget: spec.time_budget,
            memory_limit: spec.memory_limit,
            stdout: spec.stdout,
            grants: spec.grants,
        });
        // Typed exports are checked when loaded into an instance: do it once now.
        plugin
            .instantiate()
            .await
            .with_context(|| format!("{}: cannot start", context()))?;
        Ok(plugin)
    }

    /// The names of the hooks the plugin exports, for the log.
    pub fn hook_names(&self) -> Vec<&'static str> {
        let h = &self.hooks;
        [
            ("connect", h.connect.is_some()),
            ("helo", h.helo.is_some()),
            ("mail", h.mail.is_some()),
            ("rcpt", h.rcpt.is_some()),
            ("data", h.data.is_some()),
            ("rset", h.rset.is_some()),
            ("quit", h.quit.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect()
    }

    /// A fresh instance in a store of its own: its memory cap, and no WASI capability but
    /// stdout/stderr (captured), clocks, random, and what its configuration grants.
    pub async fn instantiate(self: &Arc<Self>) -> anyhow::Result<PluginInstance> {
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
            wasi.preopened_dir(&dir.host, &dir.guest, perms)
                .anyhow()
                .with_context(|| format!("cannot grant directory {}", dir.host.display()))?;
        }
        for (key, value) in &self.grants.env {
            wasi.env(key, value);
        }
        let wasi = wasi.build();
        let state = PluginState {
            info: Arc::clone(&self.info),
            // Start functions run under the same budget as calls.
            clock: CallClock::start(Instant::now(), self.time_budget),
            wasi,
            table: Default::default(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.memory_limit)
                .trap_on_grow_failure(true)
                .build(),
            stdout,
            stderr,
            facts: Arc::default(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        // At every epoch tick a running guest yields or pauses (see `pacing`), so that a
        // plugin that loops shares its thread with other sessions until its budget ends.
        store.epoch_deadline_callback(|mut store| {
            Ok(match store.data_mut().clock.tick(Instant::now()) {
                Step::Interrupt => UpdateDeadline::Interrupt,
                Step::Yield => UpdateDeadline::Yield(1),
                Step::Pause(pause) => UpdateDeadline::YieldCustom(1, Box::pin(tokio::time::sleep(pause))),
            })
        });
        store.set_epoch_deadline(1);
        let instance = self.pre.instantiate_async(&mut store).await?;
        let load = |e: wasmtime::Error| anyhow::Error::from(e);
        let h = &self.hooks;
        let guests = Guests {
            handler: self.handler.load(&mut store, &instance).map_err(load)?,
            connect: h
                .connect
                .as_ref()
                .map(|i| i.load(&mut store, &instance))
                .transpose()
                .map_err(load)?,
            helo: h
                .helo
                .as_ref()
                .map(|i| i.load(&mut store, &instance))
                .transpose()
                .map_err(load)?,
            mail: h
                .mail
                .as_ref()
                .map(|i| i.load(&mut store, &instance))
                .transpose()
                .map_err(load)?,
            rcpt: h
                .rcpt
                .as_ref()
                .map(|i| i.load(&mut store, &instance))
                .transpose()
                .map_err(load)?,
            data: h
                .data
                .as_ref()
                .map(|i| i.load(&mut store, &instance))
                .transpose()
                .map_err(load)?,
            rset: h
                .rset
                .as_ref()
                .map(|i| i.load(&mut store, &instance))
                .transpose()
                .map_err(load)?,
            quit: h
                .quit
                .as_ref()
                .map(|i| i.load(&mut store, &instance))
                .transpose()
                .map_err(load)?,
            auth: h
                .auth
                .as_ref()
                .map(|i| i.load(&mut store, &instance))
                .transpose()
                .map_err(load)?,
        };
        Ok(PluginInstance::new(Arc::clone(self), store, guests))
    }
}
