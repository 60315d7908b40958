//! The hooks: the points in a session where handlers may answer instead of the server.
//! [`HookKind`] is the one table of them; the log's names, the breaker's entry points, the
//! shared listener's dispatch and where a 2xx answer is sent all come from it, and the
//! plugin runtime's bindings from its twin in `plugin/exports.rs`.
//!
//! Adding a hook: its interface in `wit/plugin.wit` (and an `export` line in the
//! `host-side` world), a row in the table below, its arguments in [`Hook`], a row in
//! `plugin/exports.rs`, and the session's call where the command is handled.

/// What a 2xx answer of a handler does at a hook (a 4xx or 5xx always refuses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Positive {
    /// It is the reply: the client gets it instead of the server's own 250.
    Sent,
    /// It accepts, and the server's own reply is sent: the protocol fixes that reply (the
    /// greeting is a 220 naming the server, EHLO's lists the extensions, DATA goes on with
    /// 354, AUTH succeeds with 235), so a handler cannot word it.
    HostReply,
    /// The hook is a notice: whatever a handler answers is ignored.
    Ignored,
}

/// Whose handlers a hook goes to on a listener shared by tenants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// The listener's own chain speaks for the session.
    Listener,
    /// The chain of the tenant that owns the recipient's domain.
    Recipient,
    /// Every chain that has seen the session is told.
    Everyone,
}

macro_rules! hook_table {
    ($( $(#[$doc:meta])* $kind:ident $name:literal $positive:ident $audience:ident; )*) => {
        /// A hook, without its arguments.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum HookKind {
            $( $(#[$doc])* $kind, )*
        }

        impl HookKind {
            /// Every hook, in the table's order.
            pub const ALL: &'static [HookKind] = &[$(HookKind::$kind),*];
            pub const COUNT: usize = Self::ALL.len();

            /// The name in the log and the metrics; its WIT interface is `NAME-hook`.
            pub const fn name(self) -> &'static str {
                match self { $(HookKind::$kind => $name,)* }
            }

            pub const fn positive(self) -> Positive {
                match self { $(HookKind::$kind => Positive::$positive,)* }
            }

            pub const fn audience(self) -> Audience {
                match self { $(HookKind::$kind => Audience::$audience,)* }
            }
        }
    };
}

hook_table! {
    //             name       a 2xx answer   on a shared listener
    /// A client connected.
    Connect        "connect"  HostReply      Listener;
    /// HELO or EHLO.
    Helo           "helo"     HostReply      Listener;
    /// MAIL FROM.
    Mail           "mail"     Sent           Listener;
    /// RCPT TO, one recipient.
    Rcpt           "rcpt"     Sent           Recipient;
    /// DATA, before 354.
    Data           "data"     HostReply      Listener;
    /// AUTH over TLS: a 2xx accepts the credentials.
    Auth           "auth"     HostReply      Listener;
    /// RSET, or a new greeting inside a transaction.
    Rset           "rset"     Ignored        Everyone;
    /// The session is over.
    Quit           "quit"     Ignored        Everyone;
}

impl HookKind {
    /// Whether handlers' answers are ignored (the hook only tells them something).
    pub const fn is_notice(self) -> bool {
        matches!(self.positive(), Positive::Ignored)
    }

    /// The hook's place in [`HookKind::ALL`], e.g. to index per-hook state.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// A hook with its arguments, as the session asks it.
#[derive(Clone, Copy, Debug)]
pub enum Hook<'a> {
    Connect,
    Helo {
        name: &'a str,
        extended: bool,
    },
    /// `from` is `""` for the null reverse path; `size` is what `SIZE=` declared, as the
    /// session parsed it.
    Mail {
        from: &'a str,
        options: &'a [String],
        size: Option<u64>,
    },
    Rcpt {
        to: &'a str,
        options: &'a [String],
    },
    Data,
    /// The credentials, decoded.
    Auth {
        identity: &'a str,
        password: Password<'a>,
    },
    Rset,
    Quit,
}

impl Hook<'_> {
    pub const fn kind(&self) -> HookKind {
        match self {
            Hook::Connect => HookKind::Connect,
            Hook::Helo { .. } => HookKind::Helo,
            Hook::Mail { .. } => HookKind::Mail,
            Hook::Rcpt { .. } => HookKind::Rcpt,
            Hook::Data => HookKind::Data,
            Hook::Auth { .. } => HookKind::Auth,
            Hook::Rset => HookKind::Rset,
            Hook::Quit => HookKind::Quit,
        }
    }
}

/// A password on its way to the handlers: shown as `…` wherever a hook is printed.
#[derive(Clone, Copy)]
pub struct Password<'a>(pub &'a str);

impl std::fmt::Debug for Password<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_order_and_names_are_unique() {
        for (i, kind) in HookKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
        let mut names: Vec<&str> = HookKind::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), HookKind::COUNT);
    }

    #[test]
    fn notices_go_to_everyone_and_only_rcpt_is_routed_by_recipient() {
        for kind in HookKind::ALL {
            assert_eq!(kind.is_notice(), kind.audience() == Audience::Everyone, "{kind:?}");
        }
        let routed: Vec<_> = HookKind::ALL
            .iter()
            .filter(|k| k.audience() == Audience::Recipient)
            .collect();
        assert_eq!(routed, [&HookKind::Rcpt]);
    }

    #[test]
    fn a_password_is_never_printed() {
        let hook = Hook::Auth {
            identity: "alice",
            password: Password("hunter2"),
        };
        let shown = format!("{hook:?}");
        assert!(shown.contains("alice") && !shown.contains("hunter2"), "{shown}");
    }
}
