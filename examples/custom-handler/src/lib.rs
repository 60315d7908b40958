//! smtpd_custom.py from the seed, as a plugin: prints who sent what to whom, and how long
//! it was, then accepts the message (`None` is `250 OK`).

wit_bindgen::generate!({ path: "../../wit", world: "plugin", generate_all });

use exports::wasmtpd::plugin::handler::Guest;
use wasmtpd::plugin::types::Peer;

struct CustomHandler;

impl Guest for CustomHandler {
    fn process_message(
        peer: Peer,
        mail_from: String,
        rcpt_tos: Vec<String>,
        data: Vec<u8>,
        _mail_options: Vec<String>,
        _rcpt_options: Vec<String>,
    ) -> Option<String> {
        let rcpt_tos: Vec<String> = rcpt_tos.iter().map(|r| format!("'{r}'")).collect();
        // smtpd's data had no final CRLF.
        let length = data.strip_suffix(b"\r\n").unwrap_or(&data).len();
        println!("Receiving message from: ('{}', {})", peer.ip, peer.port);
        println!("Message addressed from: {mail_from}");
        println!("Message addressed to   : [{}]", rcpt_tos.join(", "));
        println!("Message length         : {length}");
        None
    }
}

export!(CustomHandler);
