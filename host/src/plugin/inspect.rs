//! `wasmtpd check`: what a loaded plugin exports and imports, which capabilities those
//! imports need granted in its `[plugin.NAME]` table, and what else they mean.

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
    /// What else its imports mean: things that may be granted, or never are.
    pub notes: Vec<&'static str>,
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
];

/// Imports that need no grant to load or to run but say something: a language's runtime
/// (CPython's, a JavaScript engine's) imports them whether or not the plugin uses them.
const NOTED_FOR: &[(&str, &str)] = &[
    (
        "wasi:filesystem/preopens@",
        "it can open files only in the directories its `dirs` grant",
    ),
    (
        "wasi:sockets/",
        "no socket is ever granted: connecting or listening fails",
    ),
    (
        "wasmtpd:plugin/host@",
        "host.relay reaches only the upstreams its `relay` lists",
    ),
];

impl Inspection {
    pub fn of(plugin: &Plugin) -> Inspection {
        let component = plugin.component();
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(component.engine())
            .map(|(name, _)| name.to_owned())
            .collect();
        let imports: Vec<String> = ty
            .imports(component.engine())
            .map(|(name, _)| name.to_owned())
            .collect();
        Inspection {
            needs: matching(&imports, GRANTED_BY),
            notes: matching(&imports, NOTED_FOR),
            exports,
            imports,
        }
    }
}

/// What `table` says of the imports, each saying once.
fn matching(imports: &[String], table: &[(&str, &'static str)]) -> Vec<&'static str> {
    let mut said: Vec<&'static str> = Vec::new();
    for (prefix, saying) in table {
        if imports.iter().any(|i| i.starts_with(prefix)) && !said.contains(saying) {
            said.push(saying);
        }
    }
    said
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
            matching(&imports, GRANTED_BY),
            vec!["dns = true (DNS lookups)", "store = true (the key-value store)"]
        );
        assert!(matching(&["wasmtpd:plugin/types@0.1.0".into()], GRANTED_BY).is_empty());
        assert_eq!(
            matching(&["wasi:sockets/tcp@0.2.6".into()], NOTED_FOR),
            vec!["no socket is ever granted: connecting or listening fails"]
        );
    }
}
