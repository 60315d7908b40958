//! Compiling a component. Cranelift's working memory for a big guest (a Python or
//! JavaScript interpreter: 12-20 MB of wasm) is hundreds of MiB, which the allocator keeps
//! once freed: a server that compiled the JavaScript example stayed at 366 MiB resident,
//! against 50 MiB when it loaded the same component from the cache (and 150 MiB after
//! handing the free memory back with `malloc_trim`). So when there is a cache, a big
//! component is compiled into it by a child process (`wasmtpd --compile`), whose memory
//! goes when it exits, and the server then loads it from the cache. If the child fails,
//! the server compiles it itself: that costs memory, never the plugin.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    let bytes = read_component(path)?;
    Component::new(&engine.engine, &bytes)
        .anyhow()
        .with_context(|| format!("{}: not a valid component", path.display()))?;
    Ok(())
}

/// The bytes of the WebAssembly file at `path`, refused if they are not one.
pub fn read_component(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !bytes.starts_with(b"\0asm") {
        bail!("{} is not a WebAssembly file", path.display());
    }
    Ok(bytes)
}

/// How long the compiler process may take (a Python plugin: about 15 s here).
const CHILD_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs `wasmtpd --compile PATH --cache-dir CACHE` and waits for it. The binary is this
/// process's own image (`/proc/self/exe`), even if the file was replaced or deleted since
/// it started: another version would compile under another cache key. It inherits the
/// environment, which the cache key may depend on.
fn compile_in_child(path: &Path, cache: &Path) -> anyhow::Result<()> {
    let exe = if Path::new("/proc/self/exe").exists() {
        PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe().context("cannot find the wasmtpd binary to compile with")?
    };
    // Absolute: a relative path that starts with `-` would read as an option.
    let path = std::path::absolute(path).with_context(|| format!("{}", path.display()))?;
    let cache = std::path::absolute(cache).with_context(|| format!("{}", cache.display()))?;
    let mut child = Command::new(&exe)
        .arg("--compile")
        .arg(&path)
        .arg("--cache-dir")
        .arg(&cache)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    // Read as it comes, so that a child that says much never blocks on a full pipe.
    let stderr = child.stderr.take();
    let said = std::thread::spawn(move || {
        let mut said = String::new();
        if let Some(mut stderr) = stderr {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut said);
        }
        said
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for the compiler process")? {
            break status;
        }
        if started.elapsed() > CHILD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the compiler process took more than {} s", CHILD_TIMEOUT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if !status.success() {
        let said = said.join().unwrap_or_default();
        let last = said.lines().last().unwrap_or("").trim();
        bail!("the compiler process ({status}) failed: {last}");
    }
    Ok(())
}
