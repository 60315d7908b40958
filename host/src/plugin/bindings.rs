//! The host side of `wit/`, generated. Exports are called asynchronously (the store is
//! async, for `relay`); the imports that do I/O (`relay`, DNS, the key-value store) are
//! async.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "wasmtpd:plugin/host-side",
    imports: {
        "wasmtpd:plugin/host.relay": async,
        "wasmtpd:plugin/dns.lookup": async,
        "wasmtpd:plugin/keyvalue-extras": async | trappable,
        "wasi:keyvalue/store": async | trappable,
        "wasi:keyvalue/atomics": async | trappable,
        "wasi:keyvalue/batch": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    with: {
        "wasi:keyvalue/store.bucket": super::keyvalue::Bucket,
    },
});

pub use self::wasi::keyvalue as kv;
pub use self::wasmtpd::plugin::host::{self, Level, RelayError, SessionInfo, TlsInfo};
pub use self::wasmtpd::plugin::types;
pub use self::wasmtpd::plugin::types::Peer;
pub use self::wasmtpd::plugin::{dns, keyvalue_extras, message_edit};
pub use exports::wasmtpd::plugin::{handler, recipient_handler, stateless};
