//! Outbound HTTP the way Spin allows it: only to the component's
//! `allowed_outbound_hosts` (after `{{ variable }}` expansion); anything else
//! is refused with `error-code::http-request-denied`.
//!
//! The parsing follows Spin's rules: `<scheme>://<host>[:<port>]`, `*` for
//! any scheme/host/port, `*.domain` for subdomains, `a..b` port ranges, the
//! scheme's well-known port when none is given, no paths. A template that
//! expands to something invalid (an empty endpoint, say) denies every
//! request and logs why, as Spin does, instead of failing start-up.

use anyhow::{Result, bail};
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p3::{RequestOptions, WasiHttpHooks};

use crate::variables::{AppVariables, expand};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Port {
    Any,
    One(u16),
    Range(u16, u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: Port,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Subdomain(String),
    Exact(String),
    /// `self`: the app itself (service chaining), never an external host.
    ToSelf,
}

fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "redis" => Some(6379),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "mqtt" => Some(1883),
        _ => None,
    }
}

impl AllowedHost {
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        let Some((scheme, rest)) = s.split_once("://") else {
            bail!("{s:?} is not an allowed outbound host: use <scheme>://<host>[:<port>]");
        };
        if scheme != "*" && (scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphabetic()))
        {
            bail!("{s:?}: invalid scheme");
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            bail!("{s:?} has a path but is not allowed to");
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        let host = match host {
            "" => bail!("{s:?}: empty host"),
            "*" => HostPattern::Any,
            "self" | "self.alt" => HostPattern::ToSelf,
            h if h.starts_with("*.") => {
                if h[2..].contains('*') {
                    bail!("{s:?}: wildcards are allowed only as prefixes");
                }
                HostPattern::Subdomain(h[1..].to_ascii_lowercase())
            }
            h if h.contains('*') => bail!("{s:?}: wildcards are allowed only as subdomains"),
            h => HostPattern::Exact(h.to_ascii_lowercase()),
        };
        let port = match port {
            Some("*") => Port::Any,
            Some(p) if p.contains("..") => {
                let (a, b) = p.split_once("..").unwrap_or_default();
                Port::Range(a.parse()?, b.parse()?)
            }
            Some(p) => Port::One(p.parse()?),
            None => match well_known_port(scheme) {
                Some(p) => Port::One(p),
                None => bail!("{s:?}: no port given and {scheme:?} has no well-known port"),
            },
        };
        Ok(Self {
            scheme: (scheme != "*").then(|| scheme.to_string()),
            host,
            port,
        })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let host = host.to_ascii_lowercase();
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Subdomain(suffix) => host.ends_with(suffix.as_str()),
            HostPattern::Exact(h) => *h == host,
            HostPattern::ToSelf => false,
        };
        let port_ok = match self.port {
            Port::Any => true,
            Port::One(p) => p == port,
            Port::Range(a, b) => (a..b).contains(&port),
        };
        scheme_ok && host_ok && port_ok
    }
}

/// A component's resolved outbound policy.
#[derive(Debug, Clone)]
pub enum AllowedHosts {
    Hosts(Vec<AllowedHost>),
    /// The list did not resolve or parse: every request is denied.
    Invalid(String),
}

impl AllowedHosts {
    pub fn resolve(entries: &[String], vars: &AppVariables) -> Self {
        let mut hosts = Vec::new();
        for entry in entries {
            let parsed = expand(entry, vars).and_then(|s| AllowedHost::parse(&s));
            match parsed {
                Ok(h) => hosts.push(h),
                Err(e) => {
                    return Self::Invalid(format!("allowed_outbound_hosts entry {entry:?}: {e:#}"));
                }
            }
        }
        Self::Hosts(hosts)
    }

    pub fn allows(&self, uri: &http::Uri) -> Result<(), String> {
        let hosts = match self {
            Self::Hosts(h) => h,
            Self::Invalid(why) => return Err(why.clone()),
        };
        let scheme = uri.scheme_str().unwrap_or("https");
        let Some(host) = uri.host() else {
            return Err(format!("{uri} has no host"));
        };
        let port = uri
            .port_u16()
            .or_else(|| well_known_port(scheme))
            .unwrap_or(0);
        if hosts.iter().any(|h| h.allows(scheme, host, port)) {
            Ok(())
        } else {
            Err(format!(
                "{scheme}://{host}:{port} is not in allowed_outbound_hosts"
            ))
        }
    }
}

/// The app's outbound HTTP client. Spin (since 3.5) pools outbound
/// connections per destination and shares the pool across instances, so
/// consecutive requests to one host reuse a kept-alive connection;
/// `[outbound_http] connection_pooling = false` in the runtime config turns
/// that off (a new connection per request, like wasmtime's default client).
///
/// Here only plain `http://` is pooled; `https://` (never used by the tests)
/// and requests that set their own connect/first-byte/between-bytes timeouts
/// go through wasmtime's default client, one connection each.
#[derive(Debug, Clone)]
pub struct OutboundClient {
    pooled: Option<PooledClient>,
}

type PooledClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    OutgoingBody,
>;

impl OutboundClient {
    pub fn new(connection_pooling: bool) -> Self {
        let pooled = connection_pooling.then(|| {
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http()
        });
        Self { pooled }
    }

