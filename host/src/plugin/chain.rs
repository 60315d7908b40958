//! A listener's plugin chain: each session gets one instance of each plugin, created when
//! first needed; hooks and messages go through the plugins in order until one answers.
//! A chain's calls at once are capped (see [`super::share`]), and a running guest yields
//! at every epoch tick, so that no chain can occupy all of the runtime's threads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

use super::bindings::Peer;
use super::component::Plugin;
use super::instance::{CallResult, PluginInstance};
use crate::handler::{Handlers, Hook, Message, SessionHandlers, Verdict, VerdictFuture};
use crate::metrics::TenantMetrics;

pub struct PluginChain {
    plugins: Vec<Arc<Plugin>>,
    metrics: Arc<TenantMetrics>,
    /// The tenant's share of the plugin threads: calls beyond it wait.
    calls: Arc<Semaphore>,
}

impl PluginChain {
    pub fn new(plugins: Vec<Arc<Plugin>>, metrics: Arc<TenantMetrics>, max_concurrent_calls: usize) -> PluginChain {
        PluginChain {
            plugins,
            metrics,
            calls: Arc::new(Semaphore::new(max_concurrent_calls.max(1))),
        }
    }
}

impl Handlers for PluginChain {
    fn session(&self, peer: SocketAddr) -> Box<dyn SessionHandlers> {
        Box::new(ChainSession {
            plugins: self.plugins.clone(),
            metrics: Arc::clone(&self.metrics),
            calls: Arc::clone(&self.calls),
            instances: self.plugins.iter().map(|_| None).collect(),
            peer: Peer {
                ip: peer.ip().to_string(),
                port: peer.port(),
            },
        })
    }

    fn names(&self) -> Vec<String> {
        self.plugins.iter().map(|p| p.info.name.clone()).collect()
    }
}

struct ChainSession {
    /// The chain as it was when the session started: a reload does not change it.
    plugins: Vec<Arc<Plugin>>,
    metrics: Arc<TenantMetrics>,
    calls: Arc<Semaphore>,
    instances: Vec<Option<PluginInstance>>,
    peer: Peer,
}

/// Whether a hook is only news for the plugins (its answer is ignored).
fn is_notice(hook: &Hook) -> bool {
    matches!(hook, Hook::Rset | Hook::Quit)
}

/// One call into a plugin.
#[derive(Clone, Copy)]
enum Call<'a> {
    Hook(Hook<'a>),
    /// The message, with its recipients as the WIT wants them.
    Message(&'a Message, &'a [String]),
}

impl ChainSession {
    /// Runs `call` with this session's instance of plugin `index` (created if needed),
    /// once the chain's share of the runtime's threads has room.
    async fn call(&mut self, index: usize, call: Call<'_>) -> CallResult {
        let plugin = Arc::clone(&self.plugins[index]);
        let instance = self.instances[index].take();
        let _turn = self
            .calls
            .acquire()
            .await
            .map_err(|_| anyhow::anyhow!("the plugin chain was closed"))?;
        // Counted from the turn: waiting for one is not time spent in the plugin.
        let started = Instant::now();
        let mut instance = match instance {
            Some(instance) => instance,
            None => match plugin.instantiate().await {
                Ok(instance) => instance,
                Err(e) => {
                    self.metrics.plugin_call(started.elapsed());
                    return Err(e.context("cannot start an instance"));
                }
            },
        };
        let result = match call {
            Call::Hook(hook) => instance.hook(hook, &self.peer).await,
            Call::Message(message, rcpt_tos) => instance.process_message(message, &self.peer, rcpt_tos).await,
        };
        self.metrics.plugin_call(started.elapsed());
        // A failed instance cannot be entered again: the next call gets a fresh one.
        if result.is_ok() {
            self.instances[index] = Some(instance);
        }
        result
    }

    fn reply(&self, index: usize, text: String) -> Verdict {
        Verdict::Reply {
            handler: self.plugins[index].info.name.clone(),
            text,
        }
    }

    fn failed(&self, index: usize, error: anyhow::Error) -> Verdict {
        Verdict::Failed {
            handler: self.plugins[index].info.name.clone(),
            error,
        }
    }

    async fn run_hook(&mut self, hook: Hook<'_>) -> Verdict {
        for index in 0..self.plugins.len() {
            if !PluginInstance::has_hook(&self.plugins[index], &hook) {
                continue;
            }
            if is_notice(&hook) && self.instances[index].is_none() {
                // Nothing to tell a plugin that never saw this session.
                continue;
            }
            match self.call(index, Call::Hook(hook)).await {
                Ok(None) => {}
                Ok(Some(_)) if is_notice(&hook) => {}
                Ok(Some(text)) => return self.reply(index, text),
                Err(error) if is_notice(&hook) => {
                    let plugin = self.plugins[index].info.name.as_str();
                    tracing::warn!(plugin, "hook {hook:?} failed: {error:#}");
                }
                Err(error) => return self.failed(index, error),
            }
        }
        if matches!(hook, Hook::Quit) {
            self.instances.iter_mut().for_each(|slot| *slot = None);
        }
        Verdict::Continue
    }

    async fn run_message(&mut self, message: &Message) -> Verdict {
        let rcpt_tos: Vec<String> = message.rcpt_to.iter().map(|a| a.as_str().to_owned()).collect();
        for index in 0..self.plugins.len() {
            match self.call(index, Call::Message(message, &rcpt_tos)).await {
                Ok(None) => {}
                Ok(Some(text)) => return self.reply(index, text),
                Err(error) => return self.failed(index, error),
            }
        }
        Verdict::Continue
    }
}

impl SessionHandlers for ChainSession {
    fn hook<'a>(&'a mut self, hook: Hook<'a>) -> VerdictFuture<'a> {
        Box::pin(self.run_hook(hook))
    }

    fn process_message<'a>(&'a mut self, message: &'a Message) -> VerdictFuture<'a> {
        Box::pin(self.run_message(message))
    }
}
