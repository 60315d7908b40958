//! The `wasmtpd` binary: reads the command line and configuration, starts the listeners,
//! reloads on file changes and SIGHUP, and on SIGINT/SIGTERM shuts down gracefully.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wasmtpd::admission::Admission;
use wasmtpd::cli::{Cli, Tool};
use wasmtpd::config::Config;
use wasmtpd::deliver;
use wasmtpd::health::{Health, Readiness};
use wasmtpd::message_room::MessageRoom;
use wasmtpd::metrics::Registry;
use wasmtpd::metrics_http;
use wasmtpd::plugin::engine::default_cache_dir;
use wasmtpd::plugin::{EngineOptions, PluginEngine, output};
use wasmtpd::rate::SharedRates;
use wasmtpd::reload::{self, FileWatcher};
use wasmtpd::service::Service;
use wasmtpd::signals::{Signal, Signals};
use wasmtpd::spool::Spool;
use wasmtpd::{health_probe, timer_anchor, tools, worker_threads};

fn main() -> ExitCode {
    let log = wasmtpd::log::init();
    let cli = Cli::parse();
    // A probe needs no runtime, and says nothing but its answer.
    let result = match &cli.command {
        Some(Tool::Health { address, ready }) => health(&cli, *address, *ready),
        _ => serve_or_tool(cli),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    };
    wasmtpd::kv::flush_shared();
    output::flush_stdout();
    log.flush();
    code
}

/// `wasmtpd health`: the address given, else the configuration's `metrics` (read only
/// then: a probe with an address does not depend on the file parsing).
fn health(cli: &Cli, address: Option<std::net::SocketAddr>, ready: bool) -> anyhow::Result<ExitCode> {
    cli.check_tool_alone()?;
    let metrics = match address {
        Some(address) => address,
        None => cli
            .load_config()?
            .metrics
            .context("health: give the metrics address, or a --config that sets metrics")?,
    };
    health_probe::probe(metrics, ready)
}

fn serve_or_tool(cli: Cli) -> anyhow::Result<ExitCode> {
    worker_threads::for_this_process()
        .and_then(|(workers, why)| {
            tracing::info!("{why}");
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .context("cannot start the runtime")
        })
        .and_then(|runtime| runtime.block_on(run(cli)))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    cli.check_tool_alone()?;
    if let Some(Tool::New { language, name, hooks }) = &cli.command {
        return tools::new_plugin(*language, name, hooks);
    }
    let config = cli.load_config()?;
    let engine = PluginEngine::new(&EngineOptions {
        cache_dir: match &config.cache_dir {
            Some(dir) if dir.as_os_str().is_empty() => None,
            Some(dir) => Some(dir.clone()),
            None => default_cache_dir(),
        },
        // The tools instantiate a plugin or two; a server, what its sessions may hold.
        max_instances: match cli.command.is_some() || !cli.compile.is_empty() {
            true => TOOL_INSTANCES,
            false => plugin_instances(&config),
        },
    })?;
    if let Some(file) = &cli.deliver {
        return deliver_file(&cli, file, &config, &engine).await;
    }
    if !cli.compile.is_empty() {
        return tools::compile_files(&cli.compile, &engine);
    }
    match &cli.command {
        Some(Tool::Check {
            file,
            memory_mib,
            time_budget_ms,
        }) => return tools::check(&engine, &config, file, *memory_mib, *time_budget_ms).await,
        Some(Tool::Compile { files }) => return tools::compile_files(files, &engine),
        Some(Tool::New { .. } | Tool::Health { .. }) | None => {}
    }
    tokio::spawn(timer_anchor::stand());
    serve(cli, config, engine).await.map(|()| ExitCode::SUCCESS)
}

/// `--deliver`: the dialogue on stderr, plugins' stdout on stdout; exit 0 if the message
/// was accepted, 75 (sendmail's EX_TEMPFAIL) if deferred, 1 if refused.
async fn deliver_file(cli: &Cli, file: &Path, config: &Config, engine: &PluginEngine) -> anyhow::Result<ExitCode> {
    let message = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let delivery = deliver::deliver(engine, config, &message, &cli.from, &cli.to).await?;
    for line in &delivery.dialogue {
        eprintln!("{line}");
    }
    Ok(match delivery.last.code {
        200..=299 => ExitCode::SUCCESS,
        400..=499 => ExitCode::from(75),
        _ => ExitCode::FAILURE,
    })
}

/// The configured spool, which must open; else the first default that does, and if none
/// does the server goes on without one (messages that find no room in memory get 452).
fn open_spool(config: &Config) -> anyhow::Result<Option<Spool>> {
    let limit = config.limits.max_spool_bytes;
    if let Some(dir) = &config.spool_dir {
        return Ok(Some(Spool::open(dir.clone(), limit).context("cannot use the spool")?));
    }
    let mut failures = Vec::new();
    for dir in Spool::default_dirs() {
        match Spool::open(dir, limit) {
            Ok(spool) => return Ok(Some(spool)),
            Err(e) => failures.push(e.to_string()),
        }
    }
    tracing::warn!(
        "no spool ({}): a message that finds no room in memory is deferred",
        failures.join("; ")
    );
    Ok(None)
}

