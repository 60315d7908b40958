//! The least an SMTP sink on tokio can do, to tell the server's own cost from the
//! runtime's and the machine's: one worker thread (wasmtpd's default on 2 cores), a
//! connection a task, a read deadline, fixed replies, no plugin, no log.
//!
//!     tokio-floor PORT [--accept-on-worker]
//!
//! By default the accept loop runs on the main thread (`block_on`, the usual shape of a
//! tokio server); `--accept-on-worker` spawns it on the worker, as wasmtpd does.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (port, on_worker) = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [port] => (port.parse::<u16>().ok(), false),
        [port, "--accept-on-worker"] => (port.parse::<u16>().ok(), true),
        _ => (None, false),
    };
    let Some(port) = port else {
        eprintln!("usage: tokio-floor PORT [--accept-on-worker]");
        std::process::exit(2);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let accept = async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("the port");
        loop {
            if let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream));
            }
        }
    };
    runtime.block_on(async move {
        if on_worker {
            // The loop never ends; a panic in it (the port taken) ends the process.
            if let Err(e) = tokio::spawn(accept).await {
                std::panic::resume_unwind(e.into_panic());
            }
        } else {
            accept.await
        }
    });
}

async fn session(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    if stream.write_all(b"220 tokio-floor ESMTP\r\n").await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 8192];
    let mut replies = Vec::new();
    let (mut have, mut in_data) = (0, false);
    loop {
        let read = tokio::time::timeout(Duration::from_secs(300), stream.read(&mut buf[have..])).await;
        match read {
            Ok(Ok(n)) if n > 0 => have += n,
            _ => return,
        }
        replies.clear();
        let mut start = 0;
        while let Some(end) = buf[start..have].windows(2).position(|w| w == b"\r\n") {
            let line = &buf[start..start + end];
            start += end + 2;
            if in_data {
                if line == b"." {
                    in_data = false;
                    replies.extend_from_slice(b"250 2.0.0 Ok\r\n");
                }
                continue;
            }
            // The verb upper-cased on the stack: nothing is allocated for a command.
            let mut verb = [0u8; 4];
            if let Some(first) = line.get(..4) {
                verb.copy_from_slice(first);
                verb.make_ascii_uppercase();
            }
            match &verb {
                b"EHLO" => replies.extend_from_slice(b"250-tokio-floor\r\n250 PIPELINING\r\n"),
                b"DATA" => {
                    in_data = true;
                    replies.extend_from_slice(b"354 End data with <CR><LF>.<CR><LF>\r\n");
                }
                b"QUIT" => {
                    replies.extend_from_slice(b"221 2.0.0 Bye\r\n");
                    let _ = stream.write_all(&replies).await;
                    return;
                }
                _ => replies.extend_from_slice(b"250 2.0.0 Ok\r\n"),
            }
        }
        buf.copy_within(start..have, 0);
        have -= start;
        if have == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        if !replies.is_empty() && stream.write_all(&replies).await.is_err() {
            return;
        }
    }
}
