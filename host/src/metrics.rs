//! Per-tenant counters, and their Prometheus text rendering. A tenant is, for now, a
//! listener: its `tenant` name in the configuration, or its address.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use wasmtpd_protocol::Reply;

use crate::handler::{PluginError, Verdict};

/// How a message ended, as counted: by the class of its final reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Rejected,
    Tempfailed,
}

impl Outcome {
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
}

#[derive(Default)]
pub struct TenantMetrics {
    sessions: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    tempfailed: AtomicU64,
    plugin_errors: [AtomicU64; PluginError::ALL.len()],
    plugin_calls: AtomicU64,
    plugin_call_nanos: AtomicU64,
}

impl TenantMetrics {
    pub fn session_started(&self) {
        self.sessions.fetch_add(1, Ordering::Relaxed);
    }

    pub fn message(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Accepted => &self.accepted,
            Outcome::Rejected => &self.rejected,
            Outcome::Tempfailed => &self.tempfailed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn plugin_error(&self, kind: PluginError) {
        self.plugin_errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn plugin_call(&self, took: Duration) {
        self.plugin_calls.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.plugin_call_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// Every tenant's counters, by name.
#[derive(Default)]
pub struct Registry {
    tenants: RwLock<BTreeMap<String, Arc<TenantMetrics>>>,
}

impl Registry {
    /// The tenant's counters, created on first use; a reload keeps counting on them.
    pub fn tenant(&self, name: &str) -> Arc<TenantMetrics> {
        if let Some(found) = self.tenants.read().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Arc::clone(found);
        }
        let mut tenants = self.tenants.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(tenants.entry(name.to_owned()).or_default())
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let tenants = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, rows: &mut dyn Iterator<Item = (String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in rows {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let label = |tenant: &str| format!("tenant=\"{}\"", escape(tenant));
        family(
            "wasmtpd_sessions_total",
            "counter",
            "SMTP sessions started.",
            &mut tenants.iter().map(|(t, m)| (label(t), get(&m.sessions).to_string())),
        );
        family(
            "wasmtpd_messages_total",
            "counter",
            "Messages received, by the class of their final reply.",
            &mut tenants.iter().flat_map(|(t, m)| {
                [
                    ("accepted", &m.accepted),
                    ("rejected", &m.rejected),
                    ("tempfailed", &m.tempfailed),
                ]
                .map(|(outcome, c)| (format!("{},outcome=\"{outcome}\"", label(t)), get(c).to_string()))
            }),
        );
        family(
            "wasmtpd_plugin_errors_total",
            "counter",
            "Plugin calls that failed, by cause; each answered 451.",
            &mut tenants.iter().flat_map(|(t, m)| {
                PluginError::ALL
                    .iter()
                    .zip(&m.plugin_errors)
                    .map(|(kind, c)| (format!("{},kind=\"{}\"", label(t), kind.label()), get(c).to_string()))
                    .collect::<Vec<_>>()
            }),
        );
        let _ = writeln!(
            out,
            "# HELP wasmtpd_plugin_call_seconds Time spent in plugin calls, instantiation included.\n\
             # TYPE wasmtpd_plugin_call_seconds summary"
        );
        for (tenant, m) in tenants.iter() {
            let seconds = get(&m.plugin_call_nanos) as f64 / 1e9;
            let _ = writeln!(out, "wasmtpd_plugin_call_seconds_sum{{{}}} {seconds}", label(tenant));
            let _ = writeln!(
                out,
                "wasmtpd_plugin_call_seconds_count{{{}}} {}",
                label(tenant),
                get(&m.plugin_calls)
            );
        }
        out
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_prometheus_text_format() {
        let registry = Registry::default();
        let acme = registry.tenant("acme");
        acme.session_started();
        acme.message(Outcome::Accepted);
        acme.message(Outcome::Accepted);
        acme.message(Outcome::Tempfailed);
        acme.plugin_error(PluginError::Timeout);
        acme.plugin_call(Duration::from_millis(250));
        registry.tenant("b\"x").session_started();
        let text = registry.render();
        for line in [
            "# TYPE wasmtpd_sessions_total counter",
            "wasmtpd_sessions_total{tenant=\"acme\"} 1",
            "wasmtpd_sessions_total{tenant=\"b\\\"x\"} 1",
            "wasmtpd_messages_total{tenant=\"acme\",outcome=\"accepted\"} 2",
            "wasmtpd_messages_total{tenant=\"acme\",outcome=\"rejected\"} 0",
            "wasmtpd_messages_total{tenant=\"acme\",outcome=\"tempfailed\"} 1",
            "wasmtpd_plugin_errors_total{tenant=\"acme\",kind=\"timeout\"} 1",
            "wasmtpd_plugin_errors_total{tenant=\"acme\",kind=\"trap\"} 0",
            "wasmtpd_plugin_call_seconds_sum{tenant=\"acme\"} 0.25",
            "wasmtpd_plugin_call_seconds_count{tenant=\"acme\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        // The same tenant's counters survive being asked for again (a reload).
        assert!(Arc::ptr_eq(&acme, &registry.tenant("acme")));
    }
}
