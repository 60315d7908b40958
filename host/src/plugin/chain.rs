//! A listener's plugin chain: each session gets one instance of each plugin, created when
//! first needed; hooks and messages go through the plugins in order until one answers.
//! A chain's calls at once are capped (see [`super::share`]), and a running guest yields
//! at every epoch tick, so that no chain can occupy all of the runtime's threads; a
//! plugin that keeps failing rests (see [`super::breaker`]).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtpd_protocol::replies;

use super::bindings::Peer;
use super::breaker::{Breaker, FAILURES_TO_OPEN};
use super::component::Plugin;
use super::edits::Edited;
use super::instance::{CallAnswer, CallResult, MessageResult, PluginInstance, instance_survives};
use super::quarantine;
use super::recipients::{Recipients, fill, one_for_all};
use super::share::{self, TenantShare};
use super::warm::WarmInstances;
use crate::config::MessagePart;
use crate::handler::{
    Handlers, Message, PluginError, PluginFailure, SessionFacts, SessionHandlers, Verdict, VerdictFuture,
    VerdictsFuture,
};
use crate::hook::{Hook, HookKind};
use crate::ip_text::ip_text;
use crate::metrics::{Stage, TenantMetrics, stage_label};

/// A plugin instance handed more of a message than this is dropped after the call.
pub const BIG_MESSAGE: usize = 1 << 20;

/// How long a client waits for its 4xx when the plugin is resting: a client that
/// hammers a broken tenant is slowed down instead of served as fast as it can ask.
const RESTING_REPLY_DELAY: Duration = Duration::from_secs(1);

pub struct PluginChain {
    plugins: Vec<Arc<Plugin>>,
    metrics: Arc<TenantMetrics>,
    /// The tenant's share of the plugin threads: calls beyond it wait, and its CPU time.
    share: Arc<TenantShare>,
    /// One per plugin (in the chain's order) and entry point: a plugin that fails at the
    /// end of DATA but answers its RCPT hook still rests at the end of DATA.
    breakers: Arc<Vec<[Breaker; ENTRY_POINTS]>>,
    /// The Maildir that messages a plugin quarantines go to, if one is configured.
    quarantine: Option<Arc<Path>>,
    /// The key-value namespace of the tenant this chain serves (`tenant:NAME`); without
    /// one each plugin uses its own.
    namespace: Option<Arc<str>>,
    /// One per plugin: the idle instances of a `stateless` one, shared by the chain's
    /// sessions; `None` for a plugin whose sessions get instances of their own.
    warm: Arc<[Option<WarmInstances>]>,
}

impl PluginChain {
    /// The tenant this chain serves, for its plugins' key-value namespace.
    pub fn with_tenant(mut self, tenant: Option<&str>) -> PluginChain {
        self.namespace = tenant.map(|t| format!("tenant:{t}").into());
        self
    }

    /// Where this chain's quarantined messages go.
    pub fn with_quarantine(mut self, dir: Option<&Path>) -> PluginChain {
        self.quarantine = dir.map(Arc::from);
        self
    }

    /// `share` is the tenant's share of the plugin threads, shared by all its chains.
    pub fn new(plugins: Vec<Arc<Plugin>>, metrics: Arc<TenantMetrics>, share: Arc<TenantShare>) -> PluginChain {
        let breakers = plugins
            .iter()
            .map(|p| std::array::from_fn(|_| Breaker::new(p.time_budget)))
            .collect();
        let warm = plugins
            .iter()
            .map(|p| p.stateless.then(|| WarmInstances::new(share::threads())))
            .collect();
        PluginChain {
            warm,
            plugins,
            metrics,
            share,
            breakers: Arc::new(breakers),
            quarantine: None,
            namespace: None,
        }
    }
}

impl Handlers for PluginChain {
    fn session(&self, peer: SocketAddr) -> Box<dyn SessionHandlers> {
        Box::new(ChainSession {
            plugins: self.plugins.clone(),
            metrics: Arc::clone(&self.metrics),
            share: Arc::clone(&self.share),
            breakers: Arc::clone(&self.breakers),
            instances: self.plugins.iter().map(|_| None).collect(),
            called: vec![false; self.plugins.len()],
            facts: Arc::default(),
            quarantine: self.quarantine.clone(),
            namespace: self.namespace.clone(),
            warm: Arc::clone(&self.warm),
            edited: None,
            peer: Peer {
                ip: ip_text(peer.ip()),
                port: peer.port(),
            },
        })
    }

