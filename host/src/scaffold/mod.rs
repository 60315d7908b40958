//! `wasmtpd new LANGUAGE NAME`: a ready plugin folder, which builds outside this
//! repository. [`plugin_files`] says what goes in it (pure, tested); [`write`] puts it on
//! disk.

mod js;
mod python;
mod rust;

use std::path::{Path, PathBuf};

use anyhow::Context;
use thiserror::Error;

use crate::hook::HookKind;

/// The host's WIT, copied into each plugin's `wit/deps`: what it builds against.
const WIT: &[(&str, &str)] = &[
    ("wit/deps/plugin/plugin.wit", include_str!("../../../wit/plugin.wit")),
    (
        "wit/deps/keyvalue/atomics.wit",
        include_str!("../../../wit/deps/keyvalue/atomics.wit"),
    ),
    (
        "wit/deps/keyvalue/batch.wit",
        include_str!("../../../wit/deps/keyvalue/batch.wit"),
    ),
    (
        "wit/deps/keyvalue/store.wit",
        include_str!("../../../wit/deps/keyvalue/store.wit"),
    ),
    (
        "wit/deps/keyvalue/world.wit",
        include_str!("../../../wit/deps/keyvalue/world.wit"),
    ),
];

/// A message to try the plugin with (`--deliver`).
const SAMPLE_MESSAGE: &str = "From: Alice <alice@example.org>\r\nTo: Bob <bob@example.com>\r\n\
Subject: A first message\r\n\r\nHello from wasmtpd.\r\n";

/// The languages `wasmtpd new` writes plugins in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    Rust,
    Python,
    Js,
}

impl Language {
    /// As written on the command line.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self).map_or_else(String::new, |v| v.get_name().to_owned())
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ScaffoldError {
    #[error(
        "{0:?} is not a plugin name: lower-case letters and digits in words joined by dashes, starting with a letter (e.g. my-filter)"
    )]
    BadName(String),
    #[error("{0:?} is the name of a plugin built into wasmtpd: choose another")]
    BuiltIn(String),
    #[error("{0:?} is not a hook; the hooks are {1}")]
    UnknownHook(String, String),
}

/// A plugin to write: its language, its name and the hooks to stub.
pub struct NewPlugin {
    pub language: Language,
    pub name: String,
    pub hooks: Vec<HookKind>,
}

impl NewPlugin {
    pub fn new(language: Language, name: &str, hooks: &[String]) -> Result<NewPlugin, ScaffoldError> {
        if !is_wit_name(name) {
            return Err(ScaffoldError::BadName(name.to_owned()));
        }
        // Its configuration names it in a chain, where a built-in's name means the built-in.
        if crate::plugin::builtin::names().contains(&name) {
            return Err(ScaffoldError::BuiltIn(name.to_owned()));
        }
        let mut kinds = Vec::new();
        for hook in hooks.iter().map(|h| h.trim()).filter(|h| !h.is_empty()) {
            let kind = HookKind::ALL
                .iter()
                .find(|k| k.name() == hook.to_ascii_lowercase())
                .ok_or_else(|| ScaffoldError::UnknownHook(hook.to_owned(), hook_names()))?;
            if !kinds.contains(kind) {
                kinds.push(*kind);
            }
        }
        Ok(NewPlugin {
            language,
            name: name.to_owned(),
            hooks: kinds,
        })
    }

    /// The name with underscores: Rust's crate and the file cargo builds.
    fn snake(&self) -> String {
        self.name.replace('-', "_")
    }

    /// Where the built component lands, relative to the plugin's folder.
    pub fn component_path(&self) -> String {
        match self.language {
            Language::Rust => format!("target/wasm32-wasip2/release/{}.wasm", self.snake()),
            Language::Python | Language::Js => format!("{}.wasm", self.name),
        }
    }

    /// Every file of the plugin's folder, by path relative to it.
    pub fn files(&self) -> Vec<(PathBuf, String)> {
        let mut files: Vec<(PathBuf, String)> = WIT
            .iter()
            .map(|(path, text)| (PathBuf::from(path), (*text).to_owned()))
            .collect();
        files.push(("wit/world.wit".into(), self.world()));
        files.push((format!("{}.toml", self.name).into(), self.config()));
        files.push(("message.eml".into(), SAMPLE_MESSAGE.to_owned()));
        files.push(("README.md".into(), self.readme()));
        let own = match self.language {
            Language::Rust => rust::files(self),
            Language::Python => python::files(self),
            Language::Js => js::files(self),
        };
        files.extend(own);
        files
    }

