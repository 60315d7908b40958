//! Tenants on a shared listener: each recipient goes to the tenant that owns its domain,
//! and each tenant's chain sees only its own recipients. How the tenants' answers become
//! the one reply to DATA: all accepted → 250; else the first temporary failure (so the
//! client retries: a tenant that had accepted may see the message twice, none loses it);
//! else the first permanent refusal.
//!
//! Each tenant's own limits apply to its recipients: past its `max_recipients` its next
//! recipient gets `452`, and a message (declared at MAIL, or received) over its
//! `max_message_size` gets `552` for its recipients, without its chain being called.

use std::net::SocketAddr;
use std::sync::Arc;

use wasmtpd_protocol::{EnhancedCode, Reply, replies};

use super::chain::PluginChain;
use crate::config::TenantLimits;
use crate::handler::{Handlers, Message, SessionFacts, SessionHandlers, Verdict, VerdictFuture, VerdictsFuture};
use crate::hook::{Audience, Hook, HookKind};
use crate::metrics::{Outcome, TenantMetrics};

#[derive(Clone)]
pub struct Tenant {
    pub name: String,
    /// Lower-case domains.
    pub domains: Vec<String>,
    pub chain: Arc<PluginChain>,
    pub metrics: Arc<TenantMetrics>,
    pub limits: TenantLimits,
}

pub struct TenantRouter {
    /// The listener's own chain: hooks before any recipient, and DATA.
    own: Arc<PluginChain>,
    tenants: Arc<Vec<Tenant>>,
}

impl TenantRouter {
    pub fn new(own: Arc<PluginChain>, tenants: Vec<Tenant>) -> TenantRouter {
        TenantRouter {
            own,
            tenants: Arc::new(tenants),
        }
    }
}

impl Handlers for TenantRouter {
    fn session(&self, peer: SocketAddr) -> Box<dyn SessionHandlers> {
        Box::new(RoutedSession {
            own: self.own.session(peer),
            tenants: Arc::clone(&self.tenants),
            sessions: self.tenants.iter().map(|_| None).collect(),
            recipients: vec![0; self.tenants.len()],
            declared_size: None,
            peer,
            facts: Arc::default(),
        })
    }

    fn names(&self) -> Vec<String> {
        let mut names = self.own.names();
        names.extend(
            self.tenants
                .iter()
                .map(|t| format!("tenant {}: {}", t.name, t.chain.names().join(" → "))),
        );
        names
    }

    /// The listener's chain and every tenant's: a message may reach them all.
    fn body_copies(&self) -> usize {
        self.own.body_copies() + self.tenants.iter().map(|t| t.chain.body_copies()).sum::<usize>()
    }
}

struct RoutedSession {
    own: Box<dyn SessionHandlers>,
    tenants: Arc<Vec<Tenant>>,
    /// Each tenant's handlers for this session, opened at its first recipient.
    sessions: Vec<Option<Box<dyn SessionHandlers>>>,
    /// Each tenant's recipients accepted in this transaction.
    recipients: Vec<usize>,
    /// The size the client declared at MAIL (RFC 1870), if it did.
    declared_size: Option<u64>,
    peer: SocketAddr,
    /// What the session learnt, for tenant sessions opened later.
    facts: Arc<SessionFacts>,
}

/// Which tenant owns the address's domain.
fn tenant_of(tenants: &[Tenant], address: &str) -> Option<usize> {
    let domain = address.rsplit_once('@')?.1.to_ascii_lowercase();
    tenants.iter().position(|t| t.domains.contains(&domain))
}

/// The server's own reply to a tenant's recipients, for a limit of that tenant's.
fn refusal(tenant: &Tenant, reply: Reply) -> Verdict {
    Verdict::Reply {
        handler: format!("tenant {} limits", tenant.name),
        reply,
    }
}

/// A recipient whose domain no tenant here owns.
fn unrouted(to: &str) -> Verdict {
    let enhanced = EnhancedCode {
        class: 5,
        subject: 1,
        detail: 2,
    };
    Verdict::Reply {
        handler: "router".into(),
        reply: Reply::new(
            550,
            Some(enhanced),
            format!("<{to}>: no tenant here takes mail for that domain"),
        ),
    }
}

