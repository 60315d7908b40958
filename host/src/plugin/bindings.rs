//! The host side of `wit/`, generated. Exports are called asynchronously (the store is
//! async, for `relay`); `relay` is an async import because it does network I/O.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "wasmtpd:plugin/host-side",
    imports: {
        "wasmtpd:plugin/host.relay": async,
        "wasmtpd:plugin/dns.lookup": async,
        default: trappable,
    },
    exports: { default: async },
});

pub use self::wasmtpd::plugin::host::{self, Level, RelayError, SessionInfo, TlsInfo};
pub use self::wasmtpd::plugin::types;
pub use self::wasmtpd::plugin::types::Peer;
pub use self::wasmtpd::plugin::{dns, message_edit};
pub use exports::wasmtpd::plugin::handler;