    /// The plugin's world: the host's plugin world, `stateless` and the chosen hooks.
    fn world(&self) -> String {
        let mut text = format!(
            "// What this plugin exports besides process-message (the `plugin` world's), and\n\
             // what it may import (the host's interfaces, which the include brings). The\n\
             // contract is wit/deps/plugin/plugin.wit, a copy of the wasmtpd it was made for.\n\
             package local:{name};\n\nworld {name} {{\n    include wasmtpd:plugin/plugin@0.1.0;\n    \
             export wasmtpd:plugin/stateless@0.1.0;\n",
            name = self.name
        );
        for hook in &self.hooks {
            text += &format!("    export wasmtpd:plugin/{}-hook@0.1.0;\n", hook.name());
        }
        text + "}\n"
    }

    fn config(&self) -> String {
        let memory = match self.language {
            Language::Rust => "",
            Language::Python | Language::Js => {
                "memory_mib = 128  # the interpreter's heap and a big message (default 64)\n"
            }
        };
        format!(
            "# Loads {name}, then prints each message it lets through (debug-printer).\n\
             [[listener]]\naddress = \"127.0.0.1:1025\"\nplugins = [\"{name}\", \"debug-printer\"]\n\n\
             [plugin.{name}]\nsource = \"{path}\"  # relative to this file\n{memory}\
             # [plugin.{name}.settings] is what host::get-setting reads:\n\
             # [plugin.{name}.settings]\n# greeting = \"hello\"\n",
            name = self.name,
            path = self.component_path(),
        )
    }

    /// The folder's README: a line each to build, run, test and check it.
    pub fn readme(&self) -> String {
        let build = match self.language {
            Language::Rust => "cargo build --target wasm32-wasip2 --release   (once: rustup target add wasm32-wasip2)",
            Language::Python => "./build.sh   (installs componentize-py in .venv the first time)",
            Language::Js => "npm install && npm run build",
        };
        format!(
            "# {name}: a wasmtpd plugin\n\n\
             - Build: `{build}`\n\
             - Run: `wasmtpd --config {name}.toml` (listens on 127.0.0.1:1025; the plugin, then debug-printer)\n\
             - Test: `wasmtpd --config {name}.toml --deliver message.eml --from alice@example.org --to bob@example.com`\n\
             - Check: `wasmtpd check {path}{check}` (exports, imports, capabilities)\n\
             - The contract: `wit/deps/plugin/plugin.wit`; the source says where to start.\n",
            name = self.name,
            path = self.component_path(),
            check = match self.language {
                Language::Rust => "",
                Language::Python | Language::Js => " --memory-mib 128",
            },
        )
    }
}

/// Writes the plugin's folder at `dir`, which must not exist yet.
pub fn write(dir: &Path, plugin: &NewPlugin) -> anyhow::Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            anyhow::bail!("{} exists already: wasmtpd new writes a new folder", dir.display())
        }
        created => created.with_context(|| format!("cannot create {}", dir.display()))?,
    }
    // Half a folder would be refused as existing on the next try: none is left.
    write_files(dir, plugin).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(dir);
    })
}

fn write_files(dir: &Path, plugin: &NewPlugin) -> anyhow::Result<()> {
    for (path, text) in plugin.files() {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        if path.extension().is_some_and(|e| e == "sh") {
            make_executable(&path)?;
        }
    }
    Ok(())
}

fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", path.display()))
}

/// WIT's keywords (wit-parser's lexer): a package or world cannot be named one.
const WIT_KEYWORDS: &[&str] = &[
    "as",
    "async",
    "bool",
    "borrow",
    "char",
    "constructor",
    "enum",
    "error-context",
    "export",
    "f32",
    "f64",
    "flags",
    "from",
    "func",
    "future",
    "import",
    "include",
    "interface",
    "list",
    "map",
    "option",
    "own",
    "package",
    "record",
    "resource",
    "result",
    "s16",
    "s32",
    "s64",
    "s8",
    "static",
    "stream",
    "string",
    "tuple",
    "type",
    "u16",
    "u32",
    "u64",
    "u8",
    "use",
    "variant",
    "with",
    "world",
];

