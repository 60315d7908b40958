//! BDAT (RFC 3030) through a session: chunks framed by their sizes alone, mixed with the
//! other commands, pipelined, and refused chunks read to their end.

use super::*;

/// A BDAT command with its chunk.
fn bdat(chunk: &[u8], last: bool) -> Vec<u8> {
    let command = format!("BDAT {}{}\r\n", chunk.len(), if last { " LAST" } else { "" });
    [command.as_bytes(), chunk].concat()
}

/// A greeted client in a transaction with one recipient, MAIL with `params`.
async fn in_transaction(limits: Limits, params: &str) -> Client {
    let mut client = Client::greeted(limits).await;
    client
        .expect(&format!("MAIL FROM:<a@example.org>{params}"), "250")
        .await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
    client
}

#[tokio::test]
async fn rfc_3030s_example_pipelined_with_a_binary_body() {
    let mut client = Client::greeted(Limits::default()).await;
    // RFC 3030 4.2: MAIL, RCPT and the chunks in one go; the chunk octets are the body,
    // CRLF and dots and all, with nothing unstuffed.
    let first = b"Subject: binary\r\n\r\n.\r\nbinary \x00\x01 and a bare\nLF\r\n";
    let second = b"the rest\r\n.";
    let mut wire = b"MAIL FROM:<a@example.org> BODY=BINARYMIME\r\nRCPT TO:<b@example.com>\r\n".to_vec();
    wire.extend(format!("BDAT {}\r\n", first.len()).as_bytes());
    wire.extend(first);
    wire.extend(format!("BDAT {} LAST\r\n", second.len()).as_bytes());
    wire.extend(second);
    wire.extend(b"NOOP\r\n");
    client.send(&wire).await;
    assert!(client.reply().await.starts_with("250 2.1.0"));
    assert!(client.reply().await.starts_with("250 2.1.5"));
    let chunk = client.reply().await;
    assert_eq!(chunk, format!("250 2.0.0 {} octets received", first.len()));
    assert!(client.reply().await.starts_with("250 2.0.0 OK"));
    assert!(client.reply().await.starts_with("250"), "the NOOP behind it");
    let message = &client.messages()[0];
    assert_eq!(&message.data[..], [&first[..], &second[..]].concat());
    assert_eq!(message.mail_options, ["BODY=BINARYMIME"]);
}

#[tokio::test]
async fn a_text_body_by_bdat_keeps_datas_rules_and_gets_its_final_crlf() {
    let mut client = in_transaction(Limits::default(), "").await;
    client.send(&bdat(b"Subject: x\r\n\r\n..no unstuff", true)).await;
    assert!(client.reply().await.starts_with("250 2.0.0 OK"));
    assert_eq!(&client.messages()[0].data[..], b"Subject: x\r\n\r\n..no unstuff\r\n");
    // A bare LF, then a long line: refused as DATA would refuse them, session goes on.
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
    client.send(&bdat(b"Sub\nject: x\r\n", true)).await;
    assert!(client.reply().await.starts_with("550 5.6.0"));
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
    let long = format!("x: {}\r\n", "y".repeat(1000));
    client
        .send(format!("BDAT {} LAST\r\n{long}", long.len()).as_bytes())
        .await;
    assert!(client.reply().await.starts_with("500 5.5.2"));
    assert_eq!(client.messages().len(), 1);
}

#[tokio::test]
async fn bdat_0_last_ends_the_message_and_rset_between_chunks_drops_it() {
    let mut client = in_transaction(Limits::default(), "").await;
    client.send(&bdat(b"Subject: one\r\n", false)).await;
    assert_eq!(client.reply().await, "250 2.0.0 14 octets received");
    client.send(b"BDAT 6\r\n\r\nbody").await;
    assert!(client.reply().await.starts_with("250 2.0.0"));
    client.expect("BDAT 0 LAST", "250 2.0.0 OK").await;
    assert_eq!(&client.messages()[0].data[..], b"Subject: one\r\n\r\nbody\r\n");
    // RSET between chunks: the transaction and its chunks are gone.
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
    client.send(b"BDAT 5\r\nhello").await;
    assert!(client.reply().await.starts_with("250 2.0.0"));
    client.expect("RSET", "250").await;
    client.send(b"BDAT 5 LAST\r\nworld").await;
    assert!(client.reply().await.starts_with("503 5.5.1"));
    assert_eq!(client.messages().len(), 1);
}

