//! Compiling a component. Cranelift's working memory for a big guest (a Python or
//! JavaScript interpreter: 12-20 MB of wasm) is hundreds of MiB, which the allocator keeps
//! once freed: a server that compiled the JavaScript example stayed at 366 MiB resident,
//! against 50 MiB when it loaded the same component from the cache (and 150 MiB after
//! handing the free memory back with `malloc_trim`). So when there is a cache, a big
//! component is compiled into it by a child process (`wasmtpd --compile`), whose memory
//! goes when it exits, and the server then loads it from the cache. If the child fails,
//! the server compiles it itself: that costs memory, never the plugin.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{Context, bail};
use wasmtime::component::Component;

use super::WasmtimeResultExt;
use super::engine::PluginEngine;

/// Components this big or bigger are compiled in a child process.
pub const COMPILE_IN_CHILD: usize = 1 << 20;

/// The component in `bytes` (read from `path`, if it came from a file), compiled or taken
/// from the cache, off the runtime's threads.
pub async fn compile(engine: &PluginEngine, bytes: Arc<[u8]>, path: Option<&Path>) -> anyhow::Result<Component> {
    if let (Some(path), Some(cache)) = (path, &engine.cache_dir)
        && bytes.len() >= COMPILE_IN_CHILD
    {
        let (path, cache) = (path.to_owned(), cache.clone());
        let child = tokio::task::spawn_blocking(move || compile_in_child(&path, &cache)).await;
        match child.context("the compiler thread failed").and_then(|r| r) {
            Ok(()) => {}
            Err(e) => tracing::warn!("compiling in the server instead: {e:#}"),
        }
    }
    let engine = engine.engine.clone();
    tokio::task::spawn_blocking(move || Component::new(&engine, &bytes).anyhow())
        .await
        .context("the compiler thread failed")?
}

/// `wasmtpd --compile`: the component in `path` compiled, which leaves it in the
/// engine's cache.
pub fn compile_file(engine: &PluginEngine, path: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !bytes.starts_with(b"\0asm") {
        bail!("{} is not a WebAssembly file", path.display());
    }
    Component::new(&engine.engine, &bytes)
        .anyhow()
        .with_context(|| format!("{}: not a valid component", path.display()))?;
    Ok(())
}

/// Runs `wasmtpd --compile PATH --cache-dir CACHE` and waits for it.
fn compile_in_child(path: &Path, cache: &Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the wasmtpd binary to compile with")?;
    let output = Command::new(&exe)
        .arg("--compile")
        .arg(path)
        .arg("--cache-dir")
        .arg(cache)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        let last = said.lines().last().unwrap_or("").trim();
        bail!("the compiler process ({}) failed: {last}", output.status);
    }
    Ok(())
}
