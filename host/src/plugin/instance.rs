//! One plugin instance, owned by one session: every call runs under the plugin's time
//! budget, what the guest printed is sent on after each call, and what the call answered
//! leaves typed: a checked [`Reply`], or a [`PluginFailure`] of a known kind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Store, Trap};
use wasmtpd_protocol::Reply;

use super::bindings::{Peer, handler, recipient_handler};
use super::component::Plugin;
use super::edits::{Edited, Edits};
use super::exports::HookGuests;
use super::output::{self, OutputTarget};
use super::pacing::CallClock;
use super::state::PluginState;
use super::warm::Wear;
use crate::handler::{Message, PluginError, PluginFailure, SessionFacts, checked_reply};
use crate::hook::Hook;

pub struct PluginInstance {
    plugin: Arc<Plugin>,
    store: Store<PluginState>,
    handler: handler::Guest,
    /// `process-message-per-recipient`, if the plugin exports it.
    per_recipient: Option<recipient_handler::Guest>,
    hooks: HookGuests,
    /// The time budget of the call in progress (or the last one).
    budget: Duration,
    /// Guest time the last call ran, taken when the guest returned (before its answer
    /// is settled, which may wait on its output).
    guest_time: Duration,
    /// Guest time no tick charged to the tenant, not yet taken to be charged: its start's,
    /// then each call's.
    uncharged: Duration,
    /// Calls the guest served.
    calls: u32,
    /// Its linear memory once it has served a message (or [`BASELINE_CALLS`] calls,
    /// if no message came first): what growth is counted from (see `warm`).
    baseline_memory: Option<usize>,
}

/// What `process-message` gets on top of the plugin's time budget for each MiB of the
/// message: copying a big message in and reading it takes time that a small one's
/// budget does not allow for, and the budget is wall time, of which a call that computes
/// long gets a fifth once it is paced (see `pacing`). A 32 MiB message: 8 s more.
const BUDGET_PER_MIB: Duration = Duration::from_millis(250);

/// Hook calls after which an instance that has had no message yet takes its baseline
/// memory. A message's call is what the memory an instance needs is measured after: a
/// guest's first hook can come long before the heap that messages need.
const BASELINE_CALLS: u32 = 16;

/// The time budget of a `process-message` call with `octets` of message: whole MiBs
/// count, so a message under one MiB has the plugin's budget as configured.
pub fn message_budget(base: Duration, octets: usize) -> Duration {
    base + BUDGET_PER_MIB * u32::try_from(octets >> 20).unwrap_or(u32::MAX)
}

/// What a call answered: `Ok(None)` to let the server go on, `Ok(Some(reply))`, or why
/// it failed. After a failure the instance must not be used again unless
/// [`instance_survives`] says so.
pub type CallResult = Result<Option<Reply>, PluginFailure>;

/// Whether the instance may take further calls after this failure: only when the guest
/// came back normally with an answer the host could not use.
pub fn instance_survives(failure: &PluginFailure) -> bool {
    failure.kind == PluginError::Malformed
}

impl PluginInstance {
    pub(super) fn new(
        plugin: Arc<Plugin>,
        store: Store<PluginState>,
        (handler, per_recipient): (handler::Guest, Option<recipient_handler::Guest>),
        hooks: HookGuests,
    ) -> PluginInstance {
        // Its start's, charged with its first call.
        let uncharged = store.data().clock.uncharged(Instant::now());
        PluginInstance {
            plugin,
            store,
            handler,
            per_recipient,
            hooks,
            budget: Duration::ZERO,
            guest_time: Duration::ZERO,
            uncharged,
            calls: 0,
            baseline_memory: None,
        }
    }

    /// What the session learnt, for the `session` import to tell. (The tenant share its
    /// calls are charged to was set when it was made: every instance a chain calls, its
    /// sessions' and its warm ones, is made with the chain's share.)
    pub fn learn(&mut self, facts: &Arc<SessionFacts>) {
        let state = self.store.data_mut();
        if !Arc::ptr_eq(&state.facts, facts) {
            state.facts = Arc::clone(facts);
        }
    }