impl RoutedSession {
    fn tenant_session(&mut self, index: usize) -> &mut Box<dyn SessionHandlers> {
        let (tenants, peer, facts) = (&self.tenants, self.peer, &self.facts);
        self.sessions[index].get_or_insert_with(|| {
            tenants[index].metrics.session_started();
            let mut session = tenants[index].chain.session(peer);
            session.learn(Arc::clone(facts));
            session
        })
    }

    async fn rcpt(&mut self, hook: Hook<'_>, to: &str) -> Verdict {
        let Some(index) = tenant_of(&self.tenants, to) else {
            return unrouted(to);
        };
        let tenant = &self.tenants[index];
        if let (Some(declared), Some(max)) = (self.declared_size, tenant.limits.max_message_size)
            && declared > max as u64
        {
            return refusal(tenant, replies::SIZE_EXCEEDED);
        }
        if tenant
            .limits
            .max_recipients
            .is_some_and(|max| self.recipients[index] >= max)
        {
            return refusal(tenant, replies::TOO_MANY_RECIPIENTS);
        }
        let verdict = self.tenant_session(index).hook(hook).await;
        if Outcome::of(&verdict) == Outcome::Accepted {
            self.recipients[index] += 1;
        }
        verdict
    }

    async fn run_hook(&mut self, hook: Hook<'_>) -> Verdict {
        if matches!(hook.kind(), HookKind::Mail | HookKind::Rset) {
            self.recipients.iter_mut().for_each(|n| *n = 0);
            self.declared_size = None;
        }
        if let Hook::Mail { size, .. } = hook {
            self.declared_size = size;
        }
        match (hook.kind().audience(), hook) {
            (Audience::Recipient, Hook::Rcpt { to, .. }) => self.rcpt(hook, to).await,
            // Only RCPT names a recipient: anything else is the listener's.
            (Audience::Listener | Audience::Recipient, _) => self.own.hook(hook).await,
            (Audience::Everyone, _) => {
                for session in self.sessions.iter_mut().flatten() {
                    let _ = session.hook(hook).await;
                }
                self.own.hook(hook).await
            }
        }
    }

    async fn run_message(&mut self, message: &Arc<Message>) -> Verdict {
        let parts = self.run_parts(message, false).await;
        combine(parts.into_iter().flat_map(|part| part.verdicts).collect())
    }

    /// A verdict for each recipient, in order (LMTP): each tenant's for its own.
    async fn run_message_each(&mut self, message: &Arc<Message>) -> Vec<Verdict> {
        // Every recipient was routed at RCPT; one that no longer is was refused there.
        let mut verdicts = vec![Verdict::Continue; message.rcpt_to.len()];
        for part in self.run_parts(message, true).await {
            for (place, verdict) in part.places.into_iter().zip(part.verdicts) {
                verdicts[place] = verdict;
            }
        }
        verdicts
    }

    /// Each tenant's part of the message through its chain.
    async fn run_parts(&mut self, message: &Arc<Message>, each: bool) -> Vec<Part> {
        // The places of each tenant's recipients in the message (an address given twice
        // is two recipients).
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        for (place, rcpt) in message.rcpt_to.iter().enumerate() {
            let Some(index) = tenant_of(&self.tenants, rcpt.as_str()) else {
                continue;
            };
            match groups.iter_mut().find(|(i, _)| *i == index) {
                Some((_, places)) => places.push(place),
                None => groups.push((index, vec![place])),
            }
        }
        let mut parts = Vec::new();
        for (index, places) in groups {
            let too_big = self.tenants[index]
                .limits
                .max_message_size
                .is_some_and(|max| message.data.len() > max);
            // Its edits may not grow the message past the tenant's own limit either.
            let size_limit = self.tenants[index]
                .limits
                .max_message_size
                .map_or(message.size_limit, |max| max.min(message.size_limit));
            let part = if too_big {
                None
            } else if places.len() == message.rcpt_to.len() && size_limit == message.size_limit {
                // One tenant has every recipient, under the same limit: the message as it
                // is, no copy.
                Some(Arc::clone(message))
            } else {
                Some(Arc::new(Message {
                    size_limit,
                    ..message.part_for(&places)
                }))
            };
            let verdicts = match part {
                None => vec![refusal(&self.tenants[index], replies::SIZE_EXCEEDED); places.len()],
                Some(part) if each => self.tenant_session(index).process_message_each(&part).await,
                Some(part) => vec![self.tenant_session(index).process_message(&part).await],
            };
            self.tenants[index].metrics.message(outcome(&verdicts));
            parts.push(Part { places, verdicts });
        }
        parts
    }
}

