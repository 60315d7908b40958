//! The `wasmtpd` binary: reads the command line and configuration, binds the listeners,
//! serves until SIGINT/SIGTERM, then shuts down gracefully.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wasmtpd::admission::Admission;
use wasmtpd::cli::Cli;
use wasmtpd::config::Config;
use wasmtpd::listener::ListenerContext;
use wasmtpd::plugin::engine::default_cache_dir;
use wasmtpd::plugin::{EngineOptions, PluginChain, PluginEngine, catalog};
use wasmtpd::{server, shutdown};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("WASMTPD_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let result = Cli::parse().into_config().and_then(|config| {
        tokio::runtime::Runtime::new()
            .context("cannot start the runtime")?
            .block_on(run(config))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let sessions = TaskTracker::new();
    let admission = Admission::new(config.limits.max_connections, config.limits.max_connections_per_ip);
    let engine = PluginEngine::new(&EngineOptions {
        cache_dir: match &config.cache_dir {
            Some(dir) if dir.as_os_str().is_empty() => None,
            Some(dir) => Some(dir.clone()),
            None => default_cache_dir(),
        },
        max_instances: plugin_instances(&config),
    })?;
    let chains = catalog::load_chains(&engine, &config).await?;
    let mut accept_loops = Vec::new();
    for (listener_config, chain) in config.listeners.iter().zip(chains) {
        let handlers = Arc::new(PluginChain::new(chain));
        let ctx = Arc::new(ListenerContext::new(
            config.hostname.clone(),
            config.limits.clone(),
            handlers,
        ));
        let listener = TcpListener::bind(listener_config.address)
            .await
            .with_context(|| format!("cannot listen on {}", listener_config.address))?;
        tracing::info!(
            "listening on {} (plugins: {})",
            listener.local_addr()?,
            listener_config.plugins.join(", ")
        );
        accept_loops.push(tokio::spawn(server::serve(
            listener,
            ctx,
            Arc::clone(&admission),
            shutdown.clone(),
            sessions.clone(),
        )));
    }

    let signal = shutdown::signalled().await.context("cannot install signal handlers")?;
    tracing::info!(
        "{signal}: shutting down; {} sessions open, transactions in flight may finish",
        admission.open_sessions()
    );
    shutdown.cancel();
    for accept_loop in accept_loops {
        let _ = accept_loop.await;
    }
    sessions.close();
    let grace = config.limits.shutdown_grace();
    if tokio::time::timeout(grace, sessions.wait()).await.is_err() {
        tracing::warn!(
            "{} sessions still open after {}s; exiting anyway",
            admission.open_sessions(),
            grace.as_secs()
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// Instance slots to preallocate: every session may hold one instance of each plugin in
/// its chain.
fn plugin_instances(config: &Config) -> u32 {
    let longest_chain = config.listeners.iter().map(|l| l.plugins.len()).max().unwrap_or(1);
    let wanted = config.limits.max_connections.saturating_mul(longest_chain).max(16);
    u32::try_from(wanted).unwrap_or(u32::MAX)
}