    /// `peer` and `rcpt_tos` are the message's, in the WIT's shapes: the caller makes them
    /// once for each version of the message. With the answer, the call's edits if it
    /// accepted and made any.
    pub async fn process_message(
        &mut self,
        message: &Arc<Message>,
        peer: &Peer,
        rcpt_tos: &[String],
    ) -> (MessageResult, Option<Edited>) {
        let mail_from = message.mail_from.as_ref().map_or("", |a| a.as_str());
        // Held while the guest runs, not while its output is delivered.
        let running = self.plugin.clock.running();
        self.arm(message_budget(self.plugin.time_budget, message.data.len()));
        self.store.data_mut().edits = Some(Edits::new(Arc::clone(message)));
        let data = self.plugin.message.of(&message.data);
        let rcpt_options = message.all_rcpt_options();
        // Both exports take the same arguments; they differ in what they answer.
        macro_rules! call {
            ($guest:expr, $export:ident) => {
                $guest
                    .$export(
                        &mut self.store,
                        peer,
                        mail_from,
                        rcpt_tos,
                        data,
                        &message.mail_options,
                        &rcpt_options,
                    )
                    .await
            };
        }
        let answer = match &self.per_recipient {
            Some(guest) => {
                let result = call!(guest, call_process_message_per_recipient);
                self.guest_returned();
                self.served(true);
                drop(running);
                self.settle(result, |answers| checked_answers(answers, rcpt_tos.len()))
                    .await
            }
            None => {
                let result = call!(self.handler, call_process_message);
                self.guest_returned();
                self.served(true);
                drop(running);
                self.settle(result, checked_answer).await.map(CallAnswer::One)
            }
        };
        let edits = self.store.data_mut().edits.take();
        let accepted = answer.as_ref().is_ok_and(CallAnswer::accepts_any);
        match edits.map(|e| e.finish(accepted)) {
            Some(Err(refused)) => {
                let failure = PluginFailure::new(PluginError::Malformed, format!("edit refused: {refused}"));
                (Err(failure), None)
            }
            Some(Ok(edited)) => (answer, edited),
            None => (answer, None),
        }
    }

    /// Calls the hook; `Ok(None)` if the plugin does not export it.
    pub async fn hook(&mut self, hook: Hook<'_>, peer: &Peer) -> CallResult {
        let running = self.plugin.clock.running();
        self.arm(self.plugin.time_budget);
        let called = self.hooks.call(&mut self.store, hook, peer).await;
        self.guest_returned();
        if called.is_some() {
            self.served(false);
        }
        drop(running);
        match called {
            Some(result) => self.settle(result, checked_answer).await,
            None => Ok(None),
        }
    }

    /// Guest time the last call ran (see `CallClock::guest_time`).
    pub fn guest_time(&self) -> Duration {
        self.guest_time
    }

    /// Guest time no tick charged to the tenant since this was last asked: the last
    /// call's, and for a fresh instance its start's too.
    pub fn take_uncharged(&mut self) -> Duration {
        std::mem::take(&mut self.uncharged)
    }

    fn guest_returned(&mut self) {
        let now = Instant::now();
        let state = self.store.data();
        self.guest_time = state.clock.guest_time(now);
        self.uncharged += state.clock.uncharged(now);
    }

    /// Counts a call the guest served, `message` or hook.
    fn served(&mut self, message: bool) {
        self.calls = self.calls.saturating_add(1);
        if self.baseline_memory.is_none() && (message || self.calls >= BASELINE_CALLS) {
            self.baseline_memory = Some(self.store.data().memory.size());
        }
    }

    pub fn plugin_name(&self) -> &str {
        &self.plugin.info.name
    }

    /// What the instance has been through, for a shared one to be retired (see `warm`).
    pub fn wear(&self) -> Wear {
        let size = self.store.data().memory.size();
        Wear {
            calls: self.calls,
            grown: size.saturating_sub(self.baseline_memory.unwrap_or(size)),
        }
    }

    /// How long the last call was paused for its tenant's CPU share.
    pub fn throttled(&self) -> Duration {
        self.store.data().clock.throttled()
    }

