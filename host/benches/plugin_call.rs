//! Per-message plugin overhead through a plugin chain, as sessions use it: a new session
//! (a fresh instance plus one `process-message` call: what a session pays for its first
//! message), and the same session again (a warm instance: each further message).
//! Prints microseconds per message on stderr: `cargo bench --bench plugin_call > /dev/null`.
//! Names after `--` pick what runs (`-- debug-printer python`), for profiling one plugin.
//! Then the Python and JavaScript examples, if examples/build-plugins built them: their
//! compile time cold and from the cache, and their cost a message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtpd::config::Config;
use wasmtpd::handler::{Handlers, Message, Verdict};
use wasmtpd::plugin::share::TenantShare;
use wasmtpd::plugin::{EngineOptions, Plugin, PluginChain, PluginEngine, catalog};
use wasmtpd_protocol::Address;

const ROUNDS: u32 = 20_000;

fn message(size: usize) -> Message {
    let mut data = b"Subject: bench\r\n\r\n".to_vec();
    data.resize(size - 2, b'x');
    data.extend_from_slice(b"\r\n");
    Message {
        peer: "127.0.0.1:40000".parse().unwrap(),
        mail_from: Some(Address::new_unchecked("a@example.org")),
        rcpt_to: vec![Address::new_unchecked("b@example.com")],
        data: data.into(),
        mail_options: vec!["SIZE=1024".into()],
        rcpt_options: vec![],
        size_limit: 33_554_432,
        id: "bench".into(),
        received: "Received: from client.test ([127.0.0.1])".into(),
    }
}

fn per_message(elapsed: Duration, rounds: u32) -> f64 {
    elapsed.as_secs_f64() * 1e6 / f64::from(rounds)
}

async fn bench(engine: &PluginEngine, name: &str, size: usize) -> anyhow::Result<()> {
    let plugin: Arc<Plugin> = Plugin::load(engine, catalog::spec(name, &Config::empty())?).await?;
    bench_plugin(plugin, name, size, ROUNDS).await
}

/// A test plugin built from plugins/testing (`component`, e.g. `editor.wasm`) as the
/// plugin `name`, with `table` lines in its `[plugin.NAME]` table (its grants), its
/// `settings`, and `server` tables beside it.
async fn bench_test_plugin(
    engine: &PluginEngine,
    name: &str,
    component: &str,
    (server, table, settings): (&str, &str, &str),
) -> anyhow::Result<()> {
    let path = format!("{}/{component}", env!("WASMTPD_PLUGINS_DIR"));
    let config: Config = toml::from_str(&format!(
        "{server}\n[plugin.{name}]\nsource = {path:?}\n{table}\n[plugin.{name}.settings]\n{settings}\n"
    ))?;
    let plugin: Arc<Plugin> = Plugin::load(engine, catalog::spec(name, &config)?).await?;
    bench_plugin(plugin, name, 1024, ROUNDS).await
}

/// The editor test plugin adding one header field: what an edit costs a message (compare
/// with `editor-none`, the same plugin making no edit).
async fn bench_edit(engine: &PluginEngine, name: &str, edits: &str) -> anyhow::Result<()> {
    bench_test_plugin(engine, name, "editor.wasm", ("", "", edits)).await
}

/// The misbehave test plugin in `mode` with `settings`, under `config` (the server's
/// tables): what a granted capability costs a message, against `kv-none` (the same
/// plugin opening a bucket and doing nothing).
async fn bench_probe(engine: &PluginEngine, name: &str, config: &str, settings: &str) -> anyhow::Result<()> {
    let grants = format!("store = true\ndns = true\nhttp = [\"127.0.0.1:{HTTP_PORT}\"]");
    bench_test_plugin(engine, name, "misbehave.wasm", (config, &grants, settings)).await
}

/// A loopback HTTP server answering `200 ok` to every request on a connection.
const HTTP_PORT: u16 = 18_461;

