//! [`NativeHttp`]: the `HttpClient` port over a real (blocking) HTTP client,
//! for native tests against loopback servers such as `ragspin-fake-azure`.

use std::time::Duration;

use ragspin_core::{Error, HttpClient, HttpRequest, HttpResponse, Result};

/// An [`HttpClient`] over `reqwest`'s blocking client (plain HTTP only, no
/// redirects followed).
///
/// `send` blocks the calling thread until the whole response has arrived, so
/// use it from a plain executor such as `futures::executor::block_on`, never
/// inside a tokio runtime. Because it blocks, a raced
/// [`ragspin_core::with_timeout`] cannot interrupt it: the client has its
/// own timeout ([`NativeHttp::with_timeout`]), reported as
/// [`Error::Timeout`]. Connection failures are [`Error::Upstream`].
#[derive(Debug, Clone)]
pub struct NativeHttp {
    client: reqwest::blocking::Client,
}

impl NativeHttp {
    /// A client with a 30 s timeout per request.
    pub fn new() -> Result<Self> {
        Self::with_timeout(Duration::from_secs(30))
    }

    /// A client giving up on a request after `timeout` (connect + whole response).
    pub fn with_timeout(timeout: Duration) -> Result<Self> {
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Internal(format!("building the HTTP client: {e}")))?;
        Ok(Self { client })
    }
}

fn transport_error(e: &reqwest::Error) -> Error {
    // `reqwest::Error`'s Display names the URL but never headers, so no
    // credential can leak through it.
    if e.is_timeout() {
        Error::Timeout(e.to_string())
    } else {
        Error::Upstream(e.to_string())
    }
}

impl HttpClient for NativeHttp {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|e| Error::Internal(format!("invalid method {:?}: {e}", request.method)))?;
        let mut builder = self.client.request(method, request.url.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let response = builder
            .body(request.body)
            .send()
            .map_err(|e| transport_error(&e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response.bytes().map_err(|e| transport_error(&e))?;
        Ok(HttpResponse {
            status,
            headers,
            body: body.to_vec(),
        })
    }
}
