//! The TOML configuration: server name, listeners with their plugin chains, each
//! plugin's settings and capabilities, and limits.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use serde::Deserialize;

use crate::address_range::AddressRange;
use crate::auth::AuthConfig;
use crate::listen_address::ListenAddress;
use crate::proxy_protocol::ProxyProtocol;
use crate::tls::TlsConfig;

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
    /// Tenants served on the listeners that route by domain.
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantConfig>,
    #[serde(default)]
    pub limits: Limits,
    /// Plugins by the name chains use: `[plugin.NAME]` tables.
    #[serde(default, rename = "plugin")]
    pub plugins: BTreeMap<String, PluginConfig>,
    /// Where compiled plugins are cached (`$XDG_CACHE_HOME/wasmtpd` or `~/.cache/wasmtpd`
    /// by default); an empty string turns the cache off.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Where messages that find no room in memory are spooled while they come in (by
    /// default `spool` in the state directory, `~/.local/state/wasmtpd/spool`); private to
    /// the server (0700). Each file is removed when its transaction ends, and files a
    /// crashed process left are removed at the next start. Read at start.
    #[serde(default)]
    pub spool_dir: Option<PathBuf>,
    /// Where to serve the counters in the Prometheus text format (`GET /metrics`); off
    /// by default. Read at start only.
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// `[dns]`: the resolver for plugins granted `dns`.
    #[serde(default)]
    pub dns: DnsConfig,
    /// `[http]`: the limits of plugins' outbound HTTP.
    #[serde(default)]
    pub http: HttpConfig,
    /// `[store]`: the key-value store of plugins granted `store`.
    #[serde(default)]
    pub store: StoreConfig,
    /// The configuration file's directory: relative plugin paths start there.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
}

/// The resolver that answers plugins' DNS lookups.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// Name servers (`ip:port`) to ask; the system's (`/etc/resolv.conf`) when empty.
    #[serde(default)]
    pub servers: Vec<SocketAddr>,
    /// Milliseconds a lookup may take, all its tries included.
    #[serde(default = "default_dns_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for DnsConfig {
    fn default() -> DnsConfig {
        DnsConfig {
            servers: Vec::new(),
            timeout_ms: default_dns_timeout_ms(),
        }
    }
}

fn default_dns_timeout_ms() -> u64 {
    2000
}

/// The limits of every plugin's outbound HTTP.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Milliseconds a request may take, from connecting to the end of the response
    /// (and never past the call's time budget).
    #[serde(default = "default_http_timeout_ms")]
    pub timeout_ms: u64,
    /// Octets a response body may hold; past them, reading it fails in the plugin.
    #[serde(default = "default_http_max_response_bytes")]
    pub max_response_bytes: u64,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            timeout_ms: default_http_timeout_ms(),
            max_response_bytes: default_http_max_response_bytes(),
        }
    }
}

fn default_http_timeout_ms() -> u64 {
    5000
}

fn default_http_max_response_bytes() -> u64 {
    1 << 20
}

/// The key-value store that plugins granted `store` share, each tenant (or plugin, on
/// a listener without a tenant) in a namespace of its own.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The embedded store's database file (relative paths start at the configuration
    /// file); by default `$XDG_STATE_HOME/wasmtpd/store.redb` or
    /// `~/.local/state/wasmtpd/store.redb`.
    pub path: Option<PathBuf>,
    /// A Redis server instead of the embedded store, e.g. `redis://127.0.0.1:6379/0`:
    /// what several wasmtpd nodes share.
    pub redis: Option<String>,
    /// Keys a namespace may hold.
    #[serde(default = "default_store_max_keys")]
    pub max_keys: u64,
    /// Octets (keys and values) a namespace may hold.
    #[serde(default = "default_store_max_bytes")]
    pub max_bytes: u64,
    /// Milliseconds a call to Redis may take, connecting included.
    #[serde(default = "default_store_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            path: None,
            redis: None,
            max_keys: default_store_max_keys(),
            max_bytes: default_store_max_bytes(),
            timeout_ms: default_store_timeout_ms(),
        }
    }
}

fn default_store_max_keys() -> u64 {
    100_000
}

fn default_store_max_bytes() -> u64 {
    64 << 20
}

fn default_store_timeout_ms() -> u64 {
    1000
}

