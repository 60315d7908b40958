//! A listener's plugin chain: each session gets one instance of each plugin, created when
//! first needed; hooks and messages go through the plugins in order until one answers.

use std::net::SocketAddr;
use std::sync::Arc;

use super::bindings::Peer;
use super::component::Plugin;
use super::instance::PluginInstance;
use crate::handler::{Handlers, Hook, Message, SessionHandlers, Verdict, VerdictFuture};

pub struct PluginChain {
    plugins: Vec<Arc<Plugin>>,
}

impl PluginChain {
    pub fn new(plugins: Vec<Arc<Plugin>>) -> PluginChain {
        PluginChain { plugins }
    }
}

impl Handlers for PluginChain {
    fn session(&self, peer: SocketAddr) -> Box<dyn SessionHandlers> {
        Box::new(ChainSession {
            plugins: self.plugins.clone(),
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
    instances: Vec<Option<PluginInstance>>,
    peer: Peer,
}

/// Whether a hook is only news for the plugins (its answer is ignored).
fn is_notice(hook: &Hook) -> bool {
    matches!(hook, Hook::Rset | Hook::Quit)
}

impl ChainSession {
    async fn instance(&mut self, index: usize) -> anyhow::Result<&mut PluginInstance> {
        let slot = &mut self.instances[index];
        if slot.is_none() {
            *slot = Some(self.plugins[index].instantiate().await?);
        }
        Ok(slot.as_mut().expect("just filled"))
    }

    fn failed(&mut self, index: usize, error: anyhow::Error) -> Verdict {
        // A trapped instance cannot be entered again; the next call gets a fresh one.
        self.instances[index] = None;
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
            let peer = self.peer.clone();
            let result = match self.instance(index).await {
                Ok(instance) => instance.hook(hook, &peer).await,
                Err(e) => Err(e.context("cannot start an instance")),
            };
            match result {
                Ok(None) => {}
                Ok(Some(_)) if is_notice(&hook) => {}
                Ok(Some(text)) => {
                    return Verdict::Reply {
                        handler: self.plugins[index].info.name.clone(),
                        text,
                    };
                }
                Err(error) if is_notice(&hook) => {
                    let plugin = self.plugins[index].info.name.as_str();
                    tracing::warn!(plugin, "hook {hook:?} failed: {error:#}");
                    self.instances[index] = None;
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
        for index in 0..self.plugins.len() {
            let result = match self.instance(index).await {
                Ok(instance) => instance.process_message(message).await,
                Err(e) => Err(e.context("cannot start an instance")),
            };
            match result {
                Ok(None) => {}
                Ok(Some(text)) => {
                    return Verdict::Reply {
                        handler: self.plugins[index].info.name.clone(),
                        text,
                    };
                }
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
