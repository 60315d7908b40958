//! The command line, and how it combines with the configuration file.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, DEFAULT_LISTEN, ListenerConfig};
use crate::listen_address::ListenAddress;
use crate::scaffold::Language;

/// A programmable SMTP server. With no arguments it is Python's old DebuggingServer:
/// it listens on 127.0.0.1:1025 and prints every message it receives.
#[derive(Debug, Parser)]
#[command(name = "wasmtpd", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Tool>,

    /// TOML configuration file: hostname, [[listener]]s, [[tenant]]s, [limits], and the
    /// plugins' [plugin.NAME] tables (source, settings, capabilities, budgets).
    #[arg(short, long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Listen on ADDR:PORT or unix:/path (repeatable), instead of the configuration's
    /// listeners: each serves the chain, tenant, routing, quarantine and plugin caps of the
    /// file's first listener (not its TLS, PROXY, AUTH or protocol). Port 0 picks a free port,
    /// which the log names. Default 127.0.0.1:1025.
    #[arg(short, long, value_name = "ADDRESS")]
    pub listen: Vec<ListenAddress>,

    /// Message handler chain for every listener (repeatable, run in order; the first
    /// that answers ends the chain); replaces the configuration's chains. Each is a
    /// [plugin.NAME] table, a path to a .wasm component, or built in: debug-printer (prints
    /// each message, the default), proxy (relays upstream), filter (refuses by rules),
    /// sink (accepts and discards), store (writes a Maildir), greylist (defers unseen
    /// senders once; needs store = true), rspamd (applies rspamd's verdict; needs http).
    #[arg(short, long, value_name = "NAME")]
    pub plugin: Vec<String>,

    /// Name in the greeting and the EHLO reply; default the configuration's, else the host name.
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// Serve counters in the Prometheus text format at http://ADDR:PORT/metrics.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,

    /// Largest message in octets (SIZE); default the configuration's, else 33554432.
    #[arg(long, value_name = "OCTETS")]
    pub max_message_size: Option<usize>,

    /// Instead of serving: run the message in FILE through the first listener's chain,
    /// without a network, print the SMTP dialogue, and exit 0 if it was accepted, 75 if
    /// deferred, 1 if refused. Needs --to; --from is optional.
    #[arg(long, value_name = "FILE", requires = "to")]
    pub deliver: Option<PathBuf>,

    /// --deliver's envelope sender; default the null sender <>.
    #[arg(long, value_name = "ADDRESS", default_value = "", requires = "deliver")]
    pub from: String,

    /// --deliver's envelope recipient (repeatable).
    #[arg(long, value_name = "ADDRESS", requires = "deliver")]
    pub to: Vec<String>,

    /// Instead of serving: compile each .wasm component into the compiled-component cache
    /// and exit (0 if all compiled). The same as `wasmtpd compile FILE...`.
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with = "deliver")]
    pub compile: Vec<PathBuf>,

    /// The compiled-component cache; default the configuration's cache_dir, else
    /// ~/.cache/wasmtpd.
    #[arg(long, value_name = "DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
}

/// The plugin author's tools: instead of serving, do one thing and exit.
#[derive(Debug, Subcommand)]
pub enum Tool {
    /// Write a new plugin folder NAME: its WIT, build file, source with the handler and the
    /// chosen hooks stubbed, a configuration that loads it, a sample message and a README.
    New {
        /// rust, python or js.
        language: Language,
        /// The plugin's name, in lower case with dashes (e.g. my-filter); also its folder.
        name: String,
        /// Hooks to stub, comma-separated: connect, helo, mail, rcpt, data, auth, rset, quit.
        #[arg(long, value_delimiter = ',')]
        hooks: Vec<String>,
    },
    /// Load a component as the server would, without serving: which wasmtpd interfaces it
    /// exports, what it imports (and so which capabilities it needs), whether it starts
    /// within the memory cap (default 64 MiB). Exit 1 with the reason if it cannot load.
    Check {
        #[arg(value_name = "FILE.wasm")]
        file: PathBuf,
        /// The memory cap to start it within, as its table's memory_mib would set it.
        #[arg(long, value_name = "MIB", default_value_t = crate::config::DEFAULT_MEMORY_MIB)]
        memory_mib: u64,
        /// The time it may take to start, as its table's time_budget_ms would set it.
        #[arg(long, value_name = "MS", default_value_t = crate::config::DEFAULT_TIME_BUDGET_MS)]
        time_budget_ms: u64,
    },
    /// Compile each component into the compiled-component cache ahead of time (a
    /// deployment step: a server that loads them later starts at once).
    Compile {
        #[arg(value_name = "FILE.wasm", required = true)]
        files: Vec<PathBuf>,
    },
    /// Ask a running server whether it is alive (GET /healthz on its metrics listener) or,
    /// with --ready, ready for mail (/readyz): exit 0 if so, 1 if not. For a container's
    /// HEALTHCHECK where no HTTP client is installed.
    Health {
        /// The metrics listener; by default the configuration's `metrics`.
        #[arg(value_name = "ADDR:PORT")]
        address: Option<std::net::SocketAddr>,
        /// Ask /readyz: plugins loaded, listeners bound, not draining.
        #[arg(long)]
        ready: bool,
    },
}