/// One plugin: where its component comes from, its settings and what it may do.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// A built-in plugin's name or a `.wasm` component's path; default: the table's name.
    pub source: Option<String>,
    /// Key/values the plugin reads with `get-setting`.
    #[serde(default)]
    pub settings: BTreeMap<String, toml::Value>,
    /// Upstreams (`host:port`) the plugin may relay to; none by default.
    #[serde(default)]
    pub relay: Vec<String>,
    /// STARTTLS to the upstream: `may` (the default: when offered, encrypted without
    /// checking the certificate, as Postfix's `may`), `required` (offered, and the
    /// certificate checked against `relay_ca` or the system's roots, else 451), `none`.
    #[serde(default)]
    pub relay_tls: RelayTls,
    /// DNS lookups through the host's resolver (see `[dns]`); none by default.
    #[serde(default)]
    pub dns: bool,
    /// The key-value store (see `[store]`), in its tenant's namespace; none by default.
    #[serde(default)]
    pub store: bool,
    /// Servers (`host:port`, the port always written) the plugin may send HTTP requests
    /// to through `wasi:http`; none by default.
    #[serde(default)]
    pub http: Vec<String>,
    /// A PEM file of the certificates that `relay_tls = "required"` trusts (default: the
    /// system's roots); relative paths start at the configuration file.
    pub relay_ca: Option<PathBuf>,
    /// Milliseconds each call into the plugin may run.
    #[serde(default = "default_time_budget_ms")]
    pub time_budget_ms: u64,
    /// Mebibytes of linear memory each instance may use.
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u64,
    /// Where the plugin's stdout goes: `stdout` or `log` (default: `stdout` for
    /// debug-printer, `log` for the others). Its stderr always goes to the log.
    pub stdout: Option<PluginStdout>,
    /// What of the message `process-message` gets in `data`: `whole` (the default), or
    /// `headers` (the header section) or `none` for a plugin that does not read the body,
    /// so that a big message is not copied into its instance (default `none` for the
    /// built-in sink and greylist).
    pub message: Option<MessagePart>,
    /// Host directories the plugin may open (WASI preopens); none by default.
    #[serde(default)]
    pub dirs: Vec<DirGrant>,
    /// Environment variables the plugin sees; none by default.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// What of the message a plugin's `process-message` gets (see [`PluginConfig::message`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessagePart {
    Whole,
    Headers,
    None,
}

/// Octets of a header section handed to a `headers` plugin at most (Postfix's
/// `header_size_limit`): a message of headers alone is not copied whole into it.
pub const MAX_HEADER_SECTION: usize = 102_400;

impl MessagePart {
    /// This part of `data`, a whole message.
    pub fn of<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        match self {
            MessagePart::Whole => data,
            MessagePart::Headers => {
                let section = wasmtpd_protocol::header::header_section(data);
                &section[..section.len().min(MAX_HEADER_SECTION)]
            }
            MessagePart::None => &[],
        }
    }
}

/// STARTTLS on a plugin's relays (see [`PluginConfig::relay_tls`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayTls {
    None,
    #[default]
    May,
    Required,
}

/// Where a plugin's standard output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginStdout {
    /// The host's stdout, as written (the debug printer's job).
    Stdout,
    /// The host's log, a line at a time.
    Log,
}

/// A host directory granted to a plugin.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// The directory on the host (relative paths start at the configuration file's).
    pub host: PathBuf,
    /// Where the plugin sees it, e.g. `/maildir`.
    pub guest: String,
    /// Whether the plugin may create, change and delete files there; read-only otherwise.
    #[serde(default)]
    pub writable: bool,
}

impl Default for PluginConfig {
    fn default() -> PluginConfig {
        PluginConfig {
            source: None,
            settings: BTreeMap::new(),
            relay: Vec::new(),
            relay_tls: RelayTls::default(),
            relay_ca: None,
            dns: false,
            store: false,
            http: Vec::new(),
            time_budget_ms: default_time_budget_ms(),
            memory_mib: default_memory_mib(),
            stdout: None,
            message: None,
            dirs: Vec::new(),
            env: BTreeMap::new(),
        }
    }
}

/// Milliseconds a call into a plugin may run unless its table says otherwise.
pub const DEFAULT_TIME_BUDGET_MS: u64 = 1000;

fn default_time_budget_ms() -> u64 {
    DEFAULT_TIME_BUDGET_MS
}

/// Mebibytes of linear memory a plugin instance may use unless its table says otherwise.
pub const DEFAULT_MEMORY_MIB: u64 = 64;

fn default_memory_mib() -> u64 {
    DEFAULT_MEMORY_MIB
}

