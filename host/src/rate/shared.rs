//! The Redis in which several nodes hold per-address rates together
//! (`limits.rates_redis`): a node leases events from an address's count of the window
//! (`rates.lua`, atomic in Redis, so that the nodes together never pass the limit) and
//! asks again when its lease is used up. When a call fails (no answer within 250 ms, or
//! an error such as a read-only replica's), the node counts alone from then on, without
//! asking, so that sessions do not wait on a Redis that is away; it says so once in the
//! log and in `wasmtpd_shared_rates_up`, and checks every second, with the lease script
//! itself, whether Redis serves again.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use redis::Script;

use crate::redis_connection::RedisConnection;

/// How long a call may take, connecting included: a session waits this long at most.
const TIMEOUT: Duration = Duration::from_millis(250);
/// How often the node checks that Redis answers.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// One lease to ask for: up to `wanted` events of `ip`'s count in the limit `name`'s
/// `window`, after adding `debt`, the events let through while Redis could not be asked.
pub struct Lease {
    pub name: &'static str,
    pub window: u64,
    pub window_ms: u64,
    pub ip: IpAddr,
    pub wanted: u32,
    pub max: u32,
    pub debt: u32,
}

/// Whether the counts are shared, for `/metrics`.
#[derive(Clone, Default)]
pub struct SharedRatesMetrics {
    /// 1 while Redis answers, 0 while this node counts alone.
    pub up: Gauge,
    pub failures: Counter,
}

pub struct SharedRates {
    redis: RedisConnection,
    script: Script,
    /// Whether Redis answered the last call; it is asked only while it does.
    up: AtomicBool,
    /// What the log said last: each change is said once, and `up`, the gauge and the
    /// log change together under this lock.
    said: std::sync::Mutex<Option<bool>>,
    metrics: SharedRatesMetrics,
}

impl SharedRates {
    /// The store at `url`; connecting is lazy, at the first call.
    pub fn new(url: &str, metrics: SharedRatesMetrics) -> anyhow::Result<Arc<SharedRates>> {
        // Not the URL in the message: it may hold a password.
        let redis = RedisConnection::open(url, TIMEOUT).context("limits.rates_redis: the redis URL")?;
        Ok(Arc::new(SharedRates {
            redis,
            script: Script::new(include_str!("rates.lua")),
            up: AtomicBool::new(true),
            said: std::sync::Mutex::new(None),
            metrics,
        }))
    }

    /// Checks now and every second whether Redis serves leases, for as long as the
    /// process runs: with the lease script itself, adding to a probe key that expires at
    /// once, so that the check writes as a lease does (a Redis that answers PING but
    /// refuses writes, being full or a replica, is not back).
    pub fn watch(self: &Arc<Self>) {
        let rates = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECK_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let probe = Lease {
                name: "probe",
                window: 0,
                window_ms: 1,
                ip: IpAddr::from([0, 0, 0, 0]),
                wanted: 0,
                max: 0,
                debt: 1,
            };
            loop {
                tick.tick().await;
                // `lease` reports the answer.
                let _ = rates.lease(&probe).await;
            }
        });
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Asks for `lease`: the events granted (0: the limit is reached), or the failure.
    pub async fn lease(&self, lease: &Lease) -> Result<u32, String> {
        let key = format!("wasmtpd:rates:{}:{}", lease.name, lease.window);
        // Kept two windows: a node whose clock is a little behind still counts in it.
        let keep_ms = 2 * lease.window_ms;
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(key)
            .arg(keep_ms)
            .arg(lease.ip.to_canonical().to_string())
            .arg(lease.wanted)
            .arg(lease.max)
            .arg(lease.debt);
        let answer = self
            .redis
            .call(async |connection| invocation.invoke_async::<u32>(connection).await)
            .await;
        self.report(answer.as_ref().map(drop).map_err(Clone::clone));
        answer
    }

    /// Keeps the state and the metrics, and logs a change between shared and alone.
    fn report(&self, answer: Result<(), String>) {
        let up = answer.is_ok();
        if !up {
            self.metrics.failures.inc();
        }
        let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
        self.up.store(up, Ordering::Relaxed);
        self.metrics.up.set(i64::from(up));
        if *said == Some(up) {
            return;
        }
        *said = Some(up);
        match answer {
            Ok(()) => {
                tracing::info!("limits: counting connections and commands per address with the other nodes, in Redis")
            }
            Err(e) => tracing::warn!(
                "limits: Redis does not answer ({e}): counting connections and commands per address on this node alone until it does"
            ),
        }
    }
}
