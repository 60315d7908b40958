//! The TOML configuration: server name, listeners with their handler chains, and limits.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// The port Python's smtpd examples listen on.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1025";
/// The DebuggingServer's job: print every message.
pub const DEFAULT_PLUGIN: &str = "debug-printer";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The name in the greeting and the EHLO reply; the machine's host name by default.
    #[serde(default = "default_hostname")]
    pub hostname: String,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    #[serde(default)]
    pub limits: Limits,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    /// The handler chain, in order; the first that answers ends it.
    #[serde(default = "default_plugins")]
    pub plugins: Vec<String>,
}

/// Every limit the server enforces, with RFC 5321's numbers where it has them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Octets a message (RFC 1870 SIZE); smtpd's `SIZE 33554432`.
    pub max_message_size: usize,
    /// Recipients a transaction; RFC 5321 4.5.3.1.8 asks for at least 100.
    pub max_recipients: usize,
    /// Octets a command line, CRLF included; at least 512 (RFC 5321 4.5.3.1.4).
    pub max_command_line: usize,
    /// Octets a message line, CRLF included; at least 1000 (RFC 5321 4.5.3.1.6).
    pub max_text_line: usize,
    /// Bad commands a session before `421` and close.
    pub max_errors: u32,
    /// Seconds to wait for a command (RFC 5321 4.5.3.2.7 suggests 5 minutes).
    pub idle_timeout_secs: u64,
    /// Seconds to wait for each block of message data (RFC 5321 4.5.3.2.5: 3 minutes).
    pub data_timeout_secs: u64,
    /// Sessions at once, on all listeners.
    pub max_connections: usize,
    /// Sessions at once from one client address.
    pub max_connections_per_ip: usize,
    /// Seconds that sessions in a transaction get to finish after SIGINT/SIGTERM.
    pub shutdown_grace_secs: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_size: 33_554_432,
            max_recipients: 100,
            max_command_line: 512,
            max_text_line: 1000,
            max_errors: 10,
            idle_timeout_secs: 300,
            data_timeout_secs: 180,
            max_connections: 1024,
            max_connections_per_ip: 64,
            shutdown_grace_secs: 30,
        }
    }
}

impl Limits {
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    pub fn data_timeout(&self) -> Duration {
        Duration::from_secs(self.data_timeout_secs)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let too_low = |name: &'static str, value: u64, min: u64| {
            if value < min {
                Err(ConfigError::LimitTooLow { name, value, min })
            } else {
                Ok(())
            }
        };
        too_low("max_message_size", self.max_message_size as u64, 1)?;
        too_low("max_recipients", self.max_recipients as u64, 1)?;
        too_low("max_command_line", self.max_command_line as u64, 512)?;
        too_low("max_text_line", self.max_text_line as u64, 1000)?;
        too_low("max_errors", self.max_errors.into(), 1)?;
        too_low("idle_timeout_secs", self.idle_timeout_secs, 1)?;
        too_low("data_timeout_secs", self.data_timeout_secs, 1)?;
        too_low("max_connections", self.max_connections as u64, 1)?;
        too_low("max_connections_per_ip", self.max_connections_per_ip as u64, 1)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: String, source: toml::de::Error },
    #[error("limits.{name} = {value} is below the minimum {min}")]
    LimitTooLow { name: &'static str, value: u64, min: u64 },
    #[error("listener {0} has an empty plugin chain")]
    EmptyChain(SocketAddr),
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source,
        })?;
        config.check()?;
        Ok(config)
    }

    /// The configuration when no file is given: everything default, no listener yet.
    pub fn empty() -> Config {
        Config {
            hostname: default_hostname(),
            listeners: Vec::new(),
            limits: Limits::default(),
        }
    }

    pub fn check(&self) -> Result<(), ConfigError> {
        self.limits.check()?;
        match self.listeners.iter().find(|l| l.plugins.is_empty()) {
            Some(l) => Err(ConfigError::EmptyChain(l.address)),
            None => Ok(()),
        }
    }
}

fn default_hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

fn default_plugins() -> Vec<String> {
    vec![DEFAULT_PLUGIN.to_owned()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses() {
        let config: Config = toml::from_str(
            r#"
            hostname = "mx.example.com"
            [[listener]]
            address = "127.0.0.1:2525"
            plugins = ["sink"]
            [limits]
            max_message_size = 1000
            idle_timeout_secs = 5
            "#,
        )
        .unwrap();
        config.check().unwrap();
        assert_eq!(config.hostname, "mx.example.com");
        assert_eq!(config.listeners[0].plugins, ["sink"]);
        assert_eq!(config.limits.max_message_size, 1000);
        assert_eq!(config.limits.max_recipients, 100);
    }

    #[test]
    fn unknown_keys_and_low_limits_are_refused() {
        assert!(toml::from_str::<Config>("hostnme = \"x\"").is_err());
        let config: Config = toml::from_str("[limits]\nmax_command_line = 100").unwrap();
        assert_eq!(
            config.check().unwrap_err().to_string(),
            "limits.max_command_line = 100 is below the minimum 512"
        );
    }
}
