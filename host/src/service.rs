//! The running server: its listeners, each with a slot for its current context, and the
//! plugin engine. `apply` makes a configuration current, at start and at every reload:
//! everything is loaded and checked first, and only then swapped in, so that a bad
//! configuration or plugin changes nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::{Admission, TenantCap};
use crate::config::Config;
use crate::handler::Handlers;
use crate::listener::{Access, ListenerContext, ListenerSlot};
use crate::metrics::Registry;
use crate::plugin::router::{Tenant, TenantRouter};
use crate::plugin::{Plugin, PluginChain, PluginEngine, catalog, share};
use crate::server;

struct RunningListener {
    slot: Arc<ListenerSlot>,
    stop: CancellationToken,
    accept_loop: JoinHandle<()>,
}

pub struct Service {
    engine: PluginEngine,
    admission: Arc<Admission>,
    shutdown: CancellationToken,
    sessions: TaskTracker,
    listeners: HashMap<ListenerKey, RunningListener>,
    metrics: Arc<Registry>,
}

/// Which running listener a configured one is: its address, or for port 0 (any free
/// port, a new one at each bind) its place among the configured listeners.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ListenerKey(SocketAddr, usize);

impl ListenerKey {
    fn of(address: SocketAddr, position: usize) -> ListenerKey {
        ListenerKey(address, if address.port() == 0 { position } else { 0 })
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
        shutdown: CancellationToken,
    ) -> Service {
        Service {
            metrics,
            engine,
            admission,
            shutdown,
            sessions: TaskTracker::new(),
            listeners: HashMap::new(),
        }
    }

    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    /// Loads every plugin of `config`, binds its new listeners, then swaps: new sessions
    /// get the new contexts, listeners no longer configured stop accepting. Sessions in
    /// flight keep what they started with. On error nothing has changed. Returns what now
    /// serves, e.g. `127.0.0.1:25: filter@0123456789abcdef, proxy@...`.
    pub async fn apply(&mut self, config: &Config) -> anyhow::Result<String> {
        let chains = catalog::load_chains(&self.engine, config).await?;
        let keys: Vec<ListenerKey> = config
            .listeners
            .iter()
            .enumerate()
            .map(|(i, l)| ListenerKey::of(l.address, i))
            .collect();
        let mut new_listeners = Vec::new();
        for key in &keys {
            if !self.listeners.contains_key(key) {
                let listener = TcpListener::bind(key.0)
                    .await
                    .with_context(|| format!("cannot listen on {key}"))?;
                new_listeners.push((key.clone(), listener));
            }
        }

        // Certificates and users are read at every apply: a reload serves renewed ones.
        let access = config
            .listeners
            .iter()
            .map(|l| Access::load(l).with_context(|| format!("listener {}", l.address)))
            .collect::<anyhow::Result<Vec<Access>>>()?;

        // Everything is ready: from here on nothing fails.
        let serving: Vec<String> = config
            .listeners
            .iter()
            .zip(&chains.listeners)
            .map(|(l, chain)| format!("{}: {}", l.address, versions(chain)))
            .chain(
                config
                    .tenants
                    .iter()
                    .zip(&chains.tenants)
                    .map(|(t, chain)| format!("tenant {}: {}", t.name, versions(chain))),
            )
            .collect();
        // A tenant's share of the plugin threads covers all its chains: its routed
        // recipients' and its listeners'.
        let shares: HashMap<&str, Arc<Semaphore>> = config
            .tenants
            .iter()
            .map(|t| {
                let calls = t.max_concurrent_calls.unwrap_or_else(share::default_concurrent_calls);
                (t.name.as_str(), Arc::new(Semaphore::new(calls.max(1))))
            })
            .collect();
        let tenants: Vec<Tenant> = config
            .tenants
            .iter()
            .zip(chains.tenants)
            .map(|(t, chain)| {
                let metrics = self.metrics.tenant(&t.name);
                Tenant {
                    name: t.name.clone(),
                    domains: t.domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
                    chain: Arc::new(PluginChain::new(
                        chain,
                        Arc::clone(&metrics),
                        Arc::clone(&shares[t.name.as_str()]),
                    )),
                    metrics,
                    limits: t.limits.clone(),
                }
            })
            .collect();
        let contexts: HashMap<ListenerKey, Arc<ListenerContext>> = keys
            .into_iter()
            .zip(&config.listeners)
            .zip(chains.listeners)
            .zip(access)
            .map(|(((key, listener), chain), access)| {
                let tenant = listener.tenant.clone().unwrap_or_else(|| listener.address.to_string());
                let metrics = self.metrics.tenant(&tenant);
                let calls = match (listener.max_concurrent_calls, shares.get(tenant.as_str())) {
                    (None, Some(tenants)) => Arc::clone(tenants),
                    (own, _) => {
                        let calls = own.unwrap_or_else(share::default_concurrent_calls);
                        Arc::new(Semaphore::new(calls.max(1)))
                    }
                };
                let own = Arc::new(PluginChain::new(chain, Arc::clone(&metrics), calls));
                let handlers: Arc<dyn Handlers> = if listener.route_by_domain {
                    Arc::new(TenantRouter::new(own, tenants.clone()))
                } else {
                    own
                };
                let tenant_cap = config
                    .tenant_of(listener)
                    .and_then(|t| t.limits.max_connections)
                    .map(|max| TenantCap {
                        name: tenant.as_str().into(),
                        max,
                    });
                let ctx = ListenerContext::new(
                    tenant,
                    metrics,
                    config.hostname.clone(),
                    config.limits_of(listener),
                    tenant_cap,
                    handlers,
                    access,
                );
                (key, Arc::new(ctx))
            })
            .collect();
        for (address, running) in &self.listeners {
            if let Some(ctx) = contexts.get(address) {
                running.slot.replace(Arc::clone(ctx));
            }
        }
        let removed: Vec<ListenerKey> = self
            .listeners
            .keys()
            .filter(|k| !contexts.contains_key(k))
            .cloned()
            .collect();
        for address in removed {
            if let Some(running) = self.listeners.remove(&address) {
                tracing::info!("no longer listening on {address}; its sessions go on");
                running.stop.cancel();
            }
        }
        for (address, listener) in new_listeners {
            let local = listener.local_addr().unwrap_or(address.0);
            let plugins = contexts[&address].handlers.names().join(", ");
            tracing::info!("listening on {local} (plugins: {plugins})");
            let slot = Arc::new(ListenerSlot::new(Arc::clone(&contexts[&address])));
            let stop = self.shutdown.child_token();
            let accept_loop = tokio::spawn(server::serve(
                listener,
                Arc::clone(&slot),
                Arc::clone(&self.admission),
                stop.clone(),
                self.shutdown.clone(),
                self.sessions.clone(),
            ));
            self.listeners.insert(
                address,
                RunningListener {
                    slot,
                    stop,
                    accept_loop,
                },
            );
        }
        Ok(serving.join("; "))
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

fn versions(chain: &[Arc<Plugin>]) -> String {
    let versions: Vec<String> = chain.iter().map(|p| format!("{}@{}", p.info.name, p.version)).collect();
    versions.join(", ")
}
