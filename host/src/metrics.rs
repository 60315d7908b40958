//! The server's numbers, in `prometheus-client`'s registry and its text encoding
//! (OpenMetrics): per tenant (a configured `[[tenant]]`, or a listener's `tenant` name or
//! address) the sessions, messages by outcome, plugin failures by kind and a histogram of
//! plugin call latency by stage; server-wide the reloads applied and refused. A tenant's
//! handles are made once and kept, so that counting costs an atomic add, not a lookup.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use wasmtpd_protocol::Reply;

use crate::handler::{PluginError, Verdict};
use crate::hook::HookKind;
use crate::rate::shared::SharedRatesMetrics;

/// How a message ended, as counted: by the class of its final reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Rejected,
    Tempfailed,
}

impl Outcome {
    const ALL: [Outcome; 3] = [Outcome::Accepted, Outcome::Rejected, Outcome::Tempfailed];

    /// The outcome of a final reply: 2xx accepted, 5xx rejected, anything else (4xx) a
    /// temporary failure.
    pub fn of_reply(reply: &Reply) -> Outcome {
        match reply.code() / 100 {
            2 => Outcome::Accepted,
            5 => Outcome::Rejected,
            _ => Outcome::Tempfailed,
        }
    }

    /// The outcome of the handlers' verdict on a message: a failure is answered 451.
    pub fn of(verdict: &Verdict) -> Outcome {
        match verdict {
            Verdict::Continue => Outcome::Accepted,
            Verdict::Reply { reply, .. } => Outcome::of_reply(reply),
            Verdict::Failed { .. } => Outcome::Tempfailed,
        }
    }

    const fn label(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Rejected => "rejected",
            Outcome::Tempfailed => "tempfailed",
        }
    }
}

/// Where a plugin call was made: a hook, or `None` for `process-message`.
pub type Stage = Option<HookKind>;

/// The `stage` label of a plugin call, and its name in the log.
pub fn stage_label(stage: Stage) -> &'static str {
    stage.map_or("message", HookKind::name)
}

/// Every stage a plugin can be called at, each hook's and the message's.
fn stages() -> impl Iterator<Item = Stage> {
    HookKind::ALL.iter().copied().map(Some).chain([None])
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    tenant: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    tenant: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    tenant: String,
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Plugin call latency from 10 µs to 10 s, each bucket four times the last.
#[derive(Clone, Debug)]
struct CallBuckets;

impl MetricConstructor<Histogram> for CallBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(1e-5, 4.0, 11))
    }
}

/// One tenant's handles into the families.
pub struct TenantMetrics {
    sessions: Counter,
    messages: [Counter; Outcome::ALL.len()],
    plugin_errors: [Counter; PluginError::ALL.len()],
    /// By stage: each hook in [`HookKind::ALL`]'s order, then the message.
    plugin_calls: Vec<Histogram>,
    plugin_throttled: Counter<f64, AtomicU64>,
}

impl TenantMetrics {
    pub fn session_started(&self) {
        self.sessions.inc();
    }

    pub fn message(&self, outcome: Outcome) {
        self.messages[outcome as usize].inc();
    }

    pub fn plugin_error(&self, kind: PluginError) {
        self.plugin_errors[kind as usize].inc();
    }

    /// A plugin call made at `stage` took this long (instantiation included).
    pub fn plugin_call(&self, stage: Stage, took: Duration) {
        let index = stage.map_or(HookKind::COUNT, HookKind::index);
        self.plugin_calls[index].observe(took.as_secs_f64());
    }

    /// A plugin call was paused this long for the tenant's CPU share.
    pub fn plugin_throttled(&self, paused: Duration) {
        if !paused.is_zero() {
            self.plugin_throttled.inc_by(paused.as_secs_f64());
        }
    }
}

impl Default for TenantMetrics {
    /// Handles that are counted nowhere: for a session outside any server (`--deliver`, tests).
    fn default() -> TenantMetrics {
        Families::default().tenant("")
    }
}

