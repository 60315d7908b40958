//! What every session of one listener shares: its name, limits, handlers, and the
//! replies that depend only on those.

use std::sync::{Arc, RwLock};

use wasmtpd_protocol::{Reply, sasl};

use crate::admission::TenantCap;
use crate::auth::Authenticator;
use crate::config::{BareLf, Limits, ListenerConfig, ListenerProtocol};
use crate::handler::Handlers;
use crate::message_room::MessageRoom;
use crate::metrics::TenantMetrics;
use crate::proxy_protocol::ProxyProtocol;
use crate::tls::ListenerTls;

/// How clients reach the listener and prove who they are: through load balancers, over
/// TLS, with AUTH.
#[derive(Clone, Default)]
pub struct Access {
    /// The certificate the listener serves, if it speaks TLS.
    pub tls: Option<ListenerTls>,
    /// Whom to take a PROXY header from, if connections come through load balancers.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// The users AUTH checks, if the listener offers it (over TLS only).
    pub auth: Option<Arc<Authenticator>>,
}

impl Access {
    /// A listener's: its certificate and users read, its trusted proxies taken as they are.
    pub fn load(listener: &ListenerConfig) -> anyhow::Result<Access> {
        Ok(Access {
            tls: listener.tls.as_ref().map(ListenerTls::load).transpose()?,
            proxy_protocol: listener.proxy_protocol.clone(),
            auth: listener
                .auth
                .as_ref()
                .map(Authenticator::new)
                .transpose()?
                .map(Arc::new),
        })
    }
}

pub struct ListenerContext {
    /// Whose sessions these are, for the counters and the log.
    pub tenant: String,
    pub metrics: Arc<TenantMetrics>,
    /// The server's limits, lowered by the tenant's own.
    pub limits: Limits,
    /// The tenant's sessions at once, when it has a cap.
    pub tenant_cap: Option<TenantCap>,
    pub handlers: Arc<dyn Handlers>,
    pub access: Access,
    pub greeting: Reply,
    /// The EHLO reply over TLS (or where there is none) ...
    pub ehlo: Reply,
    /// ... in the clear where STARTTLS is offered ...
    pub ehlo_starttls: Reply,
    /// ... and over TLS where AUTH is offered.
    pub ehlo_auth: Reply,
    pub helo: Reply,
    /// Our name, for the trace.
    pub hostname: String,
    /// Whether a command line may end in a bare LF.
    pub bare_lf: BareLf,
    /// Room for message data in memory, shared by every listener of the server.
    pub room: Arc<MessageRoom>,
    /// The listener speaks LMTP (RFC 2033): LHLO, and a reply for each recipient.
    pub lmtp: bool,
}

impl ListenerContext {
    pub fn new(
        tenant: String,
        metrics: Arc<TenantMetrics>,
        hostname: String,
        limits: Limits,
        tenant_cap: Option<TenantCap>,
        handlers: Arc<dyn Handlers>,
        access: Access,
    ) -> ListenerContext {
        let greeting = Reply::new(
            220,
            None,
            format!("{hostname} ESMTP wasmtpd {}", env!("CARGO_PKG_VERSION")),
        );
        // The extensions this server implements, advertised in this order.
        let extensions = format!(
            "{hostname}\nSIZE {}\n8BITMIME\nSMTPUTF8\nPIPELINING\nENHANCEDSTATUSCODES\nDSN\nCHUNKING\nBINARYMIME\nHELP",
            limits.max_message_size
        );
        let ehlo_starttls = Reply::new(250, None, format!("{extensions}\nSTARTTLS"));
        let ehlo_auth = Reply::new(250, None, format!("{extensions}\nAUTH {}", sasl::MECHANISMS));
        let ehlo = Reply::new(250, None, extensions);
        let helo = Reply::new(250, None, hostname.clone());
        ListenerContext {
            tenant,
            metrics,
            limits,
            tenant_cap,
            handlers,
            access,
            greeting,
            ehlo,
            ehlo_starttls,
            ehlo_auth,
            helo,
            hostname,
            bare_lf: BareLf::Reject,
            room: MessageRoom::unbounded(),
            lmtp: false,
        }
    }

    /// Speaks LMTP rather than SMTP: the greeting says so, LHLO replaces HELO and EHLO.
    pub fn speaking(mut self, protocol: ListenerProtocol) -> ListenerContext {
        self.lmtp = protocol == ListenerProtocol::Lmtp;
        if self.lmtp {
            self.greeting = Reply::new(
                220,
                None,
                format!("{} LMTP wasmtpd {}", self.hostname, env!("CARGO_PKG_VERSION")),
            );
        }
        self
    }

    /// Takes room for message data from the server's (a context has its own otherwise).
    pub fn with_room(mut self, room: &Arc<MessageRoom>) -> ListenerContext {
        self.room = Arc::clone(room);
        self
    }

    /// Takes command lines ended by a bare LF, or refuses them (the default).
    pub fn with_bare_lf(mut self, bare_lf: BareLf) -> ListenerContext {
        self.bare_lf = bare_lf;
        self
    }
}

/// A listener's current context. A reload replaces it; each session keeps the context
/// (and so the plugin versions) it started with.
pub struct ListenerSlot {
    current: RwLock<Arc<ListenerContext>>,
}

impl ListenerSlot {
    pub fn new(ctx: Arc<ListenerContext>) -> ListenerSlot {
        ListenerSlot {
            current: RwLock::new(ctx),
        }
    }

    pub fn current(&self) -> Arc<ListenerContext> {
        Arc::clone(&self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    pub fn replace(&self, ctx: Arc<ListenerContext>) {
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = ctx;
    }
}
