//! DNS for plugins granted it: lookups through hickory-resolver, with a per-call timeout
//! and its cache (which honours TTLs), against the configured servers or the system's.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RecordType;

use crate::config::DnsConfig;
use crate::shared_slot::SharedSlot;

/// What a lookup asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    A,
    Aaaa,
    Mx,
    Txt,
    /// `name` is an IP address.
    Ptr,
}

/// Why a lookup gave nothing.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("no such record")]
    NoRecords,
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Failed(String),
}

/// The resolver for `config`, made once and shared by every plugin granted DNS (and so
/// its cache), until a reload names other servers or another timeout.
pub fn shared(config: &DnsConfig) -> anyhow::Result<Arc<Dns>> {
    static CURRENT: SharedSlot<DnsConfig, Dns> = SharedSlot::new();
    CURRENT.get_or_make(config.clone(), || {
        Dns::new(&config.servers, Duration::from_millis(config.timeout_ms)).map(Arc::new)
    })
}

pub struct Dns {
    resolver: TokioResolver,
    timeout: Duration,
}

impl Dns {
    /// A resolver asking `servers` (the system's, from `/etc/resolv.conf`, when empty),
    /// each call bounded by `timeout`.
    pub fn new(servers: &[SocketAddr], timeout: Duration) -> anyhow::Result<Dns> {
        let mut options = ResolverOpts::default();
        options.timeout = timeout;
        options.attempts = 1;
        // Plugins ask the DNS, not this machine's /etc/hosts.
        options.use_hosts_file = ResolveHosts::Never;
        let builder = if servers.is_empty() {
            TokioResolver::builder_tokio().context("the system's resolver configuration")?
        } else {
            let name_servers = servers
                .iter()
                .map(|server| {
                    let (mut udp, mut tcp) = (ConnectionConfig::udp(), ConnectionConfig::tcp());
                    (udp.port, tcp.port) = (server.port(), server.port());
                    NameServerConfig::new(server.ip(), true, vec![udp, tcp])
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(name_servers),
                TokioRuntimeProvider::default(),
            )
        };
        let resolver = builder.with_options(options).build().context("the DNS resolver")?;
        Ok(Dns { resolver, timeout })
    }

    /// The records' data as text: addresses, `preference exchange` for MX, the strings of
    /// TXT, names for PTR.
    pub async fn lookup(&self, name: &str, kind: Kind) -> Result<Vec<String>, DnsError> {
        let asked = async {
            match kind {
                Kind::Ptr => {
                    let ip: IpAddr = name
                        .parse()
                        .map_err(|_| DnsError::Failed(format!("{name:?} is not an IP address")))?;
                    self.resolver.reverse_lookup(ip).await.map_err(error)
                }
                other => {
                    let record_type = match other {
                        Kind::A => RecordType::A,
                        Kind::Aaaa => RecordType::AAAA,
                        Kind::Mx => RecordType::MX,
                        _ => RecordType::TXT,
                    };
                    self.resolver.lookup(name, record_type).await.map_err(error)
                }
            }
        };
        // The resolver's own timeout is per attempt: this bounds the whole call.
        let lookup = tokio::time::timeout(self.timeout, asked)
            .await
            .map_err(|_| DnsError::Timeout)??;
        let answers: Vec<String> = lookup.answers().iter().map(|r| r.data.to_string()).collect();
        if answers.is_empty() {
            return Err(DnsError::NoRecords);
        }
        Ok(answers)
    }
}

fn error(e: hickory_resolver::net::NetError) -> DnsError {
    if e.is_no_records_found() || e.is_nx_domain() {
        DnsError::NoRecords
    } else if matches!(e, hickory_resolver::net::NetError::Timeout) {
        DnsError::Timeout
    } else {
        DnsError::Failed(e.to_string())
    }
}