fn serve_http() {
    use std::io::{BufRead, BufReader, Write};
    let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", HTTP_PORT)) else {
        return;
    };
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if reader.get_mut().write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// A child process (redis-server, dnsmasq) stopped when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &str, args: &[&str]) -> Option<Child> {
    let child = std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(300));
    Some(Child(child))
}

/// The store, DNS and HTTP from a plugin, each beside the same plugin doing nothing.
async fn capabilities(engine: &PluginEngine, picked: &impl Fn(&str) -> bool) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("wasmtpd-bench-{}", std::process::id()));
    let embedded = format!("[store]\npath = {:?}\n", dir.join("store.redb"));
    let get_set = "mode = \"kv\"\nops = \"get k;set k v\"";
    if picked("kv-none") {
        bench_probe(engine, "kv-none", &embedded, "mode = \"kv\"\nops = \"noop\"").await?;
    }
    if picked("kv-embedded") {
        bench_probe(engine, "kv-embedded", &embedded, get_set).await?;
    }
    if picked("kv-redis") {
        let redis = spawn("redis-server", &["--port", "18462", "--save", "", "--appendonly", "no"]);
        match redis {
            Some(_redis) => {
                let config = "[store]\nredis = \"redis://127.0.0.1:18462/0\"";
                bench_probe(engine, "kv-redis", config, get_set).await?;
            }
            None => eprintln!("{:>13} (no redis-server here)", "kv-redis"),
        }
    }
    if picked("dns-cached") {
        let args = ["--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces"];
        let more = [
            "--listen-address=127.0.0.1",
            "--port=18463",
            "--user=root",
            "--pid-file=",
            "--address=/listed.test/127.0.0.2",
            // dnsmasq gives its own records a TTL of 0 unless told: cacheable, as real ones are.
            "--local-ttl=300",
        ];
        match spawn("/usr/sbin/dnsmasq", &[&args[..], &more[..]].concat()) {
            Some(_dnsmasq) => {
                let config = "[dns]\nservers = [\"127.0.0.1:18463\"]";
                let settings = "mode = \"dns\"\nquery = \"a listed.test\"";
                bench_probe(engine, "dns-cached", config, settings).await?;
            }
            None => eprintln!("{:>13} (no dnsmasq here)", "dns-cached"),
        }
    }
    if picked("http-local") {
        serve_http();
        let settings = format!("mode = \"http\"\nauthority = \"127.0.0.1:{HTTP_PORT}\"\npath = \"/\"");
        bench_probe(engine, "http-local", "", &settings).await?;
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

async fn bench_plugin(plugin: Arc<Plugin>, name: &str, size: usize, rounds: u32) -> anyhow::Result<()> {
    // The chain as a session uses it: a new session instantiates on its first message.
    let chain = PluginChain::new(
        vec![plugin],
        Arc::default(),
        Arc::new(TenantShare::new("bench", Some(1), Some(0))),
    );
    let message = Arc::new(message(size));
    let accept = |verdict: Verdict| match verdict {
        Verdict::Continue => Ok(()),
        // The capability probes answer what they did: a 250 is a success.
        Verdict::Reply { reply, .. } if reply.code() == 250 => Ok(()),
        other => Err(anyhow::anyhow!("{name} answered {other:?}")),
    };
    // Warm up the pool and the caches.
    for _ in 0..rounds / 20 {
        accept(chain.session(message.peer).process_message(&message).await)?;
    }
    let started = Instant::now();
    for _ in 0..rounds {
        accept(chain.session(message.peer).process_message(&message).await)?;
    }
    let fresh = per_message(started.elapsed(), rounds);
    let mut session = chain.session(message.peer);
    let started = Instant::now();
    for _ in 0..rounds {
        accept(session.process_message(&message).await)?;
    }
    let warm = per_message(started.elapsed(), rounds);
    eprintln!("{name:>13} {size:>8} {fresh:>24.1} {warm:>20.1}");
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let engine = PluginEngine::new(&EngineOptions {
        cache_dir: None,
        max_instances: 1024,
    })?;
    // Figures go to stderr: debug-printer's output goes to stdout (send it to /dev/null).
    eprintln!("{ROUNDS} messages each; microseconds per message");
    eprintln!(
        "{:>13} {:>8} {:>24} {:>20}",
        "plugin", "octets", "instantiate + call", "call (warm)"
    );
    let picked = picked();
    for (name, size) in [
        ("sink", 1024),
        ("sink", 102_400),
        ("filter", 1024),
        ("debug-printer", 1024),
    ] {
        if picked(name) {
            bench(&engine, name, size).await?;
        }
    }
    for (name, edits) in [
        ("editor-none", ""),
        ("editor-add", "\"edit.1\" = \"add-header|X-Spam-Flag|YES\""),
    ] {
        if picked(name) {
            bench_edit(&engine, name, edits).await?;
        }
    }
    // A 20 MiB message to a plugin that does not read it: handed whole (as every plugin
    // was before `message = "none"`) and not at all.
    for (name, part) in [("sink-20mib-whole", "whole"), ("sink-20mib-none", "none")] {
        if picked(name) {
            let config: Config = toml::from_str(&format!("[plugin.sink]\nmessage = \"{part}\"\n"))?;
            let plugin = Plugin::load(&engine, catalog::spec("sink", &config)?).await?;
            bench_plugin(plugin, name, 20 << 20, 200).await?;
        }
    }
    capabilities(&engine, &picked).await?;
    other_languages(&picked).await
}

/// Whether a plugin was asked for: every one when no name was given. Cargo passes
/// `--bench` itself, so options are not names.
fn picked() -> impl Fn(&str) -> bool {
    let names: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    move |name| names.is_empty() || names.iter().any(|n| n == name)
}

/// The examples in Python and JavaScript: compile time without a cache and from one, then
/// their cost a message like the others'.
async fn other_languages(picked: &impl Fn(&str) -> bool) -> anyhow::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins/examples");
    let cache = std::env::temp_dir().join(format!("wasmtpd-bench-cache-{}", std::process::id()));
    let engine = PluginEngine::new(&EngineOptions {
        cache_dir: Some(cache.clone()),
        max_instances: 64,
    })?;
    let mut loaded = Vec::new();
    for (name, file) in [
        ("python", "subject_filter.wasm"),
        ("javascript", "recipient_logger.wasm"),
    ] {
        let path = dir.join(file);
        if !picked(name) {
            continue;
        }
        if !path.exists() {
            eprintln!("{name}: {} not built (examples/build-plugins)", path.display());
            continue;
        }
        let config: Config = toml::from_str(&format!("[plugin.{name}]\nsource = {path:?}\nmemory_mib = 128\n"))?;
        let spec = || catalog::spec(name, &config);
        let started = Instant::now();
        Plugin::load(&engine, spec()?).await?;
        let cold = started.elapsed();
        let started = Instant::now();
        let plugin = Plugin::load(&engine, spec()?).await?;
        let cached = started.elapsed();
        if loaded.is_empty() {
            eprintln!(
                "\n{:>13} {:>10} {:>16} {:>16}",
                "plugin", "MB", "compile cold ms", "from cache ms"
            );
        }
        let mb = std::fs::metadata(&path)?.len() as f64 / 1e6;
        eprintln!(
            "{name:>13} {mb:>10.1} {:>16} {:>16}",
            cold.as_millis(),
            cached.as_millis()
        );
        loaded.push((name, plugin));
    }
    if !loaded.is_empty() {
        eprintln!("\n200 messages each; microseconds per message");
        eprintln!(
            "{:>13} {:>8} {:>24} {:>20}",
            "plugin", "octets", "instantiate + call", "call (warm)"
        );
    }
    for (name, plugin) in loaded {
        bench_plugin(plugin, name, 1024, 200).await?;
    }
    let _ = std::fs::remove_dir_all(cache);
    Ok(())
}