async fn serve(cli: Cli, config: Config, engine: PluginEngine) -> anyhow::Result<()> {
    let mut signals = Signals::new().context("cannot install signal handlers")?;
    let limits = &config.limits;
    let mut registry = Registry::default();
    let shared_rates = match &limits.rates_redis {
        Some(url) => {
            let shared = SharedRates::new(url, registry.shared_rates())?;
            shared.watch();
            Some(shared)
        }
        None => None,
    };
    let admission = Admission::with_rates(
        limits.max_connections,
        limits.max_connections_per_ip,
        limits.connections_per_ip_per_minute,
        limits.commands_per_ip_per_minute,
        shared_rates,
    )
    .trusting(limits.trusted_networks.clone());
    let shutdown = CancellationToken::new();
    let metrics = Arc::new(registry);
    // Bound first, so that an orchestrator sees the server start (`/readyz`: 503 until
    // plugins are loaded and listeners bound) and drain; it stops once the server has.
    let health = Arc::new(Health::default());
    let drained = CancellationToken::new();
    if let Some(address) = config.metrics {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot serve metrics on {address}"))?;
        tracing::info!("metrics on http://{}/metrics", listener.local_addr()?);
        let serving = metrics_http::serve(listener, Arc::clone(&metrics), Arc::clone(&health), drained.clone());
        tokio::spawn(serving);
    }
    // However this function ends, the metrics listener ends with it.
    let _drained = drained.clone().drop_guard();
    let spool = open_spool(&config)?;
    let cleaned = spool.as_ref().map_or(0, Spool::clean);
    if cleaned > 0 {
        tracing::warn!(
            files = cleaned,
            "removed spool files left by a process that ended without removing them"
        );
    }
    let room = MessageRoom::new(config.limits.max_message_memory, spool);
    let mut service = Service::new(engine, admission, metrics, room, shutdown.clone());
    // Watching starts before listening: a change made once the server listens is seen.
    let mut watcher = FileWatcher::new()?;
    watcher.watch(reload::files_of(&config, cli.config.as_deref()));
    let serving = service.apply(&config).await?;
    health.set(Readiness::Ready);
    tracing::info!("serving {serving}");
    let mut grace = config.limits.shutdown_grace();

    let signal = loop {
        let why = tokio::select! {
            signal = signals.next() => match signal {
                Signal::Stop(name) => break name,
                Signal::Reload => "SIGHUP".to_owned(),
            },
            changed = watcher.changed() => {
                let names: Vec<String> = changed.iter().map(|p| p.display().to_string()).collect();
                format!("{} changed", names.join(", "))
            }
        };
        if let Some(newer) = reload(&cli, &mut service, &why).await {
            watcher.watch(reload::files_of(&newer, cli.config.as_deref()));
            grace = newer.limits.shutdown_grace();
            let ignored = config.start_only_changes(&newer);
            if !ignored.is_empty() {
                tracing::warn!(
                    "reload: {} changed, but {} read at start only: restart to apply",
                    ignored.join(", "),
                    if ignored.len() == 1 { "it is" } else { "they are" }
                );
            }
        }
    };

    health.set(Readiness::Draining);
    tracing::info!(
        "{signal}: shutting down; {} sessions open, transactions in flight may finish",
        service.admission().open_sessions()
    );
    let sessions = service.stop_accepting().await;
    if tokio::time::timeout(grace, sessions.wait()).await.is_err() {
        tracing::warn!(
            "{} sessions still open after {}s; exiting anyway",
            service.admission().open_sessions(),
            grace.as_secs()
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// Reads the configuration again and applies it; on any error the running one stays.
async fn reload(cli: &Cli, service: &mut Service, why: &str) -> Option<Config> {
    let started = Instant::now();
    let applied = match cli.load_config() {
        Ok(config) => service.apply(&config).await.map(|serving| (config, serving)),
        Err(e) => Err(e),
    };
    service.metrics().reload(applied.is_ok());
    match applied {
        Ok((config, serving)) => {
            tracing::info!(
                "reloaded ({why}) in {} ms; now serving {serving}",
                started.elapsed().as_millis()
            );
            Some(config)
        }
        Err(e) => {
            // One line, whatever the error's own text holds.
            let cause = format!("{e:#}").replace('\n', " ");
            tracing::warn!("reload refused ({why}), still serving the previous version: {cause}");
            None
        }
    }
}

/// Instance slots for `check`, `compile` and `--compile`.
const TOOL_INSTANCES: u32 = 16;

/// Instance slots to preallocate: every session may hold one instance of each plugin in
/// its chain, and on a routing listener of each tenant's chain too. Fixed at start: a
/// reload that lengthens chains shares the same pool.
fn plugin_instances(config: &Config) -> u32 {
    let tenant_plugins: usize = config.tenants.iter().map(|t| t.plugins.len()).sum();
    let per_session = config
        .listeners
        .iter()
        .map(|l| config.chain_of(l).len() + if l.route_by_domain { tenant_plugins } else { 0 })
        .max()
        .unwrap_or(1);
    // And the instances stateless plugins keep between calls: as many as the runtime has
    // threads, for each plugin of each chain.
    let chains = config.listeners.len() + config.tenants.len();
    let warm = chains
        .saturating_mul(per_session)
        .saturating_mul(wasmtpd::plugin::share::threads());
    let wanted = config
        .limits
        .max_connections
        .saturating_mul(per_session)
        .saturating_add(warm)
        .max(16);
    u32::try_from(wanted).unwrap_or(u32::MAX)
}
