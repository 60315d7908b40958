//! What every session of one listener shares: its name, limits, handlers, and the
//! replies that depend only on those.

use std::sync::Arc;

use wasmtpd_protocol::Reply;

use crate::config::Limits;
use crate::handler::Handlers;

pub struct ListenerContext {
    pub hostname: String,
    pub limits: Limits,
    pub handlers: Arc<dyn Handlers>,
    pub greeting: Reply,
    pub ehlo: Reply,
    pub helo: Reply,
}

impl ListenerContext {
    pub fn new(hostname: String, limits: Limits, handlers: Arc<dyn Handlers>) -> ListenerContext {
        let greeting = Reply::new(
            220,
            None,
            format!("{hostname} ESMTP wasmtpd {}", env!("CARGO_PKG_VERSION")),
        );
        // The extensions this server implements, advertised in this order.
        let ehlo = Reply::new(
            250,
            None,
            format!(
                "{hostname}\nSIZE {}\n8BITMIME\nSMTPUTF8\nPIPELINING\nENHANCEDSTATUSCODES\nHELP",
                limits.max_message_size
            ),
        );
        let helo = Reply::new(250, None, hostname.clone());
        ListenerContext {
            hostname,
            limits,
            handlers,
            greeting,
            ehlo,
            helo,
        }
    }
}