/// A WIT identifier in kebab case, lower-case: words of letters and digits joined by
/// single dashes, each word starting with a letter; and not a keyword. Such a name is
/// also safe as a path under the working directory, in a shell script and in TOML: it
/// has no `/`, `.`, space or quote.
fn is_wit_name(name: &str) -> bool {
    !name.is_empty()
        && !WIT_KEYWORDS.contains(&name)
        && name.split('-').all(|word| {
            word.starts_with(|c: char| c.is_ascii_lowercase())
                && word.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// A hook as the stubs write it: what it is for (the WIT's words, shortened), its
/// parameters (snake case, with their Rust and Python types), and whether it is a notice
/// (nothing answered).
struct HookStub {
    doc: &'static str,
    params: &'static [(&'static str, &'static str, &'static str)],
    notice: bool,
}

fn hook_stub(kind: HookKind) -> HookStub {
    let (doc, params): (&str, &[(&str, &str, &str)]) = match kind {
        HookKind::Connect => (
            "A client connected: a 4xx or 5xx refuses it instead of the greeting.",
            &[("peer", "Peer", "types.Peer")],
        ),
        HookKind::Helo => (
            "HELO or EHLO (extended): a 4xx or 5xx refuses the greeting.",
            &[("name", "String", "str"), ("extended", "bool", "bool")],
        ),
        HookKind::Mail => (
            "MAIL FROM: the sender without angle brackets (\"\" for <>) and its parameters; a 4xx or 5xx refuses it.",
            &[("mail_from", "String", "str"), ("options", "Vec<String>", "List[str]")],
        ),
        HookKind::Rcpt => (
            "RCPT TO: one recipient without angle brackets and its parameters; a 4xx or 5xx refuses it only.",
            &[("rcpt_to", "String", "str"), ("options", "Vec<String>", "List[str]")],
        ),
        HookKind::Data => (
            "DATA, before 354: a 4xx or 5xx refuses the message before it is sent.",
            &[],
        ),
        HookKind::Auth => (
            "AUTH over TLS: a 2xx accepts, a 5xx refuses, a 4xx defers; none asks the next plugin.",
            &[("identity", "String", "str"), ("password", "String", "str")],
        ),
        HookKind::Rset => (
            "RSET, or a new HELO/EHLO: the transaction is abandoned (a notice: nothing is answered).",
            &[],
        ),
        HookKind::Quit => (
            "QUIT, or the client left: the session is over (a notice: nothing is answered).",
            &[],
        ),
    };
    HookStub {
        doc,
        params,
        notice: kind.is_notice(),
    }
}

/// `mail_from` → `MailFrom` (`upper_first`) or `mailFrom`.
fn camel(snake: &str, upper_first: bool) -> String {
    let mut out = String::new();
    for (i, word) in snake.split(['_', '-']).enumerate() {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            match i > 0 || upper_first {
                true => out.extend(first.to_uppercase()),
                false => out.push(first),
            }
            out.extend(chars);
        }
    }
    out
}

/// Whether the stub answers `stateless` with true: only a plugin without hooks, whose
/// handler keeps nothing; one with hooks may mean to keep something between them.
fn keeps_no_state(plugin: &NewPlugin) -> bool {
    plugin.hooks.is_empty()
}

fn hook_names() -> String {
    let names: Vec<&str> = HookKind::ALL.iter().map(|k| k.name()).collect();
    names.join(", ")
}

/// A language's source or build template filled for `plugin`: `{{name}}`, `{{hooks}}`
/// (the stub `hook` writes for each chosen hook) and `{{stateless}}` (`booleans`: how the
/// language writes false and true).
fn fill_for(plugin: &NewPlugin, template: &str, hook: fn(HookKind) -> String, booleans: [&str; 2]) -> String {
    let hooks: String = plugin.hooks.iter().map(|k| hook(*k)).collect();
    let stateless = booleans[usize::from(keeps_no_state(plugin))];
    fill(
        template,
        &[("name", &plugin.name), ("hooks", &hooks), ("stateless", stateless)],
    )
}

