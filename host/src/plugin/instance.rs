//! One plugin instance, owned by one session: every call runs under the plugin's time
//! budget, and what the guest printed is sent on after each call.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::{Store, Trap};

use super::bindings::{
    Peer, auth_hook, connect_hook, data_hook, handler, helo_hook, mail_hook, quit_hook, rcpt_hook, rset_hook,
};
use super::component::Plugin;
use super::output::{self, OutputTarget};
use super::pacing::CallClock;
use super::state::PluginState;
use crate::handler::{Hook, Message, SessionFacts};
use crate::metrics::PluginError;

/// The loaded exports of one instance.
pub struct Guests {
    pub handler: handler::Guest,
    pub connect: Option<connect_hook::Guest>,
    pub helo: Option<helo_hook::Guest>,
    pub mail: Option<mail_hook::Guest>,
    pub rcpt: Option<rcpt_hook::Guest>,
    pub data: Option<data_hook::Guest>,
    pub rset: Option<rset_hook::Guest>,
    pub quit: Option<quit_hook::Guest>,
    pub auth: Option<auth_hook::Guest>,
}

pub struct PluginInstance {
    plugin: Arc<Plugin>,
    store: Store<PluginState>,
    guests: Guests,
}

/// What a call answered: `Ok(None)` to let the server go on, `Ok(Some(reply))`, or why
/// it failed. After a failure the instance must not be used again.
pub type CallResult = anyhow::Result<Option<String>>;

impl PluginInstance {
    pub(super) fn new(plugin: Arc<Plugin>, store: Store<PluginState>, guests: Guests) -> PluginInstance {
        PluginInstance { plugin, store, guests }
    }

    /// What the session learnt, for the `session` import to tell.
    pub fn learn(&mut self, facts: &Arc<SessionFacts>) {
        let state = self.store.data_mut();
        if !Arc::ptr_eq(&state.facts, facts) {
            state.facts = Arc::clone(facts);
        }
    }

    /// Whether this plugin exports the hook at all.
    pub fn has_hook(plugin: &Plugin, hook: &Hook) -> bool {
        let h = &plugin.hooks;
        match hook {
            Hook::Connect => h.connect.is_some(),
            Hook::Helo { .. } => h.helo.is_some(),
            Hook::Mail { .. } => h.mail.is_some(),
            Hook::Rcpt { .. } => h.rcpt.is_some(),
            Hook::Data => h.data.is_some(),
            Hook::Rset => h.rset.is_some(),
            Hook::Quit => h.quit.is_some(),
            Hook::Auth { .. } => h.auth.is_some(),
        }
    }

    /// `peer` and `rcpt_tos` are the message's, in the WIT's shapes: the caller makes them
    /// once for the whole chain.
    pub async fn process_message(&mut self, message: &Message, peer: &Peer, rcpt_tos: &[String]) -> CallResult {
        let mail_from = message.mail_from.as_ref().map_or("", |a| a.as_str());
        self.arm();
        let result = self
            .guests
            .handler
            .call_process_message(
                &mut self.store,
                peer,
                mail_from,
                rcpt_tos,
                &message.data,
                &message.mail_options,
                &message.rcpt_options,
            )
            .await;
        self.settle(result).await
    }

    /// Calls the hook; `Ok(None)` if the plugin does not export it.
    pub async fn hook(&mut self, hook: Hook<'_>, peer: &Peer) -> CallResult {
        self.arm();
        let (store, g) = (&mut self.store, &self.guests);
        let result = match hook {
            Hook::Connect => match &g.connect {
                Some(f) => f.call_on_connect(store, peer).await,
                None => return Ok(None),
            },
            Hook::Helo { name, extended } => match &g.helo {
                Some(f) => f.call_on_helo(store, name, extended).await,
                None => return Ok(None),
            },
            Hook::Mail { from, options, .. } => match &g.mail {
                Some(f) => f.call_on_mail(store, from, options).await,
                None => return Ok(None),
            },
            Hook::Rcpt { to, options } => match &g.rcpt {
                Some(f) => f.call_on_rcpt(store, to, options).await,
                None => return Ok(None),
            },
            Hook::Data => match &g.data {
                Some(f) => f.call_on_data(store).await,
                None => return Ok(None),
            },
            Hook::Rset => match &g.rset {
                Some(f) => f.call_on_rset(store).await.map(|()| None),
                None => return Ok(None),
            },
            Hook::Quit => match &g.quit {
                Some(f) => f.call_on_quit(store).await.map(|()| None),
                None => return Ok(None),
            },
            Hook::Auth { identity, password } => match &g.auth {
                Some(f) => f.call_on_auth(store, identity, password.0).await,
                None => return Ok(None),
            },
        };
        self.settle(result).await
    }

    fn arm(&mut self) {
        self.store.data_mut().clock = CallClock::start(Instant::now(), self.plugin.time_budget);
        self.store.set_epoch_deadline(1);
    }

    /// Sends the call's output on and explains a failure.
    async fn settle(&mut self, result: wasmtime::Result<Option<String>>) -> CallResult {
        let (stdout, stderr) = (self.store.data().stdout.clone(), self.store.data().stderr.clone());
        let name = self.plugin.info.name.as_str();
        output::deliver(name, "stdout", self.plugin.stdout, &stdout).await;
        output::deliver(name, "stderr", OutputTarget::Log, &stderr).await;
        result.map_err(|e| describe(e, self.plugin.time_budget.as_millis()))
    }
}

/// Why a call failed, typed for the counters, on one line for the log.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CallError {
    pub kind: PluginError,
    pub message: String,
}

/// A failure on one line: the trap, the budget, the memory cap, or the innermost cause
/// (wasmtime's own message carries a multi-line wasm backtrace).
fn describe(error: wasmtime::Error, budget_ms: u128) -> anyhow::Error {
    let (kind, message) = match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => (
            PluginError::Timeout,
            format!("ran past its time budget of {budget_ms} ms"),
        ),
        Some(trap) => (PluginError::Trap, format!("wasm trap: {trap}")),
        None => {
            let message = anyhow::Error::from(error).root_cause().to_string().replace('\n', " ");
            // The store's limiter says so when the memory cap stops a growth.
            let kind = if message.contains("growing memory") {
                PluginError::Memory
            } else {
                PluginError::Other
            };
            (kind, message)
        }
    };
    anyhow::Error::new(CallError { kind, message })
}