    fn names(&self) -> Vec<String> {
        self.plugins.iter().map(|p| p.info.name.clone()).collect()
    }

    /// One for each plugin that is handed the whole message (a header section is small).
    fn body_copies(&self) -> usize {
        self.plugins.iter().filter(|p| p.message == MessagePart::Whole).count()
    }
}

struct ChainSession {
    /// The chain as it was when the session started: a reload does not change it.
    plugins: Vec<Arc<Plugin>>,
    metrics: Arc<TenantMetrics>,
    share: Arc<TenantShare>,
    breakers: Arc<Vec<[Breaker; ENTRY_POINTS]>>,
    instances: Vec<Option<PluginInstance>>,
    /// Which plugins this session has called (a stateless one holds no instance of it).
    called: Vec<bool>,
    peer: Peer,
    /// What the session learnt so far; each call's instance is told before the call.
    facts: Arc<SessionFacts>,
    quarantine: Option<Arc<Path>>,
    namespace: Option<Arc<str>>,
    warm: Arc<[Option<WarmInstances>]>,
    /// What the last `process-message` call's edits came to.
    edited: Option<Edited>,
}

/// One call into a plugin.
#[derive(Clone, Copy)]
enum Call<'a> {
    Hook(Hook<'a>),
    /// The message, with its recipients as the WIT wants them.
    Message(&'a Arc<Message>, &'a [String]),
}

/// A plugin's entry points: each hook, and `process-message`.
const ENTRY_POINTS: usize = HookKind::COUNT + 1;

impl Call<'_> {
    fn entry_point(&self) -> usize {
        match self {
            Call::Hook(hook) => hook.kind().index(),
            Call::Message(..) => HookKind::COUNT,
        }
    }

    fn is_notice(&self) -> bool {
        matches!(self, Call::Hook(hook) if hook.kind().is_notice())
    }

    fn stage(&self) -> Stage {
        match self {
            Call::Hook(hook) => Some(hook.kind()),
            Call::Message(..) => None,
        }
    }
}

impl ChainSession {
    /// Runs `call` with this session's instance of plugin `index` (created if needed),
    /// once the chain's share of the runtime's threads has room.
    async fn call(&mut self, index: usize, call: Call<'_>) -> MessageResult {
        let plugin = Arc::clone(&self.plugins[index]);
        let Ok(turn) = self.share.calls.acquire().await else {
            return Err(PluginFailure::new(PluginError::Other, "the plugin chain was closed"));
        };
        let now = Instant::now();
        self.share.activity.call_starts(now);
        // Asked once the turn has come: the breaker may have opened meanwhile.
        let point = call.entry_point();
        if let Err(resting) = self.breakers[index][point].admit(now) {
            drop(turn);
            // A notice has no client waiting for its answer: nothing to slow down.
            if !call.is_notice() {
                tokio::time::sleep(RESTING_REPLY_DELAY).await;
            }
            let left = resting.until.saturating_duration_since(Instant::now());
            let failure = PluginFailure::new(
                PluginError::Resting,
                format!(
                    "not called: resting after failing too often ({} ms left)",
                    left.as_millis()
                ),
            );
            self.metrics.plugin_error(failure.kind);
            return Err(failure);
        }
        // Counted from the turn: waiting for one is not time spent in the plugin.
        let started = Instant::now();
        self.called[index] = true;
        let idle = match &self.warm[index] {
            Some(warm) => warm.take(),
            None => self.instances[index].take(),
        };
        let result = match idle {
            Some(instance) => Ok(instance),
            None => plugin
                .instantiate(self.namespace.as_ref(), &self.share)
                .await
                .map_err(|failure| PluginFailure {
                    message: format!("cannot start an instance: {}", failure.message),
                    ..failure
                }),
        };
        // Guest time the call ran, if an instance ran it.
        let mut guest_ran = None;
        let result = match result {
            Ok(mut instance) => {
                instance.learn(&self.facts);
                let result = match call {
                    Call::Hook(hook) => instance.hook(hook, &self.peer).await.map(CallAnswer::One),
                    Call::Message(message, rcpt_tos) => {
                        let (result, edited) = instance.process_message(message, &self.peer, rcpt_tos).await;
                        self.edited = edited;
                        result
                    }
                };
                self.metrics.plugin_throttled(instance.throttled());
                guest_ran = Some((instance.guest_time(), instance.take_uncharged()));
                // A failed instance cannot be entered again: the next call gets a fresh one.
                // Nor is one kept that took in a big message: a wasm memory cannot shrink,
                // and dropped, its memory goes back at once instead of when the session ends.
                let took_big =
                    matches!(call, Call::Message(message, _) if plugin.message.of(&message.data).len() > BIG_MESSAGE);
                if result.as_ref().err().is_none_or(instance_survives) && !took_big {
                    match &self.warm[index] {
                        Some(warm) => warm.give_back(instance),
                        None => self.instances[index] = Some(instance),
                    }
                }
                result
            }
            Err(e) => Err(e),
        };
        // One clock read for what the call's end is counted in.
        let ended = Instant::now();
        if let Some((ran, _)) = guest_ran {
            self.share.activity.call_ends(ran, ended);
        }
        self.metrics
            .plugin_call(call.stage(), ended.saturating_duration_since(started));
        if let Err(failure) = &result {
            self.metrics.plugin_error(failure.kind);
        }
        // An answer that is not a reply is the plugin's bug, not its failure to run.
        let ran = result.as_ref().err().is_none_or(instance_survives);
        if self.breakers[index][point].record(ended, ran) {
            tracing::warn!(
                plugin = %plugin.info.name,
                stage = stage_label(call.stage()),
                "failed {FAILURES_TO_OPEN} times in a row: resting; its calls get 451 until a trial call succeeds"
            );
        }
        // Under a cap, what the call ran between ticks is charged now (all of a call
        // shorter than a tick, and of its instance's start); a tenant that this puts past
        // its cap pauses before it answers, holding its turn as a pause at a tick does, so
        // that calls too short to tick cannot escape the cap, nor many sessions at once.
        // (The default share is left to the ticks: it weighs computing, not short calls.)
        if let (Some((_, uncharged)), Some(budget)) = (guest_ran, &self.share.cpu) {
            let owed = budget.charge_call_end(uncharged, ended);
            // A notice has no client waiting for its answer: nothing to slow down.
            if !owed.is_zero() && !call.is_notice() {
                tokio::time::sleep(owed).await;
                self.metrics.plugin_throttled(owed);
            }
        }
        drop(turn);
        result
    }