impl PluginConfig {
    /// The settings as the plugin sees them: strings, lists joined with `,`.
    pub fn settings_as_text(&self) -> BTreeMap<String, String> {
        fn text(value: &toml::Value) -> String {
            match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
                other => other.to_string(),
            }
        }
        self.settings.iter().map(|(k, v)| (k.clone(), text(v))).collect()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `ADDRESS:PORT`, or `unix:/path` for a Unix socket.
    pub address: ListenAddress,
    /// Whose listener this is: a `[[tenant]]`'s name (its chain and limits then apply
    /// here), or just a name for the counters and the log; default: its address.
    pub tenant: Option<String>,
    /// The plugin chain, in order; the first that answers ends it. Each is a
    /// `[plugin.NAME]` table's name, a built-in plugin's name or a `.wasm` file's path.
    /// Default: the tenant's chain, or `debug-printer`. See [`Config::chain_of`].
    #[serde(default)]
    pub plugins: Option<Vec<String>>,
    /// Serve the `[[tenant]]`s: each recipient goes to the tenant that owns its domain,
    /// and other recipients are refused. The listener's own chain then only answers the
    /// hooks that come before any recipient (connect, HELO/EHLO, MAIL) and DATA.
    #[serde(default)]
    pub route_by_domain: bool,
    /// Plugin calls of this listener's own chain that may run at once; by default its
    /// tenant's share (see [`TenantConfig::max_concurrent_calls`]) when it names a
    /// `[[tenant]]`, else a share of its own.
    pub max_concurrent_calls: Option<usize>,
    /// CPU milliseconds a second this listener's own chain's plugins may use, defaulted as
    /// [`TenantConfig::max_cpu_ms_per_second`]. A listener that sets this or
    /// `max_concurrent_calls` gets a share of its own (both caps), not its tenant's.
    pub max_cpu_ms_per_second: Option<u64>,
    /// `[listener.tls]`: offer STARTTLS with this certificate, or speak TLS from the
    /// first byte (`implicit = true`).
    pub tls: Option<TlsConfig>,
    /// `[listener.proxy_protocol]`: every connection starts with a PROXY header (v1 or
    /// v2) from one of the `trusted` sources, naming the real client.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// `[listener.auth]`: AUTH PLAIN and LOGIN over TLS against these users.
    pub auth: Option<AuthConfig>,
    /// The Maildir where messages its plugins quarantine go (default: its tenant's).
    pub quarantine: Option<PathBuf>,
    /// A command line ended by a bare LF: `"accept"` it, or `"reject"` it with `500 5.5.2`
    /// as RFC 5321 2.3.8 asks (Postfix's `smtpd_forbid_bare_newline`). Default: accept on
    /// a loopback listener (local tools are sloppy and harmless), reject anywhere else.
    pub bare_lf: Option<BareLf>,
    /// `"smtp"` (the default) or `"lmtp"` (RFC 2033: LHLO, and a reply for each
    /// recipient after the message), usually on a Unix socket.
    #[serde(default)]
    pub protocol: ListenerProtocol,
}

/// What a listener speaks.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ListenerProtocol {
    #[default]
    Smtp,
    Lmtp,
}

/// What a listener does with a command line that ends in LF without CR.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BareLf {
    Accept,
    Reject,
}

impl ListenerConfig {
    /// The listener's bare-LF rule: as configured, else `accept` only where every client is
    /// local (a loopback address, not behind a PROXY-protocol balancer).
    pub fn bare_lf(&self) -> BareLf {
        self.bare_lf.unwrap_or({
            if self.address.is_local() && self.proxy_protocol.is_none() {
                BareLf::Accept
            } else {
                BareLf::Reject
            }
        })
    }
}

/// A tenant: the listeners (those naming it) and recipient domains it owns, the plugin
/// chain that handles their mail, and its limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub name: String,
    /// Recipient domains routed to this tenant on listeners with `route_by_domain`.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Its chain, as a listener's: `[plugin.NAME]` tables, built-ins or `.wasm` paths.
    pub plugins: Vec<String>,
    /// Plugin calls of this tenant that may run at once, on all its chains (the rest
    /// wait their turn); by default half the plugin threads, so that no tenant can take
    /// all of them.
    pub max_concurrent_calls: Option<usize>,
    /// A cap on the CPU milliseconds a second this tenant's plugins may use, on all its
    /// chains, held at all times; past it, its calls pause (its clients are slowed, none
    /// refused). By default a share: all the plugin threads' time, except while another
    /// tenant is light (its calls in the last 100 ms each ran under a millisecond of plugin
    /// code) and this one computes: then a fifth of it divided among the tenants that
    /// called a plugin in the last 100 ms. 0: neither.
    pub max_cpu_ms_per_second: Option<u64>,
    #[serde(default)]
    pub limits: TenantLimits,
    /// The Maildir where messages its plugins quarantine go.
    pub quarantine: Option<PathBuf>,
}

