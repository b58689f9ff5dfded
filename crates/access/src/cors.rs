//! CORS (allowlist from `cors_allowed_origins`, preflight) and the security
//! headers every response carries.
//!
//! * Only listed origins get `access-control-allow-origin` (their exact
//!   origin, with `vary: origin`). `*` in the list allows any origin with a
//!   literal `*`. ragspin authenticates with the `Authorization` header, not
//!   cookies, so `access-control-allow-credentials` is never sent — in
//!   particular never together with a wildcard.
//! * A preflight (`OPTIONS` with `Origin` and
//!   `Access-Control-Request-Method`) from an allowed origin for a supported
//!   method is answered 204 without reaching the handler; from any other
//!   origin (or for another method) it is a JSON 403.
//! * [`apply_security_headers`] adds `x-content-type-options: nosniff`,
//!   `referrer-policy: no-referrer`, `x-frame-options: DENY` and a
//!   content-security-policy everywhere; `cache-control: no-store` on auth
//!   responses; a CSP allowing same-origin scripts/styles for the web page.

use ragspin_core::{Error, HttpRequest, HttpResponse};

/// Methods a cross-origin request may use.
pub const ALLOWED_METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
/// Request headers a cross-origin request may send.
pub const ALLOWED_HEADERS: &str = "authorization, content-type, x-api-key";
/// Response headers cross-origin scripts may read.
pub const EXPOSED_HEADERS: &str = "retry-after, www-authenticate";
/// How long browsers may cache a preflight (seconds).
pub const PREFLIGHT_MAX_AGE_S: u32 = 600;

/// The CSP of JSON APIs: load nothing, frame nowhere.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";
/// The CSP of the web page: same-origin scripts, styles, fetches and images.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// What kind of route a response comes from; decides its security headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// `/healthz`, `/readyz`, `/metrics`.
    Public,
    /// JSON APIs (`/v1/...`).
    Api,
    /// `/auth/...`: also `cache-control: no-store`, `pragma: no-cache`.
    Auth,
    /// The web page and its assets: [`PAGE_CSP`].
    Page,
}

/// The allowlist of origins.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CorsPolicy {
    any: bool,
    origins: Vec<String>,
}

impl CorsPolicy {
    /// From `cors_allowed_origins`: comma-separated `scheme://host[:port]`
    /// (trailing `/` ignored, case-insensitive); `*` allows any origin.
    /// Entries that are not origins are ignored.
    pub fn parse(value: &str) -> Self {
        let mut policy = Self::default();
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                policy.any = true;
            } else if let Some(origin) = normalize_origin(entry.trim_end_matches('/')) {
                policy.origins.push(origin);
            }
        }
        policy
    }

    /// The value of `access-control-allow-origin` for `origin`, if allowed.
    pub fn allow_origin(&self, origin: &str) -> Option<String> {
        let normalized = normalize_origin(origin)?;
        if self.origins.contains(&normalized) {
            Some(origin.to_owned())
        } else if self.any {
            Some("*".to_owned())
        } else {
            None
        }
    }

    /// `Some(response)` if `request` is a CORS preflight: 204 with the CORS
    /// headers for an allowed origin and method, else a JSON 403.
    pub fn preflight(&self, request: &HttpRequest) -> Option<HttpResponse> {
        if request.method != "OPTIONS" {
            return None;
        }
        let origin = request.header("origin")?;
        let method = request.header("access-control-request-method")?;
        let Some(allow) = self.allow_origin(origin) else {
            return Some(HttpResponse::error(&Error::Forbidden(
                "origin not allowed by CORS policy".into(),
            )));
        };
        if !ALLOWED_METHODS.contains(&method.trim()) {
            return Some(HttpResponse::error(&Error::Forbidden(
                "method not allowed by CORS policy".into(),
            )));
        }
        let mut response = HttpResponse {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        }
        .with_header("access-control-allow-origin", allow)
        .with_header("access-control-allow-methods", ALLOWED_METHODS.join(", "))
        .with_header("access-control-allow-headers", ALLOWED_HEADERS)
        .with_header("access-control-max-age", PREFLIGHT_MAX_AGE_S.to_string());
        response = add_vary(
            response,
            "origin, access-control-request-method, access-control-request-headers",
        );
        Some(response)
    }

    /// Add `access-control-allow-origin` (and `vary`, exposed headers) to
    /// `response` when `request` comes from an allowed origin.
    pub fn apply(&self, request: &HttpRequest, mut response: HttpResponse) -> HttpResponse {
        if !self.origins.is_empty() {
            response = add_vary(response, "origin");
        }
        let Some(allow) = request.header("origin").and_then(|o| self.allow_origin(o)) else {
            return response;
        };
        if response.header("access-control-allow-origin").is_some() {
            return response;
        }
        response
            .with_header("access-control-allow-origin", allow)
            .with_header("access-control-expose-headers", EXPOSED_HEADERS)
    }
}

