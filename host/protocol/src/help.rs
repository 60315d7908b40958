//! HELP replies (RFC 5321 4.1.1.8): the command list, or one command's syntax.

use crate::reply::{Reply, replies};

/// The reply to `HELP` or `HELP topic`.
pub fn help(topic: Option<&str>) -> Reply {
    let Some(topic) = topic else {
        return replies::HELP;
    };
    let syntax = match topic.to_ascii_uppercase().as_str() {
        "HELO" => "Syntax: HELO hostname",
        "EHLO" => "Syntax: EHLO hostname",
        "MAIL" => {
            "Syntax: MAIL FROM:<address> [SIZE=n] [BODY=7BIT|8BITMIME|BINARYMIME] [SMTPUTF8] [RET=FULL|HDRS] [ENVID=id]"
        }
        "RCPT" => "Syntax: RCPT TO:<address> [NOTIFY=NEVER|SUCCESS,FAILURE,DELAY] [ORCPT=type;address]",
        "DATA" => "Syntax: DATA, then the message, ended by a line with a single dot",
        "BDAT" => "Syntax: BDAT size [LAST], then exactly size octets of the message",
        "RSET" => "Syntax: RSET (clears the transaction)",
        "NOOP" => "Syntax: NOOP [string]",
        "QUIT" => "Syntax: QUIT",
        "VRFY" => "Syntax: VRFY <address>",
        "EXPN" => "Syntax: EXPN <list>",
        "HELP" => "Syntax: HELP [command]",
        "STARTTLS" => "Syntax: STARTTLS (then the TLS handshake)",
        "AUTH" => "Syntax: AUTH PLAIN|LOGIN [initial-response] (over TLS)",
        _ => return replies::HELP_UNKNOWN_TOPIC,
    };
    replies::HELP.with_text(syntax)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_topics() {
        assert_eq!(help(None).code(), 214);
        assert_eq!(help(Some("mail")), help(Some("MAIL")));
        assert!(help(Some("MAIL")).text().starts_with("Syntax: MAIL FROM:<address>"));
        assert_eq!(help(Some("BOGUS")).code(), 504);
    }
}
