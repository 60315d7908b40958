//! A message's recipients as a chain decides them one by one: which are still open, the
//! message a plugin is handed (only those), and the one verdict an SMTP listener sends
//! for all. Recipients are told apart by their place in the message, never by address:
//! the same address may be given twice, and each RCPT gets its own reply (RFC 2033 4.2).

use std::sync::Arc;

use wasmtpd_protocol::Address;

use crate::handler::{Message, Verdict};

/// The recipients of the message in hand, each with its place in the message the chain
/// was given (`None` for one a plugin's edit added, which has no reply of its own).
#[derive(Clone, Debug)]
pub struct Recipients {
    pub origin: Vec<Option<usize>>,
}

impl Recipients {
    /// The recipients of the message the chain was given.
    pub fn of(message: &Message) -> Recipients {
        Recipients {
            origin: (0..message.rcpt_to.len()).map(Some).collect(),
        }
    }

    /// After an edit turned `before` into `after`: each recipient of `after` keeps the
    /// place of the first recipient of `before` with its address not taken yet.
    pub fn carried(&self, before: &[Address], after: &[Address]) -> Recipients {
        let mut taken = vec![false; before.len()];
        let origin = after
            .iter()
            .map(|address| {
                let j = (0..before.len()).find(|&j| !taken[j] && before[j] == *address)?;
                taken[j] = true;
                self.origin[j]
            })
            .collect();
        Recipients { origin }
    }

    /// Those still to be decided (and those an edit added), as a message of their own;
    /// `None` when that is all of `message`.
    pub fn open_part(&self, message: &Arc<Message>, decided: &[Option<Verdict>]) -> Option<(Arc<Message>, Recipients)> {
        let open = |origin: &Option<usize>| origin.is_none_or(|i| decided[i].is_none());
        if self.origin.iter().all(open) {
            return None;
        }
        let keep: Vec<usize> = (0..self.origin.len()).filter(|&k| open(&self.origin[k])).collect();
        let origin = keep.iter().map(|&k| self.origin[k]).collect();
        Some((Arc::new(message.part_for(&keep)), Recipients { origin }))
    }
}

/// Each recipient's verdict: its own, else `verdict`.
pub fn fill(decided: Vec<Option<Verdict>>, verdict: &Verdict) -> Vec<Verdict> {
    decided
        .into_iter()
        .map(|v| v.unwrap_or_else(|| verdict.clone()))
        .collect()
}

/// The recipients' verdicts as the one reply of an SMTP listener: the first that defers
/// (the client retries them all), else the first refusal, else the first 2xx a plugin
/// answered, else the server's own.
pub fn one_for_all(verdicts: Vec<Verdict>) -> Verdict {
    let class = |verdict: &Verdict| match verdict {
        Verdict::Continue => 2,
        Verdict::Reply { reply, .. } => reply.code() / 100,
        Verdict::Failed { .. } => 4,
    };
    let first = |wanted: u16| {
        verdicts
            .iter()
            .position(|v| class(v) == wanted && !matches!(v, Verdict::Continue))
    };
    match first(4).or_else(|| first(5)).or_else(|| first(2)) {
        Some(i) => verdicts.into_iter().nth(i).unwrap_or(Verdict::Continue),
        None => Verdict::Continue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> Address {
        Address::new_unchecked(text)
    }

    fn reply(text: &str) -> Verdict {
        Verdict::answered("t".into(), text)
    }

    fn code(verdict: &Verdict) -> u16 {
        match verdict {
            Verdict::Continue => 0,
            Verdict::Reply { reply, .. } => reply.code(),
            Verdict::Failed { .. } => 451,
        }
    }

    #[test]
    fn edits_keep_each_recipients_place_even_for_a_repeated_address() {
        let before = [address("a@x"), address("b@x"), address("a@x")];
        let after = [address("a@x"), address("new@x"), address("a@x")];
        let places = Recipients {
            origin: vec![Some(0), Some(1), Some(2)],
        };
        let carried = places.carried(&before, &after);
        assert_eq!(carried.origin, [Some(0), None, Some(2)]);
    }

    #[test]
    fn the_open_part_holds_the_undecided_and_the_added() {
        let message = Arc::new(Message {
            peer: "127.0.0.1:1".parse().unwrap(),
            mail_from: None,
            rcpt_to: vec![address("a@x"), address("b@x"), address("a@x")],
            data: bytes::Bytes::from_static(b"Subject: x\r\n\r\n"),
            mail_options: vec![],
            rcpt_options: vec![],
            size_limit: 1000,
            id: "id".into(),
            received: String::new(),
        });
        let decided = [Some(reply("550 no")), None, None];
        let (part, places) = Recipients::of(&message).open_part(&message, &decided).expect("a part");
        assert_eq!(part.rcpt_to, [address("b@x"), address("a@x")]);
        assert_eq!(places.origin, [Some(1), Some(2)]);
        // Nothing decided yet: the message itself, no copy.
        assert!(
            Recipients::of(&message)
                .open_part(&message, &[None, None, None])
                .is_none()
        );
    }

    #[test]
    fn one_reply_for_all_defers_first_then_refuses_then_keeps_a_plugins_2xx() {
        let all = |verdicts: Vec<Verdict>| code(&one_for_all(verdicts));
        assert_eq!(all(vec![reply("250 a"), reply("550 b"), reply("452 c")]), 452);
        assert_eq!(all(vec![reply("250 a"), reply("550 b")]), 550);
        assert_eq!(all(vec![Verdict::Continue, reply("251 forwarded")]), 251);
        assert_eq!(all(vec![Verdict::Continue, Verdict::Continue]), 0);
    }
}