/// The text of `template` with each `{{key}}` replaced by its value.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    values.iter().fold(template.to_owned(), |text, (key, value)| {
        text.replace(&format!("{{{{{key}}}}}"), value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file<'a>(files: &'a [(PathBuf, String)], path: &str) -> &'a str {
        &files
            .iter()
            .find(|(p, _)| p == Path::new(path))
            .unwrap_or_else(|| panic!("no {path}"))
            .1
    }

    #[test]
    fn names_must_be_wit_identifiers() {
        for good in ["my-filter", "a", "spam2-check"] {
            assert!(NewPlugin::new(Language::Rust, good, &[]).is_ok(), "{good}");
        }
        for bad in [
            "",
            "My-filter",
            "my_filter",
            "2fa",
            "a--b",
            "a-",
            "-a",
            "a-2b",
            "../x",
            "map",
            "world",
            "error-context",
        ] {
            assert_eq!(
                NewPlugin::new(Language::Rust, bad, &[]).err(),
                Some(ScaffoldError::BadName(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_built_in_plugins_name_is_refused() {
        assert_eq!(
            NewPlugin::new(Language::Rust, "debug-printer", &[]).err(),
            Some(ScaffoldError::BuiltIn("debug-printer".into()))
        );
    }

    #[test]
    fn hooks_are_named_as_the_wit_names_them() {
        let plugin = NewPlugin::new(Language::Js, "x", &["rcpt".into(), "MAIL".into(), "rcpt".into()]).unwrap();
        assert_eq!(plugin.hooks, vec![HookKind::Rcpt, HookKind::Mail]);
        let err = NewPlugin::new(Language::Js, "x", &["ehlo".into()]).err().unwrap();
        assert!(
            err.to_string()
                .contains("\"ehlo\" is not a hook; the hooks are connect, helo"),
            "{err}"
        );
    }

    #[test]
    fn each_language_exports_its_world_and_stubs_every_chosen_hook() {
        let all: Vec<String> = HookKind::ALL.iter().map(|k| k.name().to_owned()).collect();
        for language in [Language::Rust, Language::Python, Language::Js] {
            let plugin = NewPlugin::new(language, "my-filter", &all).unwrap();
            let files = plugin.files();
            let world = file(&files, "wit/world.wit");
            assert!(world.contains("world my-filter {"), "{world}");
            assert!(file(&files, "wit/deps/plugin/plugin.wit").contains("package wasmtpd:plugin@0.1.0;"));
            let config = file(&files, "my-filter.toml");
            assert!(
                config.contains(&format!("source = \"{}\"", plugin.component_path())),
                "{config}"
            );
            let source = match language {
                Language::Rust => file(&files, "src/lib.rs"),
                Language::Python => file(&files, "app.py"),
                Language::Js => file(&files, "app.js"),
            };
            for hook in HookKind::ALL {
                assert!(world.contains(&format!("export wasmtpd:plugin/{}-hook@0.1.0;", hook.name())));
                let stub = match language {
                    Language::Rust => format!("fn on_{}(", hook.name()),
                    Language::Python => format!("def on_{}(self", hook.name()),
                    Language::Js => format!("on{}{}(", hook.name()[..1].to_uppercase(), &hook.name()[1..]),
                };
                assert!(source.contains(&stub), "{language:?}: no {stub} in\n{source}");
            }
            assert!(!source.contains("{{"), "an unfilled placeholder in\n{source}");
        }
    }

    #[test]
    fn a_plugin_with_hooks_does_not_say_it_is_stateless() {
        for language in [Language::Rust, Language::Python, Language::Js] {
            let says = |hooks: &[String], answer: bool| {
                let files = NewPlugin::new(language, "x", hooks).unwrap().files();
                let (name, line) = match language {
                    Language::Rust => ("src/lib.rs", format!("-> bool {{\n        {answer}\n")),
                    Language::Python => ("app.py", format!("return {}", if answer { "True" } else { "False" })),
                    Language::Js => ("app.js", format!("return {answer};")),
                };
                file(&files, name).contains(&line)
            };
            assert!(says(&[], true), "{language:?}");
            assert!(says(&["mail".into()], false), "{language:?}");
            assert!(!says(&["mail".into()], true), "{language:?}");
        }
    }

    #[test]
    fn camel_case_names() {
        assert_eq!(camel("mail_from", false), "mailFrom");
        assert_eq!(camel("rcpt", true), "Rcpt");
        assert_eq!(camel("peer", false), "peer");
    }

    #[test]
    fn the_copied_wit_is_every_file_of_wit() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        let mut on_disk = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    on_disk.push(path.strip_prefix(&root).unwrap().to_path_buf());
                }
            }
        }
        let mut copied: Vec<PathBuf> = WIT
            .iter()
            .map(|(path, _)| {
                let path = Path::new(path).strip_prefix("wit/deps").unwrap();
                // plugin/plugin.wit is wit/plugin.wit; keyvalue/x is wit/deps/keyvalue/x.
                match path.strip_prefix("plugin") {
                    Ok(rest) => rest.to_path_buf(),
                    Err(_) => Path::new("deps").join(path),
                }
            })
            .collect();
        on_disk.sort();
        copied.sort();
        assert_eq!(
            copied, on_disk,
            "a file added to wit/ must be copied by wasmtpd new too"
        );
    }

    #[test]
    fn without_hooks_only_the_handler_and_stateless_are_written() {
        let plugin = NewPlugin::new(Language::Python, "plain", &[]).unwrap();
        let files = plugin.files();
        assert!(!file(&files, "wit/world.wit").contains("-hook@"));
        assert!(!file(&files, "app.py").contains("def on_"));
        assert!(file(&files, "app.py").contains("def process_message(self"));
    }
}