/// A tenant's own limits, each under the server's `[limits]` (the lower one applies).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TenantLimits {
    /// Octets a message to this tenant's recipients.
    pub max_message_size: Option<usize>,
    /// This tenant's recipients in one transaction.
    pub max_recipients: Option<usize>,
    /// Sessions at once on the listeners that name this tenant.
    pub max_connections: Option<usize>,
}

impl TenantLimits {
    fn check(&self, tenant: &str) -> Result<(), ConfigError> {
        let fields = [
            ("max_message_size", self.max_message_size),
            ("max_recipients", self.max_recipients),
            ("max_connections", self.max_connections),
        ];
        match fields.into_iter().find(|(_, value)| *value == Some(0)) {
            Some((field, _)) => Err(ConfigError::Tenant(format!(
                "tenant {tenant}: limits.{field} = 0 would refuse everything"
            ))),
            None => Ok(()),
        }
    }
}

/// Every limit the server enforces, with RFC 5321's numbers where it has them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Octets a message (RFC 1870 SIZE); smtpd's `SIZE 33554432`.
    pub max_message_size: usize,
    /// Recipients a transaction; RFC 5321 4.5.3.1.8 asks for at least 100.
    pub max_recipients: usize,
    /// Octets a command line, CRLF included; at least 512 (RFC 5321 4.5.3.1.4). The
    /// default, 2048 (Postfix's `line_length_limit`), leaves room for DSN's parameters,
    /// which make RCPT lines up to 500 octets longer (RFC 3461 5).
    pub max_command_line: usize,
    /// Octets a message line, CRLF included; at least 1000 (RFC 5321 4.5.3.1.6).
    pub max_text_line: usize,
    /// Bad commands a session before `421` and close.
    pub max_errors: u32,
    /// Seconds to wait for a command (RFC 5321 4.5.3.2.7 suggests 5 minutes).
    pub idle_timeout_secs: u64,
    /// Seconds to wait for each block of message data (RFC 5321 4.5.3.2.5: 3 minutes).
    pub data_timeout_secs: u64,
    /// Sessions at once, on all listeners. Read at start.
    pub max_connections: usize,
    /// Sessions at once from one client address. Read at start.
    pub max_connections_per_ip: usize,
    /// Networks exempt from the per-address limits (sessions at once, connections and
    /// commands a minute), as Postfix exempts `$mynetworks`; loopback always is. Read
    /// at start.
    pub trusted_networks: Vec<AddressRange>,
    /// Connections a minute from one client address; 0: no limit. Read at start.
    pub connections_per_ip_per_minute: u32,
    /// Commands a minute from one client address, all its sessions; 0: no limit. Read
    /// at start.
    pub commands_per_ip_per_minute: u32,
    /// A Redis server, e.g. `redis://127.0.0.1:6379/0`, in which the nodes that name it
    /// count the two rates above together, so that a client spread over them gets its
    /// limit once: each node leases events of an address's count from Redis. While Redis
    /// does not answer, each node counts alone. Read at start.
    pub rates_redis: Option<String>,
    /// Milliseconds the server waits before its greeting; a client that talks first is
    /// refused (a spam engine that does not wait). 0: greet at once.
    pub greeting_delay_ms: u64,
    /// Seconds that sessions in a transaction get to finish after SIGINT/SIGTERM.
    pub shutdown_grace_secs: u64,
    /// `Received:` fields a message may carry; past them it is refused as a loop
    /// (Postfix's `hopcount_limit`).
    pub max_hops: usize,
    /// Octets of message data held in memory, all sessions together: the messages coming
    /// in and being handled, with the plugins' copies. A message that finds no room is
    /// spooled to `spool_dir` and waits for room (then `452 4.3.1`). At least twice
    /// `max_message_size`. Read at start.
    pub max_message_memory: usize,
    /// Octets the spool's files may hold together; a message that would pass it gets
    /// `452 4.3.1`. Read at start.
    pub max_spool_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_size: 33_554_432,
            max_recipients: 100,
            max_command_line: 2048,
            max_text_line: 1000,
            max_errors: 10,
            idle_timeout_secs: 300,
            data_timeout_secs: 180,
            max_connections: 1024,
            max_connections_per_ip: 64,
            trusted_networks: Vec::new(),
            connections_per_ip_per_minute: 0,
            commands_per_ip_per_minute: 0,
            rates_redis: None,
            greeting_delay_ms: 0,
            shutdown_grace_secs: 30,
            max_hops: 50,
            max_message_memory: 512 << 20,
            max_spool_bytes: 4 << 30,
        }
    }
}

