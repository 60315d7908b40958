//! `wasmtpd check`: what a loaded plugin exports and imports, and which capabilities
//! those imports need granted in its `[plugin.NAME]` table.

use super::Plugin;

/// What `check` says of a plugin.
#[derive(Debug, PartialEq, Eq)]
pub struct Inspection {
    /// The component's exports (interface names, versions included).
    pub exports: Vec<String>,
    /// The component's imports.
    pub imports: Vec<String>,
    /// The capabilities its imports need, as the configuration grants them.
    pub needs: Vec<&'static str>,
}

/// Imports that work only when the plugin's table grants them, by name prefix.
const GRANTED_BY: &[(&str, &str)] = &[
    ("wasmtpd:plugin/dns@", "dns = true (DNS lookups)"),
    ("wasi:keyvalue/", "store = true (the key-value store)"),
    ("wasmtpd:plugin/keyvalue-extras@", "store = true (the key-value store)"),
    (
        "wasi:http/outgoing-handler@",
        "http = [\"host:port\", ...] (HTTP requests to those servers)",
    ),
    (
        "wasi:filesystem/preopens@",
        "dirs (host directories), if it opens files",
    ),
    ("wasi:sockets/", "nothing grants sockets: connecting or listening fails"),
];

impl Inspection {
    pub fn of(plugin: &Plugin) -> Inspection {
        let ty = plugin.component().component_type();
        let exports: Vec<String> = ty.exports(&plugin.engine).map(|(name, _)| name.to_owned()).collect();
        let imports: Vec<String> = ty.imports(&plugin.engine).map(|(name, _)| name.to_owned()).collect();
        Inspection {
            needs: needs(&imports),
            exports,
            imports,
        }
    }
}

fn needs(imports: &[String]) -> Vec<&'static str> {
    let mut needs: Vec<&'static str> = Vec::new();
    for (prefix, grant) in GRANTED_BY {
        if imports.iter().any(|i| i.starts_with(prefix)) && !needs.contains(grant) {
            needs.push(grant);
        }
    }
    needs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_say_which_grants_a_plugin_needs() {
        let imports: Vec<String> = [
            "wasmtpd:plugin/host@0.1.0",
            "wasi:keyvalue/store@0.2.0-draft",
            "wasi:keyvalue/atomics@0.2.0-draft",
            "wasmtpd:plugin/dns@0.1.0",
            "wasi:cli/stdout@0.2.6",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            needs(&imports),
            vec!["dns = true (DNS lookups)", "store = true (the key-value store)"]
        );
        assert!(needs(&["wasmtpd:plugin/host@0.1.0".into()]).is_empty());
    }
}