    /// The pooled client, when this request may use it.
    fn pooled_for(
        &self,
        request: &http::Request<OutgoingBody>,
        options: Option<&RequestOptions>,
    ) -> Option<PooledClient> {
        let own_timeouts = options.is_some_and(|o| {
            o.connect_timeout.is_some()
                || o.first_byte_timeout.is_some()
                || o.between_bytes_timeout.is_some()
        });
        let plain = request.uri().scheme() == Some(&http::uri::Scheme::HTTP);
        self.pooled.clone().filter(|_| plain && !own_timeouts)
    }
}

/// The wasi-http error for a pooled request that failed.
fn pooled_error(err: hyper_util::client::legacy::Error) -> ErrorCode {
    use std::error::Error as _;
    if err.is_connect() {
        return ErrorCode::ConnectionRefused;
    }
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(code) = cause.downcast_ref::<ErrorCode>() {
            return code.clone();
        }
        if let Some(hyper_err) = cause.downcast_ref::<hyper::Error>()
            && hyper_err.is_timeout()
        {
            return ErrorCode::HttpResponseTimeout;
        }
        source = cause.source();
    }
    ErrorCode::HttpProtocolError
}

/// The wasi-http error for a pooled response body that failed mid-way.
fn body_error(err: hyper::Error) -> ErrorCode {
    use std::error::Error as _;
    if err.is_timeout() {
        return ErrorCode::HttpResponseTimeout;
    }
    match err.source().and_then(|c| c.downcast_ref::<ErrorCode>()) {
        Some(code) => code.clone(),
        None => ErrorCode::HttpProtocolError,
    }
}

/// `wasi:http` hooks of one instance: the allow-list check, then a real
/// request through the app's outbound client.
pub struct OutboundHooks {
    pub component: String,
    pub allowed: std::sync::Arc<AllowedHosts>,
    pub client: OutboundClient,
}

type BoxedFut<T> = Box<dyn Future<Output = T> + Send>;
type OutgoingBody = UnsyncBoxBody<Bytes, ErrorCode>;
type SendResult = Result<
    (
        http::Response<OutgoingBody>,
        BoxedFut<Result<(), ErrorCode>>,
    ),
    wasmtime_wasi::TrappableError<ErrorCode>,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<OutgoingBody>,
        options: Option<RequestOptions>,
        fut: BoxedFut<Result<(), ErrorCode>>,
    ) -> BoxedFut<SendResult> {
        _ = fut;
        let verdict = self.allowed.allows(request.uri());
        let component = self.component.clone();
        let pooled = self.client.pooled_for(&request, options.as_ref());
        Box::new(async move {
            if let Err(why) = verdict {
                eprintln!(
                    "[{component}] outbound request to {} denied: {why}",
                    request.uri()
                );
                return Err(ErrorCode::HttpRequestDenied.into());
            }
            use http_body_util::BodyExt;
            if let Some(client) = pooled {
                // The pool's own task drives the connection: nothing is
                // left for the caller's I/O future to do.
                let res = client.request(request).await.map_err(pooled_error)?;
                let done = async { Ok(()) };
                return Ok((
                    res.map(|body| body.map_err(body_error).boxed_unsync()),
                    Box::new(done) as BoxedFut<Result<(), ErrorCode>>,
                ));
            }
            let (res, io) = wasmtime_wasi_http::p3::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as BoxedFut<Result<(), ErrorCode>>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(entries: &[&str]) -> AllowedHosts {
        let hosts = entries
            .iter()
            .map(|e| AllowedHost::parse(e).unwrap())
            .collect();
        AllowedHosts::Hosts(hosts)
    }

    fn uri(s: &str) -> http::Uri {
        s.parse().unwrap()
    }

    #[test]
    fn exact_host_uses_the_schemes_default_port() {
        let a = allowed(&["https://res.openai.azure.com"]);
        assert!(
            a.allows(&uri("https://res.openai.azure.com/openai/x"))
                .is_ok()
        );
        assert!(
            a.allows(&uri("https://res.openai.azure.com:8443/"))
                .is_err()
        );
        assert!(a.allows(&uri("http://res.openai.azure.com/")).is_err());
        assert!(a.allows(&uri("https://evil.example/")).is_err());
    }

    #[test]
    fn wildcards_and_ranges() {
        let a = allowed(&["*://*.azure.com:*", "http://127.0.0.1:8000..8010"]);
        assert!(a.allows(&uri("http://x.azure.com:1/")).is_ok());
        assert!(a.allows(&uri("http://azure.com/")).is_err());
        assert!(a.allows(&uri("http://127.0.0.1:8005/")).is_ok());
        assert!(a.allows(&uri("http://127.0.0.1:8010/")).is_err());
    }

    #[test]
    fn rejects_paths_and_missing_schemes() {
        assert!(AllowedHost::parse("https://a.example/path").is_err());
        assert!(AllowedHost::parse("a.example").is_err());
        assert!(AllowedHost::parse("").is_err());
        assert!(AllowedHost::parse("https://a.example/").is_ok());
    }

    #[test]
    fn an_empty_templated_endpoint_denies_everything() {
        let manifest = crate::manifest::Manifest::parse(
            "spin_manifest_version = 2\n[application]\nname = \"x\"\n[variables]\nendpoint = { default = \"\" }\n",
        )
        .unwrap();
        let vars = AppVariables::resolve(&manifest, &Default::default()).unwrap();
        let a = AllowedHosts::resolve(&["{{ endpoint }}".to_string()], &vars);
        assert!(matches!(a, AllowedHosts::Invalid(_)));
        assert!(a.allows(&uri("https://res.openai.azure.com/")).is_err());
    }
}