#[tokio::test]
async fn out_of_sequence_chunks_are_read_whole_and_refused() {
    let mut client = Client::greeted(Limits::default()).await;
    // No MAIL: 503, and the chunk (which holds a command line) is dropped, not run.
    client.send(b"BDAT 12\r\nQUIT\r\nQUIT\r\n").await;
    assert!(client.reply().await.starts_with("503 5.5.1"));
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.send(b"BDAT 6 LAST\r\nQUIT\r\n").await;
    assert!(client.reply().await.starts_with("503 5.5.1"), "no recipient yet");
    client.expect("RCPT TO:<b@example.com>", "250").await;
    // DATA and BDAT do not mix in one transaction.
    client.send(b"BDAT 3\r\nabc").await;
    assert!(client.reply().await.starts_with("250 2.0.0"));
    client.expect("DATA", "503 5.5.1").await;
    client.send(b"BDAT 5 LAST\r\ndef\r\n").await;
    assert!(client.reply().await.starts_with("250 2.0.0 OK"));
    assert_eq!(&client.messages()[0].data[..], b"abcdef\r\n");
}

#[tokio::test]
async fn a_chunk_past_the_size_limit_is_read_and_refused_and_the_session_goes_on() {
    let limits = Limits {
        max_message_size: 100,
        ..Limits::default()
    };
    let mut client = in_transaction(limits, "").await;
    client.send(b"BDAT 60\r\n").await;
    client.send(&[b'x'; 60]).await;
    assert!(client.reply().await.starts_with("250 2.0.0"));
    // Over the limit with this one: 552, the transaction is over, and what the client
    // pipelined behind it is answered 503 and dropped.
    let mut wire = b"BDAT 60\r\n".to_vec();
    wire.extend([b'y'; 60]);
    wire.extend(bdat(b"RSET\r\n", true));
    client.send(&wire).await;
    assert!(client.reply().await.starts_with("552 5.3.4"));
    assert!(client.reply().await.starts_with("503 5.5.1"));
    client.expect("NOOP", "250").await;
    assert!(client.messages().is_empty());
}

#[tokio::test]
async fn a_refusal_at_the_data_hook_ends_the_transaction() {
    let recorder = Arc::new(Recorder::default());
    recorder
        .hook_answers
        .lock()
        .unwrap()
        .push(("data".to_owned(), Ok(Some("554 5.7.1 no mail today".to_owned()))));
    let mut client = start_with(Limits::default(), Arc::clone(&recorder));
    client.reply().await;
    client.expect("EHLO client.test", "250").await;
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
    client.send(b"BDAT 3\r\nabcBDAT 3 LAST\r\ndef").await;
    assert!(client.reply().await.starts_with("554 5.7.1 no mail today"));
    assert!(client.reply().await.starts_with("503 5.5.1"));
    assert!(client.messages().is_empty());
}

#[tokio::test]
async fn a_refused_bdat_line_still_has_its_chunk_read_and_never_run() {
    let mut client = in_transaction(Limits::default(), "").await;
    // A syntax error (501), a bare LF ending (500): either way the 12 octets behind the
    // line are the chunk, not two QUITs.
    client.send(b"BDAT 12 FIRST\r\nQUIT\r\nQUIT\r\n").await;
    assert!(client.reply().await.starts_with("501 5.5.4"));
    client.send(b"BDAT 12\nQUIT\r\nQUIT\r\n").await;
    assert!(client.reply().await.starts_with("500 5.5.2"));
    client.expect("NOOP", "250").await;
    // A size nobody can read: where the chunk ends is unknown, so the session ends.
    client.send(b"BDAT twelve\r\nQUIT\r\nQUIT\r\n").await;
    assert!(client.reply().await.starts_with("421 4.5.2"));
    client.expect_closed().await;
}
