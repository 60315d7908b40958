//! Prints each message the way Python's `smtpd.DebuggingServer` did.

use std::io::Write;

use crate::handler::{HandlerFuture, Message, MessageHandler};

pub struct DebugPrinter;

impl MessageHandler for DebugPrinter {
    fn name(&self) -> &str {
        "debug-printer"
    }

    fn process_message<'a>(&'a self, message: &'a Message) -> HandlerFuture<'a> {
        let text = render(message);
        Box::pin(async move {
            // One write under the lock, so concurrent sessions never interleave their output.
            tokio::task::spawn_blocking(move || {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())?;
                out.flush()
            })
            .await??;
            Ok(None)
        })
    }
}

/// CPython's `DebuggingServer.process_message`: the options if any, the headers, an
/// `X-Peer:` line where the headers end, the body, between two marker lines.
pub fn render(message: &Message) -> String {
    let mut out = String::with_capacity(message.data.len() + 128);
    out.push_str("---------- MESSAGE FOLLOWS ----------\n");
    if !message.mail_options.is_empty() {
        out.push_str(&format!("mail options: {}\n", python_list(&message.mail_options)));
    }
    if !message.rcpt_options.is_empty() {
        out.push_str(&format!("rcpt options: {}\n\n", python_list(&message.rcpt_options)));
    }
    let text = String::from_utf8_lossy(&message.data);
    let text = text.strip_suffix("\r\n").unwrap_or(&text);
    let peer_header = format!("X-Peer: {}\n", message.peer.ip());
    let mut in_headers = true;
    for line in text.split("\r\n").filter(|_| !text.is_empty()) {
        if in_headers && line.is_empty() {
            out.push_str(&peer_header);
            in_headers = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    // A message with no body: smtpd printed no X-Peer at all; say it after the headers.
    if in_headers {
        out.push_str(&peer_header);
    }
    out.push_str("------------ END MESSAGE ------------\n");
    out
}

/// `['A', 'B']`, as Python prints a list of strings.
fn python_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtpd_protocol::Address;

    fn message(data: &str, mail_options: &[&str]) -> Message {
        Message {
            peer: "127.0.0.1:58541".parse().unwrap(),
            mail_from: Some(Address::new_unchecked("author@example.com")),
            rcpt_to: vec![Address::new_unchecked("recipient@example.com")],
            data: data.as_bytes().to_vec(),
            mail_options: mail_options.iter().map(|s| s.to_string()).collect(),
            rcpt_options: vec![],
        }
    }

    #[test]
    fn prints_like_the_debugging_server() {
        let m = message("To: r@example.com\r\nSubject: hi\r\n\r\nbody line\r\n", &["SIZE=44"]);
        assert_eq!(
            render(&m),
            "---------- MESSAGE FOLLOWS ----------\n\
             mail options: ['SIZE=44']\n\
             To: r@example.com\n\
             Subject: hi\n\
             X-Peer: 127.0.0.1\n\
             \n\
             body line\n\
             ------------ END MESSAGE ------------\n"
        );
    }

    #[test]
    fn headers_only_and_empty_messages_still_name_the_peer() {
        assert_eq!(
            render(&message("Subject: x\r\n", &[])),
            "---------- MESSAGE FOLLOWS ----------\nSubject: x\nX-Peer: 127.0.0.1\n------------ END MESSAGE ------------\n"
        );
        assert_eq!(
            render(&message("", &[])),
            "---------- MESSAGE FOLLOWS ----------\nX-Peer: 127.0.0.1\n------------ END MESSAGE ------------\n"
        );
    }
}
