//! The text CPython's `DebuggingServer.process_message` printed for a message.

pub struct Message<'a> {
    pub peer_ip: &'a str,
    pub mail_from: &'a str,
    pub rcpt_tos: &'a [String],
    pub data: &'a [u8],
    pub mail_options: &'a [String],
    pub rcpt_options: &'a [String],
}

/// The options if any, the headers, an `X-Peer:` line where the headers end, the body,
/// between two marker lines; with `envelope`, the sender and recipients after the first.
pub fn render(message: &Message, envelope: bool) -> String {
    let mut out = String::with_capacity(message.data.len() + 256);
    out.push_str("---------- MESSAGE FOLLOWS ----------\n");
    if envelope {
        out.push_str(&format!("mail from: '{}'\n", message.mail_from));
        out.push_str(&format!("rcpt tos: {}\n", python_list(message.rcpt_tos)));
    }
    if !message.mail_options.is_empty() {
        out.push_str(&format!("mail options: {}\n", python_list(message.mail_options)));
    }
    if !message.rcpt_options.is_empty() {
        out.push_str(&format!("rcpt options: {}\n\n", python_list(message.rcpt_options)));
    }
    let text = String::from_utf8_lossy(message.data);
    // smtpd's data had no final CRLF; ours keeps it.
    let text = text.strip_suffix("\r\n").unwrap_or(&text);
    let peer_header = format!("X-Peer: {}\n", message.peer_ip);
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

    fn render_with(data: &str, mail_options: &[&str], envelope: bool) -> String {
        let mail_options: Vec<String> = mail_options.iter().map(|s| s.to_string()).collect();
        let message = Message {
            peer_ip: "127.0.0.1",
            mail_from: "author@example.com",
            rcpt_tos: &["recipient@example.com".to_owned()],
            data: data.as_bytes(),
            mail_options: &mail_options,
            rcpt_options: &[],
        };
        render(&message, envelope)
    }

    #[test]
    fn prints_like_the_debugging_server() {
        assert_eq!(
            render_with(
                "To: r@example.com\r\nSubject: hi\r\n\r\nbody line\r\n",
                &["SIZE=44"],
                false
            ),
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
    fn the_envelope_when_asked() {
        assert_eq!(
            render_with("Subject: x\r\n\r\nb\r\n", &[], true),
            "---------- MESSAGE FOLLOWS ----------\n\
             mail from: 'author@example.com'\n\
             rcpt tos: ['recipient@example.com']\n\
             Subject: x\n\
             X-Peer: 127.0.0.1\n\
             \n\
             b\n\
             ------------ END MESSAGE ------------\n"
        );
    }

    #[test]
    fn headers_only_and_empty_messages_still_name_the_peer() {
        assert_eq!(
            render_with("Subject: x\r\n", &[], false),
            "---------- MESSAGE FOLLOWS ----------\nSubject: x\nX-Peer: 127.0.0.1\n------------ END MESSAGE ------------\n"
        );
        assert_eq!(
            render_with("", &[], false),
            "---------- MESSAGE FOLLOWS ----------\nX-Peer: 127.0.0.1\n------------ END MESSAGE ------------\n"
        );
    }
}