struct Families {
    sessions: Family<TenantLabels, Counter>,
    messages: Family<OutcomeLabels, Counter>,
    plugin_errors: Family<ErrorLabels, Counter>,
    plugin_calls: Family<StageLabels, Histogram, CallBuckets>,
    plugin_throttled: Family<TenantLabels, Counter<f64, AtomicU64>>,
}

impl Default for Families {
    fn default() -> Families {
        Families {
            sessions: Family::default(),
            messages: Family::default(),
            plugin_errors: Family::default(),
            plugin_calls: Family::new_with_constructor(CallBuckets),
            plugin_throttled: Family::default(),
        }
    }
}

impl Families {
    fn tenant(&self, name: &str) -> TenantMetrics {
        let tenant = || name.to_owned();
        TenantMetrics {
            sessions: self.sessions.get_or_create_owned(&TenantLabels { tenant: tenant() }),
            messages: Outcome::ALL.map(|o| {
                let labels = OutcomeLabels {
                    tenant: tenant(),
                    outcome: o.label(),
                };
                self.messages.get_or_create_owned(&labels)
            }),
            plugin_errors: PluginError::ALL.map(|k| {
                let labels = ErrorLabels {
                    tenant: tenant(),
                    kind: k.label(),
                };
                self.plugin_errors.get_or_create_owned(&labels)
            }),
            plugin_calls: stages()
                .map(|stage| {
                    let labels = StageLabels {
                        tenant: tenant(),
                        stage: stage_label(stage),
                    };
                    self.plugin_calls.get_or_create_owned(&labels)
                })
                .collect(),
            plugin_throttled: self
                .plugin_throttled
                .get_or_create_owned(&TenantLabels { tenant: tenant() }),
        }
    }
}

/// Every tenant's numbers, and the server's.
pub struct Registry {
    registry: prometheus_client::registry::Registry,
    families: Families,
    /// `wasmtpd_reloads_total` by result: applied, refused.
    reloads: [Counter; 2],
    tenants: RwLock<BTreeMap<String, Arc<TenantMetrics>>>,
}

impl Default for Registry {
    fn default() -> Registry {
        let families = Families::default();
        let reloads = Family::<ResultLabels, Counter>::default();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("wasmtpd_sessions", "SMTP sessions started", families.sessions.clone());
        registry.register(
            "wasmtpd_messages",
            "Messages received, by the class of their final reply",
            families.messages.clone(),
        );
        registry.register(
            "wasmtpd_plugin_errors",
            "Plugin calls that failed, by cause: at a hook or the message the client got 451; at a notice (rset, quit) it was logged",
            families.plugin_errors.clone(),
        );
        registry.register(
            "wasmtpd_plugin_call_seconds",
            "Time spent in plugin calls, instantiation included, by stage",
            families.plugin_calls.clone(),
        );
        registry.register(
            "wasmtpd_plugin_throttled_seconds",
            "Time plugin calls were paused because their tenant was over its CPU share (the default share or max_cpu_ms_per_second)",
            families.plugin_throttled.clone(),
        );
        registry.register(
            "wasmtpd_reloads",
            "Configuration reloads, applied or refused (the previous version kept serving)",
            reloads.clone(),
        );
        let reloads = ["applied", "refused"].map(|result| reloads.get_or_create_owned(&ResultLabels { result }));
        Registry {
            registry,
            families,
            reloads,
            tenants: RwLock::default(),
        }
    }
}

