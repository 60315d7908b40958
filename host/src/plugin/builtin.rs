//! The plugins that ship inside the binary, built from `plugins/` by build.rs.

macro_rules! plugin_bytes {
    ($file:literal) => {
        include_bytes!(concat!(env!("WASMTPD_PLUGINS_DIR"), "/", $file))
    };
}

/// Name and component bytes of each built-in plugin.
pub const BUILT_IN: &[(&str, &[u8])] = &[
    ("debug-printer", plugin_bytes!("debug_printer.wasm")),
    ("proxy", plugin_bytes!("proxy.wasm")),
    ("filter", plugin_bytes!("filter.wasm")),
    ("sink", plugin_bytes!("sink.wasm")),
    ("store", plugin_bytes!("store.wasm")),
    ("greylist", plugin_bytes!("greylist.wasm")),
    ("rspamd", plugin_bytes!("rspamd.wasm")),
];

pub fn built_in(name: &str) -> Option<&'static [u8]> {
    BUILT_IN.iter().find(|(n, _)| *n == name).map(|(_, bytes)| *bytes)
}

pub fn names() -> Vec<&'static str> {
    BUILT_IN.iter().map(|(n, _)| *n).collect()
}
