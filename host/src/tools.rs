//! The plugin author's tools: `wasmtpd new`, `wasmtpd check` and `wasmtpd compile`. Each
//! does one thing and exits.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

use crate::config::Config;
use crate::plugin::inspect::Inspection;
use crate::plugin::{Plugin, PluginEngine, catalog, compile};
use crate::scaffold::{self, Language, NewPlugin};

/// `wasmtpd new`: the folder NAME in the working directory, and what to do next.
pub fn new_plugin(language: Language, name: &str, hooks: &[String]) -> anyhow::Result<ExitCode> {
    let plugin = NewPlugin::new(language, name, hooks)?;
    scaffold::write(Path::new(name), &plugin)?;
    println!(
        "wrote {name}/, a plugin in {}; next, as {name}/README.md says:",
        language.name()
    );
    println!("    cd {name}");
    for step in plugin.readme().lines().filter(|l| l.starts_with("- ")) {
        println!("    {step}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `wasmtpd check FILE`: the plugin loaded as the server would load it (compiled, linked,
/// instantiated once under a memory cap of `memory_mib` and a time budget of
/// `time_budget_ms`); what it exports and imports on stdout. A failure to load is the
/// error, exit 1.
pub async fn check(
    engine: &PluginEngine,
    config: &Config,
    file: &Path,
    memory_mib: u64,
    time_budget_ms: u64,
) -> anyhow::Result<ExitCode> {
    let spec = catalog::file_spec(file, memory_mib, time_budget_ms, config)?;
    let plugin = Plugin::load(engine, spec).await.with_context(|| {
        format!(
            "{} cannot be a wasmtpd plugin (checked with memory_mib = {memory_mib}, time_budget_ms = \
             {time_budget_ms}, nothing granted)",
            file.display()
        )
    })?;
    let inspection = Inspection::of(&plugin);
    println!("{}: a wasmtpd plugin, version {}", file.display(), plugin.version);
    println!("  starts within memory_mib = {memory_mib}");
    let hooks = plugin.hook_names();
    println!(
        "  hooks: {}",
        if hooks.is_empty() {
            "none".to_owned()
        } else {
            hooks.join(", ")
        }
    );
    println!(
        "  stateless: {}",
        match plugin.stateless {
            true => "yes (its instances are shared by sessions)",
            false => "no (an instance a session)",
        }
    );
    println!("  exports:");
    for name in &inspection.exports {
        println!("    {name}");
    }
    println!("  imports:");
    for name in &inspection.imports {
        println!("    {name}");
    }
    match inspection.needs.is_empty() {
        true => println!("  needs no capability granted"),
        false => {
            println!("  imports that work only when granted in its [plugin.NAME] table:");
            for need in &inspection.needs {
                println!("    {need}");
            }
        }
    }
    for note in &inspection.notes {
        println!("  note: {note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `wasmtpd compile` (or `--compile`): each file into the cache, one log line each; exit 1
/// at the first failure.
pub fn compile_files(files: &[PathBuf], engine: &PluginEngine) -> anyhow::Result<ExitCode> {
    let Some(cache) = &engine.cache_dir else {
        anyhow::bail!("compiling ahead needs a cache to compile into, and cache_dir is \"\"");
    };
    for file in files {
        let started = Instant::now();
        compile::compile_file(engine, file)?;
        tracing::info!(
            "compiled {} into {} in {} ms",
            file.display(),
            cache.display(),
            started.elapsed().as_millis()
        );
    }
    Ok(ExitCode::SUCCESS)
}