impl Limits {
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    pub fn greeting_delay(&self) -> Duration {
        Duration::from_millis(self.greeting_delay_ms)
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
        too_low("max_hops", self.max_hops as u64, 1)?;
        too_low("idle_timeout_secs", self.idle_timeout_secs, 1)?;
        too_low("data_timeout_secs", self.data_timeout_secs, 1)?;
        too_low("max_connections", self.max_connections as u64, 1)?;
        too_low("max_connections_per_ip", self.max_connections_per_ip as u64, 1)?;
        // A message and one plugin's copy of it must fit.
        too_low(
            "max_message_memory",
            self.max_message_memory as u64,
            2 * self.max_message_size as u64,
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The cause is in the message and not a `source`: shown with its chain (`{:#}`), a
    // source would be printed a second time.
    #[error("cannot read {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("{path}: {cause}")]
    Parse { path: String, cause: toml::de::Error },
    #[error("limits.{name} = {value} is below the minimum {min}")]
    LimitTooLow { name: &'static str, value: u64, min: u64 },
    #[error("listener {0} has an empty plugin chain")]
    EmptyChain(ListenAddress),
    #[error("{0}")]
    Tenant(String),
    #[error("listener {0} is configured twice")]
    DuplicateListener(ListenAddress),
    #[error("listener {0}: proxy_protocol.trusted names no source, so every connection would be refused")]
    NoTrustedProxy(ListenAddress),
    #[error("listener {0}: a Unix socket has no PROXY protocol (only local clients reach it)")]
    ProxyOnUnixSocket(ListenAddress),
    #[error("store: {0}")]
    Store(&'static str),
    #[error("{0}")]
    Plugin(String),
    #[error("plugin.{name}.{field} = {value} is below the minimum {min}")]
    PluginLimitTooLow {
        name: String,
        field: &'static str,
        value: u64,
        min: u64,
    },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.display().to_string(),
            cause,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|cause| ConfigError::Parse {
            path: path.display().to_string(),
            cause,
        })?;
        config.base_dir = path.parent().map(Path::to_path_buf);
        if let Some(base) = config.base_dir.clone() {
            config.resolve_paths(&base);
        }
        config.check()?;
        Ok(config)
    }

    /// The configuration when no file is given: everything default, no listener yet.
    pub fn empty() -> Config {
        Config {
            hostname: default_hostname(),
            listeners: Vec::new(),
            tenants: Vec::new(),
            limits: Limits::default(),
            plugins: BTreeMap::new(),
            cache_dir: None,
            spool_dir: None,
            metrics: None,
            dns: DnsConfig::default(),
            http: HttpConfig::default(),
            store: StoreConfig::default(),
            base_dir: None,
        }
    }

    /// Relative file paths start at the configuration file's directory, `base`: the
    /// listeners' certificates and keys, the directories granted to plugins, the store,
    /// the spool and the cache. (Plugin
    /// sources are resolved when loaded: a name may be a built-in's.)
    fn resolve_paths(&mut self, base: &Path) {
        let listeners = self.listeners.iter_mut().flat_map(|l| {
            let certs = l.tls.as_mut().map(|tls| [&mut tls.cert, &mut tls.key]);
            let socket = l.address.path_mut();
            certs.into_iter().flatten().chain(l.quarantine.as_mut()).chain(socket)
        });
        let tenant_quarantines = self.tenants.iter_mut().filter_map(|t| t.quarantine.as_mut());
        let dirs = self
            .plugins
            .values_mut()
            .flat_map(|p| p.dirs.iter_mut().map(|d| &mut d.host).chain(p.relay_ca.as_mut()));
        // An empty cache_dir turns the cache off, and stays empty.
        let cache = self.cache_dir.as_mut().filter(|dir| !dir.as_os_str().is_empty());
        let store = self
            .store
            .path
            .as_mut()
            .into_iter()
            .chain(self.spool_dir.as_mut())
            .chain(cache);
        for path in listeners.chain(dirs).chain(tenant_quarantines).chain(store) {
            *path = base.join(&*path);
        }
    }

    /// The `[[tenant]]` a listener names, if it names one.
    pub fn tenant_of(&self, listener: &ListenerConfig) -> Option<&TenantConfig> {
        let name = listener.tenant.as_deref()?;
        self.tenants.iter().find(|t| t.name == name)
    }

    /// Where a listener's quarantined messages go: its own, else its tenant's.
    pub fn quarantine_of<'a>(&'a self, listener: &'a ListenerConfig) -> Option<&'a Path> {
        let tenant = self.tenant_of(listener).and_then(|t| t.quarantine.as_deref());
        listener.quarantine.as_deref().or(tenant)
    }

    /// A listener's chain: its own, else its tenant's, else the DebuggingServer's.
    pub fn chain_of<'a>(&'a self, listener: &'a ListenerConfig) -> &'a [String] {
        match (&listener.plugins, self.tenant_of(listener)) {
            (Some(plugins), _) => plugins,
            (None, Some(tenant)) => &tenant.plugins,
            (None, None) => &DEFAULT_CHAIN,
        }
    }

    /// A listener's limits: the server's, lowered by its tenant's where it has them.
    pub fn limits_of(&self, listener: &ListenerConfig) -> Limits {
        let mut limits = self.limits.clone();
        if let Some(tenant) = self.tenant_of(listener) {
            let own = &tenant.limits;
            let lower = |server: usize, tenant: Option<usize>| tenant.map_or(server, |t| t.min(server));
            limits.max_message_size = lower(limits.max_message_size, own.max_message_size);
            limits.max_recipients = lower(limits.max_recipients, own.max_recipients);
        }
        limits
    }

    /// The settings read at start only (the ones the doc comments say so of) whose value
    /// differs in `newer`: a reload cannot apply them, a restart does.
    pub fn start_only_changes(&self, newer: &Config) -> Vec<&'static str> {
        let (old, new) = (&self.limits, &newer.limits);
        [
            ("cache_dir", self.cache_dir != newer.cache_dir),
            ("spool_dir", self.spool_dir != newer.spool_dir),
            ("metrics", self.metrics != newer.metrics),
            ("limits.max_connections", old.max_connections != new.max_connections),
            (
                "limits.max_connections_per_ip",
                old.max_connections_per_ip != new.max_connections_per_ip,
            ),
            ("limits.trusted_networks", old.trusted_networks != new.trusted_networks),
            (
                "limits.connections_per_ip_per_minute",
                old.connections_per_ip_per_minute != new.connections_per_ip_per_minute,
            ),
            (
                "limits.commands_per_ip_per_minute",
                old.commands_per_ip_per_minute != new.commands_per_ip_per_minute,
            ),
            ("limits.rates_redis", old.rates_redis != new.rates_redis),
            (
                "limits.max_message_memory",
                old.max_message_memory != new.max_message_memory,
            ),
            ("limits.max_spool_bytes", old.max_spool_bytes != new.max_spool_bytes),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect()
    }

    pub fn check(&self) -> Result<(), ConfigError> {
        self.limits.check()?;
        if let Some(l) = self.listeners.iter().find(|l| self.chain_of(l).is_empty()) {
            return Err(ConfigError::EmptyChain(l.address.clone()));
        }
        if let Some(l) = self
            .listeners
            .iter()
            .find(|l| l.proxy_protocol.as_ref().is_some_and(|p| p.trusted.is_empty()))
        {
            return Err(ConfigError::NoTrustedProxy(l.address.clone()));
        }
        if let Some(l) = self
            .listeners
            .iter()
            .find(|l| l.proxy_protocol.is_some() && matches!(l.address, ListenAddress::Unix(_)))
        {
            return Err(ConfigError::ProxyOnUnixSocket(l.address.clone()));
        }
        for (i, l) in self.listeners.iter().enumerate() {
            // Port 0 is a new free port each time: it may appear more than once.
            if !l.address.is_any_port() && self.listeners[..i].iter().any(|other| other.address == l.address) {
                return Err(ConfigError::DuplicateListener(l.address.clone()));
            }
        }
        let mut domains: Vec<String> = Vec::new();
        for (i, tenant) in self.tenants.iter().enumerate() {
            if self.tenants[..i].iter().any(|t| t.name == tenant.name) {
                return Err(ConfigError::Tenant(format!(
                    "tenant {} is configured twice",
                    tenant.name
                )));
            }
            if tenant.plugins.is_empty() {
                return Err(ConfigError::Tenant(format!(
                    "tenant {} has an empty plugin chain",
                    tenant.name
                )));
            }
            tenant.limits.check(&tenant.name)?;
            for domain in &tenant.domains {
                let domain = domain.to_ascii_lowercase();
                if domains.contains(&domain) {
                    return Err(ConfigError::Tenant(format!("domain {domain} belongs to two tenants")));
                }
                domains.push(domain);
            }
        }
        if let Some(l) = self
            .listeners
            .iter()
            .find(|l| l.route_by_domain && self.tenants.is_empty())
        {
            return Err(ConfigError::Tenant(format!(
                "listener {} routes by domain, but there is no [[tenant]]",
                l.address
            )));
        }
        for (name, plugin) in &self.plugins {
            let too_low = |field, value, min| ConfigError::PluginLimitTooLow {
                name: name.clone(),
                field,
                value,
                min,
            };
            if plugin.time_budget_ms < 10 {
                return Err(too_low("time_budget_ms", plugin.time_budget_ms, 10));
            }
            if plugin.memory_mib < 1 {
                return Err(too_low("memory_mib", plugin.memory_mib, 1));
            }
            if let Some(bad) = plugin.http.iter().find(|a| {
                let port = a.rsplit_once(':').map(|(host, port)| (host, port.parse::<u16>()));
                !matches!(port, Some((host, Ok(_))) if !host.is_empty() && !host.contains('/'))
            }) {
                return Err(ConfigError::Plugin(format!(
                    "plugin.{name}.http: {bad:?} is not host:port (write the port, e.g. \"127.0.0.1:11333\")"
                )));
            }
        }
        if self.store.path.is_some() && self.store.redis.is_some() {
            return Err(ConfigError::Store(
                "path (the embedded store) and redis are two stores: name one",
            ));
        }
        if self.store.max_keys == 0 || self.store.max_bytes == 0 || self.store.timeout_ms == 0 {
            return Err(ConfigError::Store(
                "max_keys, max_bytes and timeout_ms must be at least 1",
            ));
        }
        Ok(())
    }
}

fn default_hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// What a listener with no chain of its own and no tenant's runs.
static DEFAULT_CHAIN: LazyLock<Vec<String>> = LazyLock::new(|| vec![DEFAULT_PLUGIN.to_owned()]);

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
        assert_eq!(config.chain_of(&config.listeners[0]), ["sink"]);
        assert_eq!(config.limits.max_message_size, 1000);
        assert_eq!(config.limits.max_recipients, 100);
    }

