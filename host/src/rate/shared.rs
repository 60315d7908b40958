//! Per-address rates that several nodes enforce as one (`limits.rates_redis`): each node
//! counts on its own, at no cost to the session, and every `rates_sync_ms` adds its new
//! counts to Redis in one script call and learns each address's total. A client spread
//! over N nodes therefore gets its limit, and at most what it sends in one exchange
//! interval more. While Redis does not answer, each node counts alone (the limit then
//! holds per node), says so in the log and in `wasmtpd_shared_rates_up`, and sends what
//! it counted meanwhile once Redis is back.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, ScriptInvocation};

use super::{RateLimiter, Unshared};

/// Addresses a script call carries at most, so that no call holds Redis long.
const BATCH: usize = 1000;
/// How long a call may take, connecting included.
const TIMEOUT: Duration = Duration::from_millis(500);
/// How often an idle node makes sure Redis answers (for the log and the gauge).
const PING_EVERY: Duration = Duration::from_secs(1);

/// A limit that the nodes share: its name in the keys, and this node's counts.
pub struct SharedLimit {
    pub name: &'static str,
    pub limiter: Arc<RateLimiter>,
}

/// Whether the counts are shared, for `/metrics`.
#[derive(Clone, Default)]
pub struct SharedRatesMetrics {
    /// 1 while exchanges succeed, 0 while this node counts alone.
    pub up: Gauge,
    pub failures: Counter,
}

/// Exchanges the counts of `limits` with the Redis at `url` every `every`, for as long
/// as the process runs. Connecting is lazy: a Redis that is down at start is a warning.
pub fn spawn(url: &str, every: Duration, limits: Vec<SharedLimit>, metrics: SharedRatesMetrics) -> anyhow::Result<()> {
    // Not the URL in the message: it may hold a password.
    let client = redis::Client::open(url).context("limits.rates_redis: the redis URL")?;
    let exchange = Exchange {
        client,
        connection: None,
        script: Script::new(include_str!("rates.lua")),
        metrics,
        up: None,
    };
    tokio::spawn(exchange.run(every, limits));
    Ok(())
}

struct Exchange {
    client: redis::Client,
    connection: Option<ConnectionManager>,
    script: Script,
    metrics: SharedRatesMetrics,
    /// Whether the last exchange succeeded; `None` before the first.
    up: Option<bool>,
}

impl Exchange {
    async fn run(mut self, every: Duration, limits: Vec<SharedLimit>) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut idle = Duration::ZERO;
        loop {
            tick.tick().await;
            let mut sent = false;
            let mut result = Ok(());
            for limit in &limits {
                match self.share(limit).await {
                    Ok(any) => sent |= any,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            if result.is_ok() && !sent {
                // Nothing to send: still make sure, now and then, that Redis answers.
                if self.up == Some(true) && idle < PING_EVERY {
                    idle += every;
                    continue;
                }
                result = self.ping().await;
            }
            idle = Duration::ZERO;
            self.report(result);
        }
    }

    /// Sends one limit's new counts, and learns the totals: true if there were any.
    async fn share(&mut self, limit: &SharedLimit) -> Result<bool, String> {
        let unshared = limit.limiter.unshared();
        if unshared.counts.is_empty() {
            return Ok(false);
        }
        let key = format!("wasmtpd:rates:{{{}}}:{}", limit.name, unshared.window);
        // Kept two windows: a node whose clock is a little behind still adds to it.
        let keep_ms = (2 * limit.limiter.window_ms()).to_string();
        let mut connection = within(self.connection()).await?;
        for batch in unshared.counts.chunks(BATCH) {
            let mut invocation: ScriptInvocation = self.script.prepare_invoke();
            invocation.key(&key).arg(&keep_ms);
            for (ip, count) in batch {
                invocation.arg(ip.to_canonical().to_string()).arg(*count);
            }
            let totals: Vec<u64> = within(async {
                invocation
                    .invoke_async(&mut connection)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await?;
            let sent = Unshared {
                window: unshared.window,
                counts: batch.to_vec(),
            };
            limit.limiter.learn(&sent, &totals);
        }
        Ok(true)
    }

    async fn ping(&mut self) -> Result<(), String> {
        let mut connection = within(self.connection()).await?;
        within(async {
            redis::cmd("PING")
                .query_async::<()>(&mut connection)
                .await
                .map_err(|e| e.to_string())
        })
        .await
    }

    /// The connection, made on first use; it reconnects by itself after a failure.
    async fn connection(&mut self) -> Result<ConnectionManager, String> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let made = self.client.get_connection_manager_with_config(config).await;
        let connection = made.map_err(|e| e.to_string())?;
        self.connection = Some(connection.clone());
        Ok(connection)
    }

    /// Logs a change between shared and alone, and keeps the metrics.
    fn report(&mut self, result: Result<(), String>) {
        let up = result.is_ok();
        self.metrics.up.set(i64::from(up));
        match result {
            Ok(()) if self.up != Some(true) => {
                tracing::info!("limits: counting connections and commands per address with the other nodes, in Redis");
            }
            Err(e) => {
                self.metrics.failures.inc();
                if self.up != Some(false) {
                    tracing::warn!(
                        "limits: Redis does not answer ({e}): counting connections and commands per address on this node alone until it does"
                    );
                }
            }
            Ok(()) => {}
        }
        self.up = Some(up);
    }
}

/// `request`'s result, or a failure if it takes longer than [`TIMEOUT`].
async fn within<T>(request: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(TIMEOUT, request)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} ms", TIMEOUT.as_millis())))
}