impl Cli {
    /// A tool (`new`, `check`, `compile`) does one thing: the server's options would be
    /// ignored, so they are refused.
    pub fn check_tool_alone(&self) -> anyhow::Result<()> {
        let Some(tool) = &self.command else { return Ok(()) };
        let given: Vec<&str> = [
            ("--listen", !self.listen.is_empty()),
            ("--plugin", !self.plugin.is_empty()),
            ("--hostname", self.hostname.is_some()),
            ("--metrics", self.metrics.is_some()),
            ("--max-message-size", self.max_message_size.is_some()),
            ("--deliver", self.deliver.is_some()),
            ("--compile", !self.compile.is_empty()),
        ]
        .into_iter()
        .filter_map(|(option, given)| given.then_some(option))
        .collect();
        if !given.is_empty() {
            let name = match tool {
                Tool::New { .. } => "new",
                Tool::Check { .. } => "check",
                Tool::Compile { .. } => "compile",
                Tool::Health { .. } => "health",
            };
            anyhow::bail!("wasmtpd {name} does one thing and takes no {}", given.join(", "));
        }
        Ok(())
    }

    /// The configuration file (if any) with the command line's choices applied over it;
    /// read again at every reload.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::empty(),
        };
        let listener = |address| ListenerConfig {
            address,
            tenant: None,
            route_by_domain: false,
            max_concurrent_calls: None,
            max_cpu_ms_per_second: None,
            plugins: None,
            tls: None,
            proxy_protocol: None,
            auth: None,
            quarantine: None,
            bare_lf: None,
            protocol: Default::default(),
        };
        if !self.listen.is_empty() {
            // Each address serves what the file's first listener serves (the file was
            // checked whole when loaded): its chain, tenant, routing, quarantine and plugin
            // caps (a listener's own caps make a share of its own, so each address gets
            // one). How it is reached is the address's own: no TLS, PROXY, AUTH, LMTP or
            // bare-LF choice of another address.
            let model = config.listeners.first().cloned();
            config.listeners = self
                .listen
                .iter()
                .cloned()
                .map(|address| {
                    let mut new = listener(address);
                    if let Some(model) = &model {
                        new.plugins.clone_from(&model.plugins);
                        new.tenant.clone_from(&model.tenant);
                        new.route_by_domain = model.route_by_domain;
                        new.quarantine.clone_from(&model.quarantine);
                        new.max_concurrent_calls = model.max_concurrent_calls;
                        new.max_cpu_ms_per_second = model.max_cpu_ms_per_second;
                    }
                    new
                })
                .collect();
        } else if config.listeners.is_empty() {
            config.listeners.push(listener(
                DEFAULT_LISTEN
                    .parse()
                    .map_err(anyhow::Error::msg)
                    .context("default listen address")?,
            ));
        }
        if !self.plugin.is_empty() {
            for l in &mut config.listeners {
                l.plugins = Some(self.plugin.clone());
            }
        }
        if let Some(hostname) = &self.hostname {
            config.hostname.clone_from(hostname);
        }
        if let Some(metrics) = self.metrics {
            config.metrics = Some(metrics);
        }
        if let Some(size) = self.max_message_size {
            config.limits.max_message_size = size;
        }
        if let Some(dir) = &self.cache_dir {
            // Relative to the working directory (wasmtime wants it absolute); "" is no cache.
            config.cache_dir = Some(if dir.as_os_str().is_empty() {
                dir.clone()
            } else {
                std::path::absolute(dir).with_context(|| format!("--cache-dir {}", dir.display()))?
            });
        }
        config.check()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;
    use crate::plugin::builtin;

    #[test]
    fn the_help_names_every_built_in_plugin() {
        let help = Cli::command().render_help().to_string();
        for name in builtin::names() {
            assert!(help.contains(name), "--help does not name {name}:\n{help}");
        }
    }
}
