//! One HTTP request through `wasi:http/outgoing-handler`, waited for: what a plugin that
//! asks a service (rspamd, a webhook) needs inside a synchronous hook. The host decides
//! where it may go, how long it may take and how big the answer may be; its refusals
//! come back here as `Err` with the `wasi:http` error code.

use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

/// A response: its status and whole body.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends `body` (none for a GET) to `http://AUTHORITY/PATH`.
pub fn request(
    method: &str,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response, String> {
    let mut fields: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect();
    // A declared length rather than chunks: some services (rspamd) want one.
    if let Some(body) = body {
        fields.push(("content-length".to_owned(), body.len().to_string().into_bytes()));
    }
    let fields = Fields::from_list(&fields).map_err(|e| format!("bad header: {e:?}"))?;
    let request = OutgoingRequest::new(fields);
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        other => Method::Other(other.to_owned()),
    };
    let set = |ok: Result<(), ()>, what: &str| ok.map_err(|()| format!("bad {what}"));
    set(request.set_method(&method), "method")?;
    set(request.set_scheme(Some(&Scheme::Http)), "scheme")?;
    set(request.set_authority(Some(authority)), "authority")?;
    set(request.set_path_with_query(Some(path)), "path")?;
    let outgoing = request.body().map_err(|()| "no request body".to_owned())?;
    // Sent first, then the body written: the host reads it as it goes.
    let future = outgoing_handler::handle(request, None).map_err(describe)?;
    {
        let stream = outgoing.write().map_err(|()| "no request body stream".to_owned())?;
        for chunk in body.unwrap_or_default().chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(stream_error)?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(describe)?;
    let response = loop {
        match future.get() {
            Some(Ok(Ok(response))) => break response,
            Some(Ok(Err(e))) => return Err(describe(e)),
            Some(Err(())) => return Err("the response was taken already".to_owned()),
            None => future.subscribe().block(),
        }
    };
    let status = response.status();
    let incoming = response.consume().map_err(|()| "no response body".to_owned())?;
    let body = read_all(&incoming)?;
    drop(response);
    Ok(Response { status, body })
}

fn read_all(incoming: &IncomingBody) -> Result<Vec<u8>, String> {
    let stream = incoming.stream().map_err(|()| "no response body stream".to_owned())?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(body),
            Err(e) => return Err(stream_error(e)),
        }
    }
}

fn describe(e: ErrorCode) -> String {
    format!("{e:?}")
}

fn stream_error(e: StreamError) -> String {
    match e {
        StreamError::LastOperationFailed(error) => match wasi::http::types::http_error_code(&error) {
            Some(code) => describe(code),
            None => error.to_debug_string(),
        },
        StreamError::Closed => "the stream was closed".to_owned(),
    }
}
