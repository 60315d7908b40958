//! From the names in a chain to loaded plugins: a `[plugin.NAME]` table, a built-in
//! plugin, or a `.wasm` file; each loaded once however many chains name it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::builtin;
use super::component::{GrantedDir, Grants, Plugin, PluginSpec, Source};
use super::engine::PluginEngine;
use super::http::HttpGrant;
use super::keyvalue::KvGrant;
use super::output::OutputTarget;
use super::state::PluginInfo;
use crate::config::{Config, MessagePart, PluginConfig, PluginStdout};
use crate::upstream_tls::UpstreamTls;
use crate::{dns, kv};

/// What a chain entry names, resolved against the configuration.
pub fn spec(entry: &str, config: &Config) -> anyhow::Result<PluginSpec> {
    let table = config.plugins.get(entry);
    let plugin_config = table.cloned().unwrap_or_default();
    let source_text = plugin_config.source.clone().unwrap_or_else(|| entry.to_owned());
    let source = resolve(&source_text, table.and(config.base_dir.as_deref()))?;
    let name = match (&source, table) {
        (Source::File(path), None) => path
            .file_stem()
            .map_or(entry.to_owned(), |s| s.to_string_lossy().into_owned()),
        _ => entry.to_owned(),
    };
    let default_stdout = match source {
        Source::BuiltIn("debug-printer", _) => OutputTarget::Stdout,
        _ => OutputTarget::Log,
    };
    // The built-ins that never read the message are not handed it.
    let default_message = match source {
        Source::BuiltIn("sink" | "greylist", _) => MessagePart::None,
        _ => MessagePart::Whole,
    };
    spec_from(name, source, &plugin_config, config, (default_stdout, default_message))
}

/// The plugin in the file at `path`, as a `[plugin.NAME]` table with its `source`,
/// `memory_mib` and `time_budget_ms` and nothing granted would load it (`wasmtpd check`).
pub fn file_spec(path: &Path, memory_mib: u64, time_budget_ms: u64, config: &Config) -> anyhow::Result<PluginSpec> {
    let table = PluginConfig {
        memory_mib,
        time_budget_ms,
        ..PluginConfig::default()
    };
    let name = path
        .file_stem()
        .map_or_else(|| "plugin".to_owned(), |s| s.to_string_lossy().into_owned());
    let source = Source::File(path.to_owned());
    spec_from(name, source, &table, config, (OutputTarget::Log, MessagePart::Whole))
}

fn spec_from(
    name: String,
    source: Source,
    config: &PluginConfig,
    server: &Config,
    (default_stdout, default_message): (OutputTarget, MessagePart),
) -> anyhow::Result<PluginSpec> {
    let hostname = &server.hostname;
    let dns = match config.dns {
        true => Some(dns::shared(&server.dns).with_context(|| format!("plugin {name}: dns"))?),
        false => None,
    };
    let store = match config.store {
        true => Some(KvGrant {
            store: kv::shared(&server.store).with_context(|| format!("plugin {name}"))?,
            namespace: format!("plugin:{name}").into(),
            limits: server.store.limits(),
        }),
        false => None,
    };
    let http = (!config.http.is_empty()).then(|| HttpGrant {
        allowed: config.http.clone().into(),
        timeout: Duration::from_millis(server.http.timeout_ms),
        max_response_bytes: server.http.max_response_bytes,
    });
    let relay_tls = UpstreamTls::load(config.relay_tls, config.relay_ca.as_deref())
        .with_context(|| format!("plugin {name}: relay_tls"))?;
    Ok(PluginSpec {
        info: PluginInfo {
            name,
            settings: config.settings_as_text(),
            relay_allowed: config.relay.clone(),
            relay_tls,
            dns,
            store,
            http,
            hostname: hostname.to_owned(),
        },
        source,
        time_budget: Duration::from_millis(config.time_budget_ms),
        memory_limit: usize::try_from(config.memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
        stdout: match config.stdout {
            Some(PluginStdout::Stdout) => OutputTarget::Stdout,
            Some(PluginStdout::Log) => OutputTarget::Log,
            None => default_stdout,
        },
        message: config.message.unwrap_or(default_message),
        grants: Grants {
            dirs: config
                .dirs
                .iter()
                .map(|d| GrantedDir {
                    host: d.host.clone(),
                    guest: d.guest.clone(),
                    writable: d.writable,
                })
                .collect(),
            env: config.env.clone(),
        },
    })
}

/// A built-in plugin's name, or a path to a component (relative paths from `base_dir`,
/// the configuration file's directory, when given).
fn resolve(source: &str, base_dir: Option<&Path>) -> anyhow::Result<Source> {
    if let Some((name, bytes)) = builtin::BUILT_IN.iter().find(|(n, _)| *n == source) {
        return Ok(Source::BuiltIn(name, bytes));
    }
    if source.ends_with(".wasm") || source.contains('/') {
        let path = PathBuf::from(source);
        let path = match base_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path,
        };
        return Ok(Source::File(path));
    }
    bail!(
        "unknown plugin {source:?}: not a [plugin.{source}] table, not built in ({}), not a path to a .wasm component",
        builtin::names().join(", ")
    )
}

/// The chains of a configuration, loaded: each plugin once however many chains name it.
pub struct Chains {
    /// The listeners' chains, in the configuration's order.
    pub listeners: Vec<Vec<Arc<Plugin>>>,
    /// The tenants' chains, in the configuration's order.
    pub tenants: Vec<Vec<Arc<Plugin>>>,
}

/// Loads every plugin the listeners' and tenants' chains name.
pub async fn load_chains(engine: &PluginEngine, config: &Config) -> anyhow::Result<Chains> {
    let mut loaded: HashMap<String, Arc<Plugin>> = HashMap::new();
    let mut chains = Chains {
        listeners: Vec::new(),
        tenants: Vec::new(),
    };
    for listener in &config.listeners {
        chains
            .listeners
            .push(load_chain(engine, config, config.chain_of(listener), &mut loaded).await?);
    }
    for tenant in &config.tenants {
        chains
            .tenants
            .push(load_chain(engine, config, &tenant.plugins, &mut loaded).await?);
    }
    Ok(chains)
}

async fn load_chain(
    engine: &PluginEngine,
    config: &Config,
    entries: &[String],
    loaded: &mut HashMap<String, Arc<Plugin>>,
) -> anyhow::Result<Vec<Arc<Plugin>>> {
    let mut chain = Vec::new();
    for entry in entries {
        if let Some(plugin) = loaded.get(entry) {
            chain.push(Arc::clone(plugin));
            continue;
        }
        let started = Instant::now();
        let plugin = Plugin::load(engine, spec(entry, config)?).await?;
        tracing::info!(
            plugin = %plugin.info.name,
            source = %plugin.source,
            version = %plugin.version,
            hooks = %plugin.hook_names().join(","),
            stateless = plugin.stateless,
            shares_code = plugin.shares_code,
            "plugin loaded in {} ms",
            started.elapsed().as_millis()
        );
        loaded.insert(entry.clone(), Arc::clone(&plugin));
        chain.push(plugin);
    }
    Ok(chain)
}
