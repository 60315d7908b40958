//! What a plugin instance's store holds, and the host imports it calls: log, settings,
//! session, relay, DNS. WASI is there for what `std` needs (clocks, random, stdout) and
//! for what the configuration grants the plugin (directories, environment variables, the
//! key-value store, HTTP to named authorities); never sockets.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::dns::{self, RecordType};
use super::bindings::{Level, RelayError, SessionInfo, TlsInfo, host, types};
use super::edits::Edits;
use super::http::{HttpGrant, HttpHooks};
use super::keyvalue::KvGrant;
use super::memory_cap::MemoryCap;
use super::output::Capture;
use super::pacing::CallClock;
use super::share::TenantShare;
use crate::dns::{Dns, DnsError, Kind};
use crate::handler::SessionFacts;
use crate::relay::{self, Envelope, Timeouts};
use crate::upstream_tls::UpstreamTls;

/// What every instance of one plugin shares.
pub struct PluginInfo {
    pub name: String,
    pub settings: BTreeMap<String, String>,
    /// Upstreams this plugin may relay to, `host:port` as configured.
    pub relay_allowed: Vec<String>,
    /// STARTTLS to those upstreams.
    pub relay_tls: UpstreamTls,
    /// The resolver, if the plugin is granted DNS.
    pub dns: Option<Arc<Dns>>,
    /// The key-value store, if the plugin is granted it: in the plugin's own namespace,
    /// which a tenant's chain replaces with the tenant's.
    pub store: Option<KvGrant>,
    /// Where the plugin may send HTTP requests, if anywhere.
    pub http: Option<HttpGrant>,
    /// Our name, for EHLO when relaying.
    pub hostname: String,
}

pub struct PluginState {
    pub info: Arc<PluginInfo>,
    /// The call in progress: its deadline and how long it has computed.
    pub clock: CallClock,
    /// The share of the tenant whose call is in progress, which its CPU time is charged to.
    pub share: Option<Arc<TenantShare>>,
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub memory: MemoryCap,
    pub stdout: Capture,
    pub stderr: Capture,
    /// What the session learnt (TLS, AUTH), for the `session` import.
    pub facts: Arc<SessionFacts>,
    /// The edits of the `process-message` call in progress; `None` at a hook.
    pub edits: Option<Edits>,
    /// The store in this instance's namespace, if granted.
    pub kv: Option<KvGrant>,
    pub http_ctx: WasiHttpCtx,
    pub http_hooks: HttpHooks,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        // A request made now ends with the call in progress at the latest.
        self.http_hooks.deadline = self.clock.deadline();
        WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl types::Host for PluginState {}

impl host::Host for PluginState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let plugin = self.info.name.as_str();
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }

    fn get_setting(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.info.settings.get(&key).cloned())
    }

    fn settings(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.info.settings.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    fn session(&mut self) -> wasmtime::Result<SessionInfo> {
        let facts = &self.facts;
        Ok(SessionInfo {
            tls: facts.tls.as_ref().map(|(version, cipher)| TlsInfo {
                version: version.clone(),
                cipher: cipher.clone(),
            }),
            authenticated: facts.authenticated.clone(),
        })
    }

    async fn relay(
        &mut self,
        upstream: String,
        mail_from: String,
        rcpt_tos: Vec<String>,
        data: Vec<u8>,
    ) -> Result<String, RelayError> {
        let plugin = self.info.name.as_str();
        if !self.info.relay_allowed.contains(&upstream) {
            tracing::warn!(plugin, upstream, "relay refused: not in the plugin's `relay` list");
            return Err(RelayError::NotAllowed(format!(
                "{upstream} is not in this plugin's `relay` list"
            )));
        }
        let envelope = Envelope {
            mail_from: &mail_from,
            rcpt_tos: &rcpt_tos,
            data: &data,
            // What leaves the server starts with its trace, for the message in hand.
            trace: self.edits.as_ref().map(|e| e.received()),
            in_hand: self.edits.as_ref().map(|e| e.message()),
        };
        let relayed = relay::relay(
            &upstream,
            &self.info.hostname,
            &envelope,
            Timeouts::default(),
            &self.info.relay_tls,
        );
        match relayed.await {
            Ok(reply) => {
                tracing::info!(plugin, upstream, reply = %reply.one_line(), recipients = rcpt_tos.len(), "relayed");
                Ok(reply.one_line())
            }
            Err(relay::RelayError::Rejected(reply)) => {
                tracing::info!(plugin, upstream, reply, "upstream refused the message");
                Err(RelayError::Rejected(reply))
            }
            Err(relay::RelayError::Unavailable(why)) => {
                tracing::warn!(plugin, upstream, "upstream unavailable: {why}");
                Err(RelayError::Unavailable(why))
            }
            Err(relay::RelayError::InvalidEnvelope(why)) => {
                tracing::warn!(plugin, upstream, "relay refused: {why}");
                Err(RelayError::NotAllowed(why))
            }
        }
    }
}

impl dns::Host for PluginState {
    async fn lookup(&mut self, name: String, kind: RecordType) -> Result<Vec<String>, dns::DnsError> {
        let Some(resolver) = self.info.dns.clone() else {
            return Err(dns::DnsError::NotAllowed);
        };
        let kind = match kind {
            RecordType::A => Kind::A,
            RecordType::Aaaa => Kind::Aaaa,
            RecordType::Mx => Kind::Mx,
            RecordType::Txt => Kind::Txt,
            RecordType::Ptr => Kind::Ptr,
        };
        resolver.lookup(&name, kind).await.map_err(|e| match e {
            DnsError::NoRecords => dns::DnsError::NoRecords,
            DnsError::Timeout => {
                tracing::warn!(plugin = %self.info.name, name, "DNS lookup timed out");
                dns::DnsError::Timeout
            }
            DnsError::Failed(why) => dns::DnsError::Failed(why),
        })
    }
}
