//! From a configuration whose plugins are loaded to what each listener's sessions share:
//! the tenants with their chains, each tenant's share of the plugin threads, and one
//! [`ListenerContext`] a listener. Pure assembly: nothing here can fail.

use std::collections::HashMap;
use std::sync::Arc;

use crate::admission::TenantCap;
use crate::config::{Config, ListenerConfig};
use crate::handler::Handlers;
use crate::listener::{Access, ListenerContext};
use crate::message_room::MessageRoom;
use crate::metrics::Registry;
use crate::plugin::catalog::Chains;
use crate::plugin::router::{Tenant, TenantRouter};
use crate::plugin::share::TenantShare;
use crate::plugin::{Plugin, PluginChain};

/// The listeners' contexts, in the configuration's order.
pub fn build(
    config: &Config,
    chains: Chains,
    access: Vec<Access>,
    metrics: &Registry,
    room: &Arc<MessageRoom>,
) -> Vec<Arc<ListenerContext>> {
    let shares = tenant_shares(config);
    let tenants = tenants(config, chains.tenants, &shares, metrics);
    config
        .listeners
        .iter()
        .zip(chains.listeners)
        .zip(access)
        .map(|((listener, chain), access)| {
            Arc::new(listener_context(config, listener, chain, access, &tenants, &shares, metrics).with_room(room))
        })
        .collect()
}

/// Each tenant's share of the plugin threads: its calls at once and its CPU time, on all
/// its chains together (its routed recipients' and its own listeners').
fn tenant_shares(config: &Config) -> HashMap<String, Arc<TenantShare>> {
    config
        .tenants
        .iter()
        .map(|t| {
            let share = TenantShare::new(&t.name, t.max_concurrent_calls, t.max_cpu_ms_per_second);
            (t.name.clone(), Arc::new(share))
        })
        .collect()
}

/// The configured tenants, for routing listeners.
fn tenants(
    config: &Config,
    chains: Vec<Vec<Arc<Plugin>>>,
    shares: &HashMap<String, Arc<TenantShare>>,
    metrics: &Registry,
) -> Vec<Tenant> {
    config
        .tenants
        .iter()
        .zip(chains)
        .map(|(t, chain)| {
            let metrics = metrics.tenant(&t.name);
            let share = Arc::clone(&shares[&t.name]);
            Tenant {
                name: t.name.clone(),
                domains: t.domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
                chain: Arc::new(
                    PluginChain::new(chain, Arc::clone(&metrics), share)
                        .with_quarantine(t.quarantine.as_deref())
                        .with_tenant(Some(&t.name)),
                ),
                metrics,
                limits: t.limits.clone(),
            }
        })
        .collect()
}

fn listener_context(
    config: &Config,
    listener: &ListenerConfig,
    chain: Vec<Arc<Plugin>>,
    access: Access,
    tenants: &[Tenant],
    shares: &HashMap<String, Arc<TenantShare>>,
    metrics: &Registry,
) -> ListenerContext {
    let tenant = listener.tenant.clone().unwrap_or_else(|| listener.address.to_string());
    let metrics = metrics.tenant(&tenant);
    // A listener of a configured tenant shares the tenant's share, unless it sets its own.
    let share = match (
        listener.max_concurrent_calls,
        listener.max_cpu_ms_per_second,
        shares.get(&tenant),
    ) {
        (None, None, Some(tenants)) => Arc::clone(tenants),
        (calls, cpu, _) => Arc::new(TenantShare::new(&tenant, calls, cpu)),
    };
    let own = Arc::new(
        PluginChain::new(chain, Arc::clone(&metrics), share)
            .with_quarantine(config.quarantine_of(listener))
            .with_tenant(listener.tenant.as_deref()),
    );
    let handlers: Arc<dyn Handlers> = if listener.route_by_domain {
        Arc::new(TenantRouter::new(own, tenants.to_vec()))
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
    ListenerContext::new(
        tenant,
        metrics,
        config.hostname.clone(),
        config.limits_of(listener),
        tenant_cap,
        handlers,
        access,
    )
    .with_bare_lf(listener.bare_lf())
    .speaking(listener.protocol)
}
