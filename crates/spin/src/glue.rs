//! Request decoding and response encoding between `wasi:http` and the core's
//! plain messages.

use std::future::Future;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited, StreamBody};
use ragspin_core::{Error, HttpRequest, HttpResponse};
use spin_sdk::http::{FromRequest, IntoResponse, Request};
use spin_sdk::wasip3::http::types::{ErrorCode, Request as WasiRequest, Response as WasiResponse};

use crate::{MAX_REQUEST_BODY_BYTES, Reply, StreamingReply};

/// Decode `request`, run `handler`, encode its response. A request that
/// cannot be decoded is answered with the matching JSON error.
pub async fn serve<F, Fut>(request: WasiRequest, handler: F) -> Result<WasiResponse, ErrorCode>
where
    F: FnOnce(HttpRequest) -> Fut,
    Fut: Future<Output = HttpResponse>,
{
    let response = match decode(request).await {
        Ok(request) => handler(request).await,
        Err(e) => HttpResponse::error(&e),
    };
    encode(response)
}

/// Decode `request`, run `handler`, encode its [`Reply`], streaming a
/// [`StreamingReply`]'s body.
pub async fn serve_reply<F, Fut>(
    request: WasiRequest,
    handler: F,
) -> Result<WasiResponse, ErrorCode>
where
    F: FnOnce(HttpRequest) -> Fut,
    Fut: Future<Output = Reply>,
{
    let reply = match decode(request).await {
        Ok(request) => handler(request).await,
        Err(e) => Reply::Full(HttpResponse::error(&e)),
    };
    match reply {
        Reply::Full(response) => encode(response),
        Reply::Stream(stream) => encode_stream(stream),
    }
}

/// The SDK spawns a task that polls `body` and writes each piece to the
/// response stream; a failed write ends that task and drops `body`.
fn encode_stream(reply: StreamingReply) -> Result<WasiResponse, ErrorCode> {
    let mut builder = http::Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let frames = reply
        .body
        .map(|piece| Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(piece))));
    builder
        .body(StreamBody::new(frames))
        .map_err(|e| ErrorCode::InternalError(Some(format!("invalid response: {e}"))))?
        .into_response()
}

async fn decode(request: WasiRequest) -> Result<HttpRequest, Error> {
    let request = Request::from_request(request)
        .map_err(|e| Error::bad_request(format!("malformed request: {e}")))?;
    let (parts, body) = request.into_parts();
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
        return Err(too_large());
    }
    let body = Limited::new(body, MAX_REQUEST_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<LengthLimitError>() {
                too_large()
            } else {
                Error::bad_request(format!("could not read request body: {e}"))
            }
        })?
        .to_bytes();
    Ok(HttpRequest {
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
        body: body.to_vec(),
    })
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