impl Registry {
    /// The tenant's handles, made on first use; a reload keeps counting on them.
    pub fn tenant(&self, name: &str) -> Arc<TenantMetrics> {
        if let Some(found) = self.tenants.read().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Arc::clone(found);
        }
        let mut tenants = self.tenants.write().unwrap_or_else(|p| p.into_inner());
        let made = tenants
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(self.families.tenant(name)));
        Arc::clone(made)
    }

    /// A reload was applied (`true`) or refused.
    pub fn reload(&self, applied: bool) {
        self.reloads[usize::from(!applied)].inc();
    }

    /// The numbers of rates counted with other nodes (`limits.rates_redis`), registered
    /// only on a server that does.
    pub fn shared_rates(&mut self) -> SharedRatesMetrics {
        let metrics = SharedRatesMetrics::default();
        self.registry.register(
            "wasmtpd_shared_rates_up",
            "1 while the per-address rates are counted with the other nodes in Redis, 0 while this node counts alone",
            metrics.up.clone(),
        );
        self.registry.register(
            "wasmtpd_shared_rates_failures",
            "Calls to Redis for per-address rates (leases, checks) that failed",
            metrics.failures.clone(),
        );
        metrics
    }

    /// The OpenMetrics text format, which Prometheus scrapes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The media type of [`Registry::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_openmetrics_text_format() {
        let registry = Registry::default();
        let acme = registry.tenant("acme");
        acme.session_started();
        acme.message(Outcome::Accepted);
        acme.message(Outcome::Accepted);
        acme.message(Outcome::Tempfailed);
        acme.plugin_error(PluginError::Timeout);
        acme.plugin_call(None, Duration::from_millis(250));
        acme.plugin_call(Some(HookKind::Auth), Duration::from_micros(30));
        registry.tenant("b\"x").session_started();
        registry.reload(true);
        registry.reload(false);
        registry.reload(false);
        let text = registry.render();
        for line in [
            "# TYPE wasmtpd_sessions counter",
            "wasmtpd_sessions_total{tenant=\"acme\"} 1",
            "wasmtpd_sessions_total{tenant=\"b\\\"x\"} 1",
            "wasmtpd_messages_total{tenant=\"acme\",outcome=\"accepted\"} 2",
            "wasmtpd_messages_total{tenant=\"acme\",outcome=\"rejected\"} 0",
            "wasmtpd_messages_total{tenant=\"acme\",outcome=\"tempfailed\"} 1",
            "wasmtpd_plugin_errors_total{tenant=\"acme\",kind=\"timeout\"} 1",
            "wasmtpd_plugin_errors_total{tenant=\"acme\",kind=\"trap\"} 0",
            "# TYPE wasmtpd_plugin_call_seconds histogram",
            "wasmtpd_plugin_call_seconds_sum{tenant=\"acme\",stage=\"message\"} 0.25",
            "wasmtpd_plugin_call_seconds_count{tenant=\"acme\",stage=\"message\"} 1",
            "wasmtpd_plugin_call_seconds_bucket{le=\"0.16384\",tenant=\"acme\",stage=\"message\"} 0",
            "wasmtpd_plugin_call_seconds_bucket{le=\"0.65536\",tenant=\"acme\",stage=\"message\"} 1",
            "wasmtpd_plugin_call_seconds_count{tenant=\"acme\",stage=\"auth\"} 1",
            "wasmtpd_plugin_call_seconds_bucket{le=\"0.00004\",tenant=\"acme\",stage=\"auth\"} 1",
            "wasmtpd_plugin_call_seconds_count{tenant=\"acme\",stage=\"quit\"} 0",
            "wasmtpd_reloads_total{result=\"applied\"} 1",
            "wasmtpd_reloads_total{result=\"refused\"} 2",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        // The same tenant's handles survive being asked for again (a reload).
        assert!(Arc::ptr_eq(&acme, &registry.tenant("acme")));
    }

    #[test]
    fn every_hook_and_the_message_have_a_latency_histogram() {
        let registry = Registry::default();
        registry.tenant("t");
        let text = registry.render();
        for stage in HookKind::ALL.iter().map(|k| k.name()).chain(["message"]) {
            let line = format!("wasmtpd_plugin_call_seconds_count{{tenant=\"t\",stage=\"{stage}\"}} 0");
            assert!(text.contains(&line), "no {line:?} in:\n{text}");
        }
    }
}