    /// A call's one answer (a hook's, or `process-message`'s) as a verdict.
    fn verdict(&self, index: usize, result: CallResult) -> Verdict {
        let handler = self.plugins[index].info.name.clone();
        match result {
            Ok(None) => Verdict::Continue,
            Ok(Some(reply)) => Verdict::Reply { handler, reply },
            Err(failure) => Verdict::Failed { handler, failure },
        }
    }

    async fn run_hook(&mut self, hook: Hook<'_>) -> Verdict {
        let kind = hook.kind();
        for index in 0..self.plugins.len() {
            if !self.plugins[index].has_hook(kind) {
                continue;
            }
            if kind.is_notice() && !self.called[index] {
                // Nothing to tell a plugin that never saw this session.
                continue;
            }
            let result = match self.call(index, Call::Hook(hook)).await {
                Ok(CallAnswer::One(answer)) => Ok(answer),
                Ok(CallAnswer::Each(_)) => unreachable!("a hook has one answer"),
                Err(failure) => Err(failure),
            };
            if kind.is_notice() {
                if let Err(failure) = result {
                    let plugin = self.plugins[index].info.name.as_str();
                    tracing::warn!(plugin, stage = kind.name(), "notice failed: {failure}");
                }
                continue;
            }
            if !matches!(result, Ok(None)) {
                return self.verdict(index, result);
            }
        }
        if kind == HookKind::Quit {
            self.instances.iter_mut().for_each(|slot| *slot = None);
            self.called.iter_mut().for_each(|called| *called = false);
        }
        Verdict::Continue
    }

    /// The message through the chain, one verdict for it: its recipients' verdicts (see
    /// [`ChainSession::run_message_each`]) made one.
    async fn run_message(&mut self, message: &Arc<Message>) -> Verdict {
        one_for_all(self.run_message_each(message).await)
    }

