//! The running server: its listeners, each with a slot for its current context, and the
//! plugin engine. `apply` makes a configuration current, at start and at every reload:
//! everything is loaded and checked first, and only then swapped in, so that a bad
//! configuration or plugin changes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::Admission;
use crate::config::Config;
use crate::listen_address::ListenAddress;
use crate::listener::{Access, ListenerContext, ListenerSlot};
use crate::message_room::MessageRoom;
use crate::metrics::Registry;
use crate::plugin::catalog::{self, Chains};
use crate::plugin::{Plugin, PluginEngine};
use crate::server::Bound;
use crate::{contexts, server};

struct RunningListener {
    slot: Arc<ListenerSlot>,
    stop: CancellationToken,
    accept_loop: JoinHandle<()>,
}

pub struct Service {
    engine: PluginEngine,
    admission: Arc<Admission>,
    /// Room for message data in memory, one for the whole server.
    room: Arc<MessageRoom>,
    shutdown: CancellationToken,
    sessions: TaskTracker,
    listeners: HashMap<ListenerKey, RunningListener>,
    metrics: Arc<Registry>,
}

/// Which running listener a configured one is: its address, or for port 0 (any free
/// port, a new one at each bind) its place among the configured listeners.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ListenerKey(ListenAddress, usize);

impl ListenerKey {
    fn of(address: &ListenAddress, position: usize) -> ListenerKey {
        let position = if address.is_any_port() { position } else { 0 };
        ListenerKey(address.clone(), position)
    }
}

impl std::fmt::Display for ListenerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Service {
    pub fn new(
        engine: PluginEngine,
        admission: Arc<Admission>,
        metrics: Arc<Registry>,
        room: Arc<MessageRoom>,
        shutdown: CancellationToken,
    ) -> Service {
        Service {
            metrics,
            engine,
            admission,
            room,
            shutdown,
            sessions: TaskTracker::new(),
            listeners: HashMap::new(),
        }
    }

    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    pub fn metrics(&self) -> &Arc<Registry> {
        &self.metrics
    }

    /// Loads every plugin of `config`, binds its new listeners, then swaps: new sessions
    /// get the new contexts, listeners no longer configured stop accepting. Sessions in
    /// flight keep what they started with. On error nothing has changed. Returns what now
    /// serves, e.g. `127.0.0.1:25: filter@0123456789abcdef, proxy@...`.
    pub async fn apply(&mut self, config: &Config) -> anyhow::Result<String> {
        let loaded = load(&self.engine, config).await?;
        let keys: Vec<ListenerKey> = config
            .listeners
            .iter()
            .enumerate()
            .map(|(i, l)| ListenerKey::of(&l.address, i))
            .collect();
        let bound = self.bind_new(&keys).await?;
        // Everything is ready: from here on nothing fails.
        let serving = loaded.serving.join("; ");
        let contexts: HashMap<ListenerKey, Arc<ListenerContext>> = keys
            .into_iter()
            .zip(contexts::build(
                config,
                loaded.chains,
                loaded.access,
                &self.metrics,
                &self.room,
            ))
            .collect();
        self.swap(&contexts);
        self.retire(&contexts);
        self.start(bound, &contexts);
        Ok(serving)
    }

    /// Binds the listeners that are not running yet.
    async fn bind_new(&self, keys: &[ListenerKey]) -> anyhow::Result<Vec<(ListenerKey, Bound)>> {
        let mut bound = Vec::new();
        for key in keys.iter().filter(|k| !self.listeners.contains_key(k)) {
            let listener = Bound::bind(&key.0)
                .await
                .with_context(|| format!("cannot listen on {key}"))?;
            bound.push((key.clone(), listener));
        }
        Ok(bound)
    }

    /// Gives the running listeners that stay their new contexts: their next sessions use them.
    fn swap(&self, contexts: &HashMap<ListenerKey, Arc<ListenerContext>>) {
        for (key, running) in &self.listeners {
            if let Some(ctx) = contexts.get(key) {
                running.slot.replace(Arc::clone(ctx));
            }
        }
    }

    /// Stops the listeners no longer configured; their sessions go on.
    fn retire(&mut self, contexts: &HashMap<ListenerKey, Arc<ListenerContext>>) {
        self.listeners.retain(|key, running| {
            let stays = contexts.contains_key(key);
            if !stays {
                tracing::info!("no longer listening on {key}; its sessions go on");
                running.stop.cancel();
            }
            stays
        });
    }

    /// Starts accepting on the newly bound listeners.
    fn start(&mut self, bound: Vec<(ListenerKey, Bound)>, contexts: &HashMap<ListenerKey, Arc<ListenerContext>>) {
        for (key, listener) in bound {
            let ctx = Arc::clone(&contexts[&key]);
            tracing::info!(
                "listening on {} (plugins: {})",
                listener.local().unwrap_or_else(|| key.0.clone()),
                ctx.handlers.names().join(", ")
            );
            let slot = Arc::new(ListenerSlot::new(ctx));
            let stop = self.shutdown.child_token();
            let serving = server::Serving {
                slot: Arc::clone(&slot),
                admission: Arc::clone(&self.admission),
                stop: stop.clone(),
                shutdown: self.shutdown.clone(),
                sessions: self.sessions.clone(),
            };
            let accept_loop = match listener {
                Bound::Tcp(listener) => tokio::spawn(serving.serve(listener)),
                Bound::Unix(socket) => tokio::spawn(serving.serve(socket)),
            };
            self.listeners.insert(
                key,
                RunningListener {
                    slot,
                    stop,
                    accept_loop,
                },
            );
        }
    }

    /// Stops accepting everywhere and waits for the accept loops; the sessions are
    /// tracked by the returned tracker.
    pub async fn stop_accepting(&mut self) -> TaskTracker {
        self.shutdown.cancel();
        for (_, running) in self.listeners.drain() {
            let _ = running.accept_loop.await;
        }
        self.sessions.close();
        self.sessions.clone()
    }
}

/// A configuration with everything it names loaded and checked.
struct Loaded {
    chains: Chains,
    /// Each listener's certificate, users and trusted proxies, in order.
    access: Vec<Access>,
    /// What each chain serves, with versions, for the log.
    serving: Vec<String>,
}

/// Loads every plugin the configuration names, and every listener's certificate and
/// users: read at every apply, so that a reload serves renewed ones.
async fn load(engine: &PluginEngine, config: &Config) -> anyhow::Result<Loaded> {
    let chains = catalog::load_chains(engine, config).await?;
    let access = config
        .listeners
        .iter()
        .map(|l| Access::load(l).with_context(|| format!("listener {}", l.address)))
        .collect::<anyhow::Result<Vec<Access>>>()?;
    let listeners = config.listeners.iter().zip(&chains.listeners);
    let tenants = config.tenants.iter().zip(&chains.tenants);
    let serving = listeners
        .map(|(l, chain)| format!("{}: {}", l.address, versions(chain)))
        .chain(tenants.map(|(t, chain)| format!("tenant {}: {}", t.name, versions(chain))))
        .collect();
    Ok(Loaded {
        chains,
        access,
        serving,
    })
}

fn versions(chain: &[Arc<Plugin>]) -> String {
    let versions: Vec<String> = chain.iter().map(|p| format!("{}@{}", p.info.name, p.version)).collect();
    versions.join(", ")
}