/// `scheme://host[:port]` lowercased, if `value` is exactly an origin.
fn normalize_origin(value: &str) -> Option<String> {
    let (scheme, rest) = value.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https") || rest.is_empty() {
        return None;
    }
    let valid = rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    valid.then(|| format!("{scheme}://{}", rest.to_ascii_lowercase()))
}

fn add_vary(response: HttpResponse, value: &str) -> HttpResponse {
    match response.header("vary") {
        Some(existing) if existing.to_ascii_lowercase().contains("origin") => response,
        Some(existing) => {
            let merged = format!("{existing}, {value}");
            let mut response = response;
            response.headers.retain(|(n, _)| n != "vary");
            response.with_header("vary", merged)
        }
        None => response.with_header("vary", value),
    }
}

fn set_default(response: HttpResponse, name: &str, value: &str) -> HttpResponse {
    if response.header(name).is_some() {
        response
    } else {
        response.with_header(name, value)
    }
}

/// Add the security headers of `kind` that `response` does not already set.
pub fn apply_security_headers(mut response: HttpResponse, kind: RouteKind) -> HttpResponse {
    response = set_default(response, "x-content-type-options", "nosniff");
    response = set_default(response, "referrer-policy", "no-referrer");
    response = set_default(response, "x-frame-options", "DENY");
    let csp = match kind {
        RouteKind::Page => PAGE_CSP,
        RouteKind::Public | RouteKind::Api | RouteKind::Auth => API_CSP,
    };
    response = set_default(response, "content-security-policy", csp);
    if kind == RouteKind::Auth {
        response = set_default(response, "cache-control", "no-store");
        response = set_default(response, "pragma", "no-cache");
    }
    if response.status == 401 {
        response = set_default(
            response,
            "www-authenticate",
            "Bearer realm=\"ragspin\", error=\"invalid_token\"",
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preflight(origin: &str, method: &str) -> HttpRequest {
        HttpRequest::new("OPTIONS", "/v1/query")
            .with_header("origin", origin)
            .with_header("access-control-request-method", method)
    }

    #[test]
    fn answers_a_preflight_from_an_allowed_origin_with_204() {
        let policy = CorsPolicy::parse("https://app.example.com, http://localhost:5173/");
        let response = policy
            .preflight(&preflight("https://app.example.com", "POST"))
            .unwrap();
        assert_eq!(response.status, 204);
        assert_eq!(
            response.header("access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert!(
            response
                .header("access-control-allow-headers")
                .unwrap()
                .contains("authorization")
        );
        assert!(
            response
                .header("access-control-allow-credentials")
                .is_none()
        );
        let local = policy.preflight(&preflight("http://LOCALHOST:5173", "GET"));
        assert_eq!(local.unwrap().status, 204);
    }

    #[test]
    fn refuses_a_preflight_from_a_disallowed_origin_with_a_json_403() {
        let policy = CorsPolicy::parse("https://app.example.com");
        for origin in [
            "https://evil.example.com",
            "https://app.example.com.evil.com",
            "null",
            "http://app.example.com",
        ] {
            let response = policy.preflight(&preflight(origin, "POST")).unwrap();
            assert_eq!(response.status, 403, "{origin}");
            assert!(response.header("access-control-allow-origin").is_none());
            let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
            assert_eq!(body["error"]["code"], "forbidden");
        }
        let response = policy
            .preflight(&preflight("https://app.example.com", "TRACE"))
            .unwrap();
        assert_eq!(response.status, 403);
    }

    #[test]
    fn an_empty_allowlist_refuses_every_preflight() {
        let response = CorsPolicy::parse("")
            .preflight(&preflight("https://a.example", "GET"))
            .unwrap();
        assert_eq!(response.status, 403);
    }

    #[test]
    fn a_wildcard_never_comes_with_credentials() {
        let policy = CorsPolicy::parse("*");
        let response = policy
            .preflight(&preflight("https://x.example", "GET"))
            .unwrap();
        assert_eq!(response.header("access-control-allow-origin"), Some("*"));
        assert!(
            response
                .header("access-control-allow-credentials")
                .is_none()
        );
        let request = HttpRequest::new("GET", "/").with_header("origin", "https://x.example");
        let response = policy.apply(&request, HttpResponse::text(200, "text/plain", "x"));
        assert_eq!(response.header("access-control-allow-origin"), Some("*"));
        assert!(
            response
                .header("access-control-allow-credentials")
                .is_none()
        );
    }

    #[test]
    fn plain_options_and_other_methods_are_not_preflights() {
        let policy = CorsPolicy::parse("*");
        assert!(
            policy
                .preflight(&HttpRequest::new("OPTIONS", "/"))
                .is_none()
        );
        let get = HttpRequest::new("GET", "/")
            .with_header("origin", "https://x.example")
            .with_header("access-control-request-method", "GET");
        assert!(policy.preflight(&get).is_none());
    }

    #[test]
    fn only_allowed_origins_get_cors_headers_on_responses() {
        let policy = CorsPolicy::parse("https://app.example.com");
        let ok = HttpRequest::new("GET", "/").with_header("origin", "https://app.example.com");
        let response = policy.apply(&ok, HttpResponse::text(200, "text/plain", "x"));
        assert_eq!(
            response.header("access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(response.header("vary"), Some("origin"));
        let evil = HttpRequest::new("GET", "/").with_header("origin", "https://evil.example");
        let response = policy.apply(&evil, HttpResponse::text(200, "text/plain", "x"));
        assert!(response.header("access-control-allow-origin").is_none());
    }

    #[test]
    fn ignores_entries_that_are_not_origins() {
        let policy = CorsPolicy::parse("app.example.com, ftp://x, https://ok.example/path");
        assert!(policy.allow_origin("https://app.example.com").is_none());
        assert!(policy.allow_origin("ftp://x").is_none());
        assert!(policy.allow_origin("https://ok.example").is_none());
    }

    #[test]
    fn adds_security_headers_by_route_kind_without_overriding() {
        let auth = apply_security_headers(HttpResponse::json(200, &1), RouteKind::Auth);
        assert_eq!(auth.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(auth.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(auth.header("cache-control"), Some("no-store"));
        assert_eq!(auth.header("content-security-policy"), Some(API_CSP));
        let page =
            apply_security_headers(HttpResponse::text(200, "text/html", ""), RouteKind::Page);
        assert_eq!(page.header("content-security-policy"), Some(PAGE_CSP));
        assert!(page.header("cache-control").is_none());
        let own =
            HttpResponse::text(200, "text/html", "").with_header("cache-control", "max-age=60");
        let own = apply_security_headers(own, RouteKind::Auth);
        assert_eq!(own.header("cache-control"), Some("max-age=60"));
    }

    #[test]
    fn challenges_401s_with_www_authenticate() {
        let response = apply_security_headers(
            HttpResponse::error(&Error::Unauthorized("x".into())),
            RouteKind::Api,
        );
        assert!(
            response
                .header("www-authenticate")
                .unwrap()
                .starts_with("Bearer")
        );
    }
}