    /// The message through the chain, a verdict for each of its recipients, in order.
    /// Each plugin is handed the message as the plugins before it left it (their edits
    /// applied), with only the recipients nobody has answered for yet; a recipient is
    /// decided by the first plugin that answers for it (`process-message`'s one answer is
    /// for all it was handed). A quarantine decides all that are left.
    async fn run_message_each(&mut self, message: &Arc<Message>) -> Vec<Verdict> {
        let mut decided: Vec<Option<Verdict>> = vec![None; message.rcpt_to.len()];
        // The message as the next plugin is handed it, its recipients' places, and the
        // recipients in the WIT's shape, made again only when the message changes.
        let mut current = Arc::clone(message);
        let mut places = Recipients::of(message);
        let mut rcpt_tos = recipients(&current);
        for index in 0..self.plugins.len() {
            if decided.iter().all(Option::is_some) {
                break;
            }
            if let Some((part, part_places)) = places.open_part(&current, &decided) {
                current = part;
                places = part_places;
                rcpt_tos = recipients(&current);
            }
            let result = self.call(index, Call::Message(&current, &rcpt_tos)).await;
            // The answers are for the recipients as handed, before any edit of theirs.
            self.decide(index, result, &places, &mut decided);
            let Some(edited) = self.edited.take() else {
                continue;
            };
            if let Some(changed) = edited.message {
                places = places.carried(&current.rcpt_to, &changed.rcpt_to);
                current = Arc::new(changed);
                rcpt_tos = recipients(&current);
            }
            if let Some(reason) = edited.quarantine {
                let verdict = self.quarantine(index, &current, &reason).await;
                return fill(decided, &verdict);
            }
        }
        fill(decided, &Verdict::Continue)
    }

    /// Records what a call answered for the recipients it was handed.
    fn decide(&self, index: usize, result: MessageResult, places: &Recipients, decided: &mut [Option<Verdict>]) {
        let handler = &self.plugins[index].info.name;
        let mut decide = |place: Option<usize>, verdict: Verdict| {
            if let Some(slot) = place.and_then(|i| decided.get_mut(i))
                && slot.is_none()
            {
                *slot = Some(verdict);
            }
        };
        let verdict = match result {
            Ok(CallAnswer::One(None)) => return,
            Ok(CallAnswer::Each(answers)) => {
                for (&place, answer) in places.origin.iter().zip(answers) {
                    if let Some(reply) = answer {
                        let handler = handler.clone();
                        decide(place, Verdict::Reply { handler, reply });
                    }
                }
                return;
            }
            Ok(CallAnswer::One(Some(reply))) => self.verdict(index, Ok(Some(reply))),
            Err(failure) => self.verdict(index, Err(failure)),
        };
        for &place in &places.origin {
            decide(place, verdict.clone());
        }
    }

    /// Keeps a message a plugin quarantined in the chain's quarantine Maildir, and accepts it.
    async fn quarantine(&mut self, index: usize, message: &Message, reason: &str) -> Verdict {
        let handler = self.plugins[index].info.name.clone();
        let Some(dir) = &self.quarantine else {
            let failure = PluginFailure::new(
                PluginError::Other,
                format!("quarantined the message ({reason:?}), but no quarantine is configured"),
            );
            return Verdict::Failed { handler, failure };
        };
        match quarantine::store(dir, &handler, reason, message).await {
            Ok(file) => {
                tracing::info!(plugin = handler, id = %message.id, from = message.mail_from.as_ref().map_or("", |a| a.as_str()), recipients = message.rcpt_to.len(), reason, file = %file.display(), "message quarantined");
                Verdict::Reply {
                    handler,
                    reply: replies::MESSAGE_ACCEPTED,
                }
            }
            Err(e) => {
                let failure = PluginFailure::new(
                    PluginError::Other,
                    format!("cannot quarantine in {}: {e:#}", dir.display()),
                );
                Verdict::Failed { handler, failure }
            }
        }
    }
}

/// The recipients as the WIT hands them to `process-message`.
fn recipients(message: &Message) -> Vec<String> {
    message.rcpt_to.iter().map(|a| a.as_str().to_owned()).collect()
}

impl SessionHandlers for ChainSession {
    fn wants(&self, kind: HookKind) -> bool {
        // QUIT also ends the session's instances.
        kind == HookKind::Quit || self.plugins.iter().any(|p| p.has_hook(kind))
    }

    fn hook<'a>(&'a mut self, hook: Hook<'a>) -> VerdictFuture<'a> {
        Box::pin(self.run_hook(hook))
    }

    fn process_message<'a>(&'a mut self, message: &'a Arc<Message>) -> VerdictFuture<'a> {
        Box::pin(self.run_message(message))
    }

    fn process_message_each<'a>(&'a mut self, message: &'a Arc<Message>) -> VerdictsFuture<'a> {
        Box::pin(self.run_message_each(message))
    }

    fn learn(&mut self, facts: Arc<SessionFacts>) {
        self.facts = facts;
    }
}