    fn arm(&mut self, budget: Duration) {
        self.budget = budget;
        let state = self.store.data_mut();
        state.clock = CallClock::start(Instant::now(), budget);
        state.memory.reset();
        self.store.set_epoch_deadline(1);
    }

    /// Sends the call's output on, checks its answer and explains a failure.
    async fn settle<T, U>(
        &mut self,
        result: wasmtime::Result<T>,
        check: impl FnOnce(T) -> Result<U, PluginFailure>,
    ) -> Result<U, PluginFailure> {
        self.deliver_output().await;
        match result {
            Ok(answer) => check(answer),
            Err(error) => Err(failure(error, self.store.data(), self.budget.as_millis())),
        }
    }
}

impl PluginInstance {
    /// Sends what the call printed where it belongs.
    async fn deliver_output(&mut self) {
        let (stdout, stderr) = (self.store.data().stdout.clone(), self.store.data().stderr.clone());
        let name = self.plugin.info.name.as_str();
        output::deliver(name, "stdout", self.plugin.stdout, &stdout).await;
        output::deliver(name, "stderr", OutputTarget::Log, &stderr).await;
    }
}

/// What a message call answered: one reply for all its recipients (`process-message`),
/// or one for each (`process-message-per-recipient`); `None` leaves it to the next plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallAnswer {
    One(Option<Reply>),
    Each(Vec<Option<Reply>>),
}

impl CallAnswer {
    /// Whether the call accepted the message for some recipient: its edits then stand.
    pub fn accepts_any(&self) -> bool {
        let accepts = |answer: &Option<Reply>| answer.as_ref().is_none_or(Reply::is_positive);
        match self {
            CallAnswer::One(answer) => accepts(answer),
            CallAnswer::Each(answers) => answers.iter().any(accepts),
        }
    }
}

/// A message call's answer, or why it failed (see [`CallResult`]).
pub type MessageResult = Result<CallAnswer, PluginFailure>;

/// An answer, checked: a valid reply, or `none`.
fn checked_answer(answer: Option<String>) -> CallResult {
    answer.as_deref().map(checked_reply).transpose()
}

/// A per-recipient answer, checked: one valid reply or `none` for each recipient.
fn checked_answers(answers: Vec<Option<String>>, recipients: usize) -> MessageResult {
    if answers.len() != recipients {
        return Err(PluginFailure::new(
            PluginError::Malformed,
            format!("answered for {} recipients, not {recipients}", answers.len()),
        ));
    }
    answers
        .into_iter()
        .map(checked_answer)
        .collect::<Result<Vec<_>, _>>()
        .map(CallAnswer::Each)
}

/// Why a call failed, from wasmtime's trap code and the store's own record of a refused
/// growth, never from the wording of a message; on one line for the log (wasmtime's
/// message carries a multi-line wasm backtrace).
pub(super) fn failure(error: wasmtime::Error, state: &PluginState, budget_ms: u128) -> PluginFailure {
    if let Some(asked) = state.memory.refused() {
        return PluginFailure::new(
            PluginError::Memory,
            format!(
                "outgrew its memory cap of {} MiB (asked for {} MiB)",
                state.memory.limit() >> 20,
                asked.div_ceil(1 << 20)
            ),
        );
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginFailure::new(
            PluginError::Timeout,
            format!("ran past its time budget of {budget_ms} ms"),
        ),
        Some(trap) => PluginFailure::new(PluginError::Trap, format!("wasm trap: {trap}")),
        None => {
            let cause = anyhow::Error::from(error).root_cause().to_string().replace('\n', " ");
            PluginFailure::new(PluginError::Other, cause)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_call_gets_more_time_for_each_mib() {
        let base = Duration::from_secs(1);
        assert_eq!(message_budget(base, 0), base);
        assert_eq!(message_budget(base, (1 << 20) - 1), base);
        assert_eq!(message_budget(base, 20 << 20), base + BUDGET_PER_MIB * 20);
        assert_eq!(message_budget(base, (32 << 20) + 1), base + BUDGET_PER_MIB * 32);
    }
}
