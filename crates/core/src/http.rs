//! Plain HTTP messages, used both for the [`crate::HttpClient`] port and for
//! the requests a component receives and the responses it returns.
//!
//! Keeping these free of any HTTP library lets services (e.g.
//! [`crate::health::handle`]) be written and tested natively; the Spin
//! adapter converts at the edge.

use serde::Serialize;

use crate::error::{Error, ErrorBody, status_for};

/// `content-type` of JSON bodies.
pub const JSON: &str = "application/json";

/// An HTTP request. Header names are lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpRequest {
    /// Uppercase method, e.g. `GET`.
    pub method: String,
    /// Absolute URL (`https://host/path?q`) or origin-form (`/path?q`).
    pub url: String,
    /// Header (name, value) pairs, names lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A request without headers or body.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            ..Self::default()
        }
    }

    /// Add a header (builder style); the name is lowercased.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Set the body (builder style).
    #[must_use]
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The path of the URL, without query or fragment; `/` if empty.
    pub fn path(&self) -> &str {
        let rest = match self.url.find("://") {
            Some(i) => {
                let after = &self.url[i + 3..];
                match after.find(['/', '?', '#']) {
                    Some(j) => &after[j..],
                    None => "",
                }
            }
            None => self.url.as_str(),
        };
        let end = rest.find(['?', '#']).unwrap_or(rest.len());
        match &rest[..end] {
            "" => "/",
            path => path,
        }
    }

    /// The query string (without `?`), if any.
    pub fn query(&self) -> Option<&str> {
        let start = self.url.find('?')? + 1;
        let query = &self.url[start..];
        Some(query.split('#').next().unwrap_or(query))
    }
}

/// An HTTP response. Header names are lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header (name, value) pairs, names lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with the given status, `content-type` and body.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".to_owned(), content_type.to_owned())],
            body: body.into(),
        }
    }

    /// A JSON response. A value that cannot be serialized becomes a 500.
    pub fn json(status: u16, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::new(status, JSON, body),
            Err(e) => Self::error(&Error::Internal(format!("serialize response: {e}"))),
        }
    }

    /// A text response with an explicit `content-type`.
    pub fn text(status: u16, content_type: &str, body: impl Into<String>) -> Self {
        Self::new(status, content_type, body.into())
    }

    /// The JSON error response for `error`: status from [`status_for`], body
    /// [`ErrorBody`], plus `allow` for 405, `retry-after` for 429 and
    /// `retry-after: 1` for 503.
    pub fn error(error: &Error) -> Self {
        let mut response = Self::json(status_for(error), &ErrorBody::from(error));
        match error {
            Error::MethodNotAllowed { allow, .. } => {
                response = response.with_header("allow", allow.join(", "));
            }
            Error::RateLimited { retry_after_s } => {
                response = response.with_header("retry-after", retry_after_s.to_string());
            }
            Error::Unavailable(_) => response = response.with_header("retry-after", "1"),
            _ => {}
        }
        response
    }

    /// Add a header (builder style); the name is lowercased.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// The JSON 501 for a route that is planned but not built: `route` is e.g.
/// `"POST /v1/query"`.
pub fn not_implemented(route: &str) -> HttpResponse {
    HttpResponse::error(&Error::NotImplemented(format!(
        "{route} is not implemented yet"
    )))
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_path_of_absolute_and_origin_form_urls() {
        let cases = [
            ("http://127.0.0.1:3000/readyz", "/readyz"),
            ("http://127.0.0.1:3000/readyz?verbose=1#x", "/readyz"),
            ("https://example.com", "/"),
            ("https://example.com?x=1", "/"),
            ("/v1/query?stream=true", "/v1/query"),
            ("/healthz", "/healthz"),
            ("", "/"),
        ];
        for (url, path) in cases {
            assert_eq!(HttpRequest::new("GET", url).path(), path, "{url}");
        }
    }

    #[test]
    fn finds_the_query_string() {
        assert_eq!(HttpRequest::new("GET", "/a?b=1#f").query(), Some("b=1"));
        assert_eq!(HttpRequest::new("GET", "/a").query(), None);
    }

    #[test]
    fn looks_up_headers_case_insensitively() {
        let req = HttpRequest::new("GET", "/").with_header("Spin-Path-Info", "/x");
        assert_eq!(req.header("spin-path-info"), Some("/x"));
        assert_eq!(req.header("SPIN-PATH-INFO"), Some("/x"));
        assert_eq!(req.header("missing"), None);
    }

    #[test]
    fn answers_method_not_allowed_with_an_allow_header() {
        let response = HttpResponse::error(&Error::MethodNotAllowed {
            method: "POST".into(),
            allow: vec!["GET".into(), "HEAD".into()],
        });
        assert_eq!(response.status, 405);
        assert_eq!(response.header("allow"), Some("GET, HEAD"));
        assert_eq!(response.header("content-type"), Some(JSON));
    }

    #[test]
    fn answers_rate_limited_with_retry_after() {
        let response = HttpResponse::error(&Error::RateLimited { retry_after_s: 30 });
        assert_eq!(response.status, 429);
        assert_eq!(response.header("retry-after"), Some("30"));
    }

    #[test]
    fn answers_not_implemented_naming_the_route() {
        let response = not_implemented("POST /v1/query");
        assert_eq!(response.status, 501);
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["error"]["code"], "not_implemented");
        assert_eq!(
            body["error"]["message"],
            "POST /v1/query is not implemented yet"
        );
        assert_eq!(body.as_object().unwrap().len(), 1);
    }
}
