//! HTTP/1.1 on loopback (tokio + hyper): moves bytes between sockets and
//! [`crate::api::handle`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};

use crate::api::{FakeOptions, Reply, ReplyBody, Request, State, Stats, handle};
use crate::faults::Fault;

type Body = BoxBody<Bytes, Infallible>;

/// Largest request body read; more is answered 413.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// A fake Azure OpenAI resource serving on `127.0.0.1` from a background
/// thread; stops when dropped.
pub struct FakeAzure {
    /// Where it listens (always loopback).
    pub addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeAzure {
    /// Serve [`FakeOptions::default`] on a free loopback port.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(FakeOptions::default())
    }

    /// Serve `options` on a free loopback port.
    pub fn start_with(options: FakeOptions) -> anyhow::Result<Self> {
        let state = Arc::new(State::new(options));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel();
        let served = state.clone();
        let thread = std::thread::Builder::new()
            .name("fake-azure".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(listener) => {
                            serve(served, listener, async {
                                _ = shutdown_rx.await;
                            })
                            .await;
                        }
                        Err(e) => eprintln!("fake-azure: {e}"),
                    }
                });
            })?;
        Ok(Self {
            addr,
            state,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`: the `azure_openai_endpoint` (or OpenAI base URL).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The key it expects.
    pub fn api_key(&self) -> &str {
        &self.state.options().api_key
    }

    /// Counters since start or the last [`FakeAzure::reset`].
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// Every text embedded (needs [`FakeOptions::keep_inputs`]), sorted.
    pub fn embedded_texts(&self) -> Vec<String> {
        self.state.embedded_texts()
    }

    /// Install a fault. Panics on a fault that does nothing (no status, no
    /// delay) — a bug in the test.
    pub fn inject(&self, fault: Fault) {
        if let Err(e) = self.state.inject(fault) {
            panic!("invalid fault: {e}");
        }
    }

    /// Forget faults and counters.
    pub fn reset(&self) {
        self.state.reset();
    }
}

impl Drop for FakeAzure {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            _ = thread.join();
        }
    }
}

/// Check that `addr` is loopback: the fake never listens elsewhere.
pub fn ensure_loopback(addr: &SocketAddr) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        bail!("fake-azure only listens on loopback addresses, not {addr}");
    }
    Ok(())
}

/// Accept connections on `listener` until `shutdown` completes.
pub async fn serve(
    state: Arc<State>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    eprintln!("fake-azure: accept failed: {e}");
                    continue;
                }
            },
        };
        _ = stream.set_nodelay(true);
        state.connection_accepted();
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(respond(&state, req).await) }
            });
            if let Err(e) = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("fake-azure: connection error: {e}");
            }
        });
    }
}

async fn respond(state: &State, req: http::Request<Incoming>) -> http::Response<Body> {
    let request = match read_request(req).await {
        Ok(request) => request,
        Err(e) => {
            return to_response(Reply {
                status: 413,
                headers: Vec::new(),
                body: ReplyBody::Json(
                    serde_json::json!({"error": {"code": "413", "message": e.to_string()}}),
                ),
                delay_ms: 0,
            });
        }
    };
    let reply = handle(state, &request);
    if reply.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(reply.delay_ms)).await;
    }
    to_response(reply)
}

async fn read_request(req: http::Request<Incoming>) -> anyhow::Result<Request> {
    let (parts, body) = req.into_parts();
    let body = http_body_util::Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| anyhow!("request body: {e}"))
        .context("reading the request")?
        .to_bytes();
    Ok(Request {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    })
}

fn to_response(reply: Reply) -> http::Response<Body> {
    let mut builder = http::Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let body = match reply.body {
        ReplyBody::Empty => Full::new(Bytes::new()).boxed(),
        ReplyBody::Json(value) => {
            builder = builder.header("content-type", "application/json");
            Full::new(Bytes::from(value.to_string())).boxed()
        }
        ReplyBody::Sse(events) => {
            builder = builder
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache");
            let frames = events
                .into_iter()
                .map(|e| Ok::<_, Infallible>(Frame::data(Bytes::from(e))));
            StreamBody::new(futures::stream::iter(frames)).boxed()
        }
    };
    builder.body(body).unwrap_or_else(|e| {
        http::Response::builder()
            .status(500)
            .body(Full::new(Bytes::from(format!("fake-azure: {e}"))).boxed())
            .unwrap_or_default()
    })
}
