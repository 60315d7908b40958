//! The command line, and how it combines with the configuration file.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

use crate::config::{Config, DEFAULT_LISTEN, ListenerConfig};
use crate::listen_address::ListenAddress;

/// A programmable SMTP server. With no arguments it is Python's old DebuggingServer:
/// it listens on 127.0.0.1:1025 and prints every message it receives.
#[derive(Debug, Parser)]
#[command(name = "wasmtpd", version)]
pub struct Cli {
    /// TOML configuration file: hostname, [[listener]] tables, [limits].
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Listen on ADDR:PORT or unix:/path (repeatable); replaces the configuration's listeners.
    /// Port 0 picks a free port, which the log names. Default 127.0.0.1:1025.
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
    /// deferred, 1 if refused. With --from and --to.
    #[arg(long, value_name = "FILE", requires = "to")]
    pub deliver: Option<PathBuf>,

    /// --deliver's envelope sender; default the null sender <>.
    #[arg(long, value_name = "ADDRESS", default_value = "", requires = "deliver")]
    pub from: String,

    /// --deliver's envelope recipient (repeatable).
    #[arg(long, value_name = "ADDRESS", requires = "deliver")]
    pub to: Vec<String>,

    /// Instead of serving: compile each .wasm component into the compiled-component cache
    /// and exit (0 if all compiled). A server that loads them later starts at once.
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with = "deliver")]
    pub compile: Vec<PathBuf>,

    /// The compiled-component cache; default the configuration's cache_dir, else
    /// ~/.cache/wasmtpd.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

impl Cli {
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
            config.listeners = self.listen.iter().cloned().map(listener).collect();
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
            config.cache_dir = Some(match dir.as_os_str().is_empty() {
                true => dir.clone(),
                false => std::path::absolute(dir).with_context(|| format!("--cache-dir {}", dir.display()))?,
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