    #[test]
    fn plugin_tables_and_settings() {
        let config: Config = toml::from_str(
            r#"
            [plugin.relay]
            source = "proxy"
            relay = ["127.0.0.1:2525"]
            time_budget_ms = 250
            [plugin.relay.settings]
            upstream = "127.0.0.1:2525"
            relay_domains = ["example.com", "example.net"]
            max = 10
            "#,
        )
        .unwrap();
        config.check().unwrap();
        let relay = &config.plugins["relay"];
        assert_eq!(relay.source.as_deref(), Some("proxy"));
        assert_eq!(relay.memory_mib, 64);
        let settings = relay.settings_as_text();
        assert_eq!(settings["relay_domains"], "example.com,example.net");
        assert_eq!(settings["max"], "10");
        let low: Config = toml::from_str("[plugin.x]\ntime_budget_ms = 1").unwrap();
        assert_eq!(
            low.check().unwrap_err().to_string(),
            "plugin.x.time_budget_ms = 1 is below the minimum 10"
        );
    }

    #[test]
    fn a_listener_naming_a_tenant_gets_its_chain_and_its_lower_limits() {
        let config: Config = toml::from_str(
            r#"
            [limits]
            max_message_size = 1000
            [[listener]]
            address = "127.0.0.1:2525"
            tenant = "acme"
            [[listener]]
            address = "127.0.0.1:2526"
            tenant = "acme"
            plugins = ["sink"]
            [[listener]]
            address = "127.0.0.1:2527"
            tenant = "nobody-configured"
            [[tenant]]
            name = "acme"
            plugins = ["filter", "store"]
            [tenant.limits]
            max_message_size = 5000
            max_recipients = 3
            "#,
        )
        .unwrap();
        config.check().unwrap();
        let [own, overridden, named_only] = &config.listeners[..] else {
            panic!("three listeners")
        };
        assert_eq!(config.chain_of(own), ["filter", "store"]);
        assert_eq!(config.chain_of(overridden), ["sink"]);
        assert_eq!(config.chain_of(named_only), ["debug-printer"]);
        let limits = config.limits_of(own);
        assert_eq!(limits.max_message_size, 1000, "the server's is lower");
        assert_eq!(limits.max_recipients, 3, "the tenant's is lower");
        assert_eq!(config.limits_of(named_only).max_recipients, 100);
        let zero: Config =
            toml::from_str("[[tenant]]\nname = \"a\"\nplugins = [\"sink\"]\n[tenant.limits]\nmax_connections = 0")
                .unwrap();
        assert_eq!(
            zero.check().unwrap_err().to_string(),
            "tenant a: limits.max_connections = 0 would refuse everything"
        );
    }

