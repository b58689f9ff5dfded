//! Request decoding and response encoding between `wasi:http` and the core's
//! plain messages.

use std::future::Future;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited, StreamBody};
use ragspin_core::{Error, HttpRequest, HttpResponse};
use spin_sdk::http::{FromRequest, IntoResponse, Request};
use spin_sdk::wasip3::http::types::{ErrorCode, Request as WasiRequest, Response as WasiResponse};

use ragspin_core::log::RequestLog;

use crate::{LateLogFields, MAX_REQUEST_BODY_BYTES, Reply, StreamingReply};

/// Decode `request`, run `handler`, encode its response. A request that
/// cannot be decoded is answered with the matching JSON error. One log line
/// per request goes to stdout.
pub async fn serve<F, Fut>(
    component: &str,
    request: WasiRequest,
    handler: F,
) -> Result<WasiResponse, ErrorCode>
where
    F: FnOnce(HttpRequest) -> Fut,
    Fut: Future<Output = HttpResponse>,
{
    serve_reply(component, request, |request| async {
        Reply::Full(handler(request).await)
    })
    .await
}

/// Decode `request`, run `handler`, encode its [`Reply`], streaming a
/// [`StreamingReply`]'s body. A streamed reply is logged when its body ends
/// (or the client goes away).
pub async fn serve_reply<F, Fut>(
    component: &str,
    request: WasiRequest,
    handler: F,
) -> Result<WasiResponse, ErrorCode>
where
    F: FnOnce(HttpRequest) -> Fut,
    Fut: Future<Output = Reply>,
{
    let (request, body) = decode(request).await;
    let mut log = RequestLog::start(component, &request, new_request_id);
    let reply = match body {
        Ok(()) => handler(request).await,
        Err(e) => Reply::Full(HttpResponse::error(&e)),
    };
    match reply {
        Reply::Full(mut response) => {
            log.take_response(&mut response);
            write_line(&log.finish(false));
            encode(response)
        }
        Reply::Stream(mut stream) => {
            log.take_annotations(stream.status, &mut stream.headers);
            let late = stream.late_log_fields.take();
            encode_stream(stream, LogOnDrop(Some((log, late))))
        }
    }
}

/// Write one log line to stdout; a failed write is ignored (`println!`
/// would panic).
fn write_line(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

/// 16 random bytes as hex; a timestamp-free fallback if randomness fails.
fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    match getrandom::fill(&mut bytes) {
        Ok(()) => ragspin_core::log::hex_id(&bytes),
        Err(_) => "unknown".to_owned(),
    }
}

/// Writes a streamed reply's log line when the body is dropped: at its end,
/// or when the client disconnected.
struct LogOnDrop(Option<(RequestLog, Option<LateLogFields>)>);

impl Drop for LogOnDrop {
    fn drop(&mut self) {
        if let Some((mut log, late)) = self.0.take() {
            if let Some(fields) = late {
                log.annotate_all(&fields());
            }
            write_line(&log.finish(true));
        }
    }
}

/// The SDK spawns a task that polls `body` and writes each piece to the
/// response stream; a failed write ends that task and drops `body` (and
/// with it `log`, which writes the line). Pieces that are ready together
/// (an upstream read that held many SSE events) go out as one write;
/// nothing waits for a piece that is not ready yet.
/// At most this many ready pieces are joined into one write.
const READY_PIECES: usize = 256;

fn encode_stream(reply: StreamingReply, log: LogOnDrop) -> Result<WasiResponse, ErrorCode> {
    let mut builder = http::Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let frames = reply.body.ready_chunks(READY_PIECES).map(move |pieces| {
        let _ = &log;
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(pieces.concat())))
    });
    builder
        .body(StreamBody::new(frames))
        .map_err(|e| ErrorCode::InternalError(Some(format!("invalid response: {e}"))))?
        .into_response()
}

/// The request (its body empty when it could not be read) and whether the
/// body was read.
async fn decode(request: WasiRequest) -> (HttpRequest, Result<(), Error>) {
    let request = match Request::from_request(request) {
        Ok(request) => request,
        Err(e) => {
            let error = Error::bad_request(format!("malformed request: {e}"));
            return (HttpRequest::default(), Err(error));
        }
    };
    let (parts, body) = request.into_parts();
    let mut head = HttpRequest {
        method: parts.method.as_str().to_owned(),
        url: parts.uri.to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: Vec::new(),
    };
    let too_large = || {
        Error::PayloadTooLarge(format!(
            "request body exceeds {MAX_REQUEST_BODY_BYTES} bytes"
        ))
    };
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REQUEST_BODY_BYTES as u64) {
        return (head, Err(too_large()));
    }
    // Each piece is appended as it arrives, into one buffer of the declared
    // length: collecting the pieces and then joining them held the body
    // twice (a 10 MB upload grew the instance's memory by 21 MB).
    let mut body = std::pin::pin!(Limited::new(body, MAX_REQUEST_BODY_BYTES));
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    bytes.extend_from_slice(data);
                }
            }
            Err(e) if e.is::<LengthLimitError>() => return (head, Err(too_large())),
            Err(e) => {
                let error = Error::bad_request(format!("could not read request body: {e}"));
                return (head, Err(error));
            }
        }
    }
    head.body = bytes;
    (head, Ok(()))
}

fn encode(response: HttpResponse) -> Result<WasiResponse, ErrorCode> {
    let mut builder = http::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(response.body)))
        .map_err(|e| ErrorCode::InternalError(Some(format!("invalid response: {e}"))))?
        .into_response()
}