/// A tenant's part of a message: its recipients' places in the message, and their
/// verdicts (one each, or one for all).
struct Part {
    places: Vec<usize>,
    verdicts: Vec<Verdict>,
}

/// The one answer for a message from each tenant's answer (see the module's comment).
/// A single tenant's answer goes out as it is.
/// What [`combine`] would make of `verdicts`, without making it: for the counters.
fn outcome(verdicts: &[Verdict]) -> Outcome {
    let outcomes = || verdicts.iter().map(Outcome::of);
    [Outcome::Tempfailed, Outcome::Rejected]
        .into_iter()
        .find(|worst| outcomes().any(|o| o == *worst))
        .unwrap_or(Outcome::Accepted)
}

fn combine(mut verdicts: Vec<Verdict>) -> Verdict {
    if verdicts.len() == 1 {
        return verdicts.pop().unwrap_or(Verdict::Continue);
    }
    if verdicts.iter().all(|v| Outcome::of(v) == Outcome::Accepted) {
        return Verdict::Continue;
    }
    let first_temporary = verdicts.iter().position(|v| Outcome::of(v) == Outcome::Tempfailed);
    let index = first_temporary
        .or_else(|| verdicts.iter().position(|v| Outcome::of(v) == Outcome::Rejected))
        .unwrap_or(0);
    verdicts.into_iter().nth(index).unwrap_or(Verdict::Continue)
}

impl SessionHandlers for RoutedSession {
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
        self.own.learn(Arc::clone(&facts));
        for session in self.sessions.iter_mut().flatten() {
            session.learn(Arc::clone(&facts));
        }
        self.facts = facts;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::{PluginError, PluginFailure};

    fn reply(text: &str) -> Verdict {
        Verdict::answered("t".into(), text)
    }

    fn text(verdict: &Verdict) -> String {
        match verdict {
            Verdict::Continue => "continue".into(),
            Verdict::Reply { reply, .. } => reply.one_line(),
            Verdict::Failed { failure, .. } => format!("failed: {failure}"),
        }
    }

    #[test]
    fn replies_combine_with_temporary_failures_first() {
        assert_eq!(text(&combine(vec![Verdict::Continue, reply("250 fine")])), "continue");
        // One tenant's reply is the reply, a 2xx included.
        assert_eq!(text(&combine(vec![reply("250 2.6.0 queued")])), "250 2.6.0 queued");
        assert_eq!(text(&combine(vec![Verdict::Continue, reply("550 no")])), "550 5.0.0 no");
        assert_eq!(
            text(&combine(vec![reply("550 no"), reply("451 later")])),
            "451 4.0.0 later"
        );
        let failed = Verdict::Failed {
            handler: "t".into(),
            failure: PluginFailure::new(PluginError::Trap, "trap"),
        };
        assert_eq!(
            text(&combine(vec![Verdict::Continue, failed, reply("554 no")])),
            "failed: trap"
        );
    }

    #[test]
    fn the_routers_own_replies_are_values() {
        let Verdict::Reply { reply, .. } = unrouted("a@nowhere.example") else {
            panic!("not a reply");
        };
        assert_eq!(
            reply.one_line(),
            "550 5.1.2 <a@nowhere.example>: no tenant here takes mail for that domain"
        );
        assert_eq!(Outcome::of(&unrouted("x")), Outcome::Rejected);
    }
}