    #[test]
    fn a_reload_names_the_settings_read_at_start_only() {
        let old: Config = toml::from_str("[limits]\nmax_connections = 10\nmax_message_size = 1000").unwrap();
        let same: Config = toml::from_str("[limits]\nmax_connections = 10\nmax_message_size = 2000").unwrap();
        assert!(
            old.start_only_changes(&same).is_empty(),
            "max_message_size applies at a reload"
        );
        let new: Config =
            toml::from_str("metrics = \"127.0.0.1:9090\"\n[limits]\nmax_connections = 20\nrates_redis = \"redis://r\"")
                .unwrap();
        assert_eq!(
            old.start_only_changes(&new),
            ["metrics", "limits.max_connections", "limits.rates_redis"]
        );
    }

    #[test]
    fn unknown_keys_and_low_limits_are_refused() {
        assert!(toml::from_str::<Config>("hostnme = \"x\"").is_err());
        let config: Config = toml::from_str("[limits]\nmax_command_line = 100").unwrap();
        assert_eq!(
            config.check().unwrap_err().to_string(),
            "limits.max_command_line = 100 is below the minimum 512"
        );
        let config: Config = toml::from_str("[limits]\nrates_redis = \"redis://r:6379\"").unwrap();
        assert_eq!(config.limits.rates_redis.as_deref(), Some("redis://r:6379"));
    }

    #[test]
    fn listener_tls_and_proxy_tables() {
        let config: Config = toml::from_str(
            r#"
            [[listener]]
            address = "127.0.0.1:2525"
            [listener.tls]
            cert = "cert.pem"
            key = "key.pem"
            [listener.proxy_protocol]
            trusted = ["10.0.0.0/8", "::1"]
            "#,
        )
        .unwrap();
        config.check().unwrap();
        let listener = &config.listeners[0];
        let tls = listener.tls.as_ref().unwrap();
        assert_eq!((tls.cert.to_str(), tls.implicit), (Some("cert.pem"), false));
        let proxy = listener.proxy_protocol.as_ref().unwrap();
        assert!(proxy.trusts("10.1.2.3".parse().unwrap()));
        assert!(!proxy.trusts("192.0.2.1".parse().unwrap()));

        let bad = toml::from_str::<Config>(
            "[[listener]]\naddress = \"127.0.0.1:25\"\n[listener.proxy_protocol]\ntrusted = [\"10.0.0.0/99\"]",
        );
        assert!(bad.unwrap_err().to_string().contains("is not an address or a network"));
        let none: Config =
            toml::from_str("[[listener]]\naddress = \"127.0.0.1:25\"\n[listener.proxy_protocol]\ntrusted = []")
                .unwrap();
        assert_eq!(
            none.check().unwrap_err().to_string(),
            "listener 127.0.0.1:25: proxy_protocol.trusted names no source, so every connection would be refused"
        );
    }

    #[test]
    fn every_example_configuration_loads() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let mut loaded = 0;
        for entry in std::fs::read_dir(&examples).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                loaded += 1;
            }
        }
        assert!(loaded >= 3, "only {loaded} examples in {}", examples.display());
    }

    #[test]
    fn relative_paths_start_at_the_configuration_file() {
        let temp = tempfile::Builder::new()
            .prefix("wasmtpd-config-paths-")
            .tempdir()
            .unwrap();
        let dir = temp.path().to_owned();
        let path = dir.join("wasmtpd.toml");
        let text = "[[listener]]\naddress = \"127.0.0.1:25\"\n[listener.tls]\ncert = \"c.pem\"\nkey = \"/etc/k.pem\"\n\
                    [plugin.store]\n[[plugin.store.dirs]]\nhost = \"mail\"\nguest = \"/maildir\"\n";
        let text = format!("cache_dir = \"cache\"\n{text}");
        std::fs::write(&path, text).unwrap();
        let config = Config::load(&path).unwrap();
        let tls = config.listeners[0].tls.as_ref().unwrap();
        assert_eq!(tls.cert, dir.join("c.pem"));
        assert_eq!(tls.key, PathBuf::from("/etc/k.pem"));
        assert_eq!(config.plugins["store"].dirs[0].host, dir.join("mail"));
        assert_eq!(config.cache_dir, Some(dir.join("cache")));
        std::fs::write(&path, "cache_dir = \"\"\n").unwrap();
        let config = Config::load(&path).unwrap();
        assert_eq!(
            config.cache_dir,
            Some(PathBuf::new()),
            "an empty cache_dir still turns the cache off"
        );
    }
}
