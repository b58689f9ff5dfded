//! The page and its assets, embedded at compile time, and how they are
//! served: pure functions over the core's HTTP types, tested natively.
//!
//! * `GET /` (also `/index.html`) is the page; `/app.js`, `/sse.js`,
//!   `/app.css`, `/favicon.svg` its assets. Nothing is fetched from
//!   anywhere else (no CDN, no web fonts), so the page works offline and
//!   under the same-origin CSP the component's guard adds.
//! * Every asset has a strong `ETag` (the first 128 bits of its SHA-256,
//!   computed once per instance) and `cache-control: no-cache`: browsers
//!   keep a copy but revalidate it on every load, and `If-None-Match`
//!   answers `304` with no body. The page and its scripts change together
//!   with each deployment, so nothing is cached without revalidation.
//! * `HEAD` answers the same headers without a body; any other method is a
//!   JSON `405` with `allow: GET, HEAD`; an unknown path is a JSON `404`.

use std::sync::OnceLock;

use ragspin_core::{Error, HttpRequest, HttpResponse, Result};
use sha2::{Digest, Sha256};

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// The path it is served at.
    pub path: &'static str,
    /// Its `content-type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every file the component serves; `/` and `/index.html` are the page.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: HTML,
        body: include_bytes!("../assets/index.html"),
    },
    Asset {
        path: "/index.html",
        content_type: HTML,
        body: include_bytes!("../assets/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: JS,
        body: include_bytes!("../assets/app.js"),
    },
    Asset {
        path: "/sse.js",
        content_type: JS,
        body: include_bytes!("../assets/sse.js"),
    },
    Asset {
        path: "/app.css",
        content_type: CSS,
        body: include_bytes!("../assets/app.css"),
    },
    Asset {
        path: "/favicon.svg",
        content_type: SVG,
        body: include_bytes!("../assets/favicon.svg"),
    },
];

/// `cache-control` of every asset: keep, but revalidate before each use.
pub const CACHE_CONTROL: &str = "no-cache";

/// The methods the component answers.
const ALLOWED: [&str; 2] = ["GET", "HEAD"];

/// The asset served at `path`, if any.
pub fn find(path: &str) -> Option<(usize, &'static Asset)> {
    ASSETS.iter().enumerate().find(|(_, a)| a.path == path)
}

/// The strong entity tag of asset `i` of [`ASSETS`] (quoted), computed once.
pub fn etag(i: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| ASSETS.iter().map(|a| etag_of(a.body)).collect());
    &tags[i]
}

/// `"<hex of the first 16 bytes of SHA-256(body)>"`.
pub fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison, as
/// RFC 9110 §13.1.2 asks for this header; `*` matches anything).
pub fn none_match(header: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let etag = bare(etag);
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || bare(tag) == etag)
}

/// Answer `request` from the embedded assets.
pub fn serve(request: &HttpRequest) -> Result<HttpResponse> {
    let method = request.method.to_ascii_uppercase();
    if !ALLOWED.contains(&method.as_str()) {
        return Err(Error::MethodNotAllowed {
            method,
            allow: ALLOWED.iter().map(|m| (*m).to_owned()).collect(),
        });
    }
    let path = request.path();
    let Some((i, asset)) = find(path) else {
        let shown: String = path.chars().take(200).collect();
        return Err(Error::NotFound(format!("no page or asset at {shown}")));
    };
    let tag = etag(i);
    if request
        .header("if-none-match")
        .is_some_and(|h| none_match(h, tag))
    {
        return Ok(HttpResponse {
            status: 304,
            headers: vec![
                ("etag".into(), tag.into()),
                ("cache-control".into(), CACHE_CONTROL.into()),
            ],
            body: Vec::new(),
        });
    }
    let body = if method == "HEAD" {
        Vec::new()
    } else {
        asset.body.to_vec()
    };
    Ok(HttpResponse::new(200, asset.content_type, body)
        .with_header("etag", tag)
        .with_header("cache-control", CACHE_CONTROL))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ragspin_core::status_for;

    fn get(path: &str) -> HttpRequest {
        HttpRequest::new("GET", format!("http://127.0.0.1:3000{path}"))
    }

    fn page() -> String {
        String::from_utf8(find("/").unwrap().1.body.to_vec()).unwrap()
    }

    #[test]
    fn serves_the_page_at_the_root_as_html() {
        let response = serve(&get("/")).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some(HTML));
        assert_eq!(response.header("cache-control"), Some("no-cache"));
        assert!(response.body.starts_with(b"<!doctype html>"));
        assert_eq!(serve(&get("/?x=1")).unwrap().body, response.body);
    }

    #[test]
    fn serves_each_asset_with_its_content_type() {
        for (path, ct) in [
            ("/index.html", HTML),
            ("/app.js", JS),
            ("/sse.js", JS),
            ("/app.css", CSS),
            ("/favicon.svg", SVG),
        ] {
            let response = serve(&get(path)).unwrap();
            assert_eq!(response.status, 200, "{path}");
            assert_eq!(response.header("content-type"), Some(ct), "{path}");
            assert!(!response.body.is_empty(), "{path}");
        }
    }

    #[test]
    fn every_asset_the_page_references_is_served() {
        let page = page();
        for asset in ASSETS
            .iter()
            .filter(|a| a.path != "/" && a.path != "/index.html")
        {
            let name = asset.path.trim_start_matches('/');
            let referenced = page.contains(&format!("\"/{name}\""))
                || std::str::from_utf8(find("/app.js").unwrap().1.body)
                    .unwrap()
                    .contains(&format!("'./{name}'"));
            assert!(
                referenced,
                "{} is embedded but never referenced",
                asset.path
            );
        }
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_has_no_inline_code() {
        for asset in ASSETS {
            let text = String::from_utf8_lossy(asset.body);
            for needle in ["http://", "https://", "//fonts.", "@import"] {
                assert!(
                    !text.contains(needle) || asset.path == "/favicon.svg",
                    "{} contains {needle}",
                    asset.path
                );
            }
        }
        let page = page();
        assert!(!page.contains("<script>"), "inline script");
        assert!(!page.contains("<style"), "inline style");
        assert!(!page.contains(" style="), "inline style attribute");
        let inline_handler = page.match_indices(" on").any(|(i, _)| {
            let rest = &page[i + 3..];
            let name_len = rest.chars().take_while(char::is_ascii_lowercase).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        });
        assert!(!inline_handler, "inline event handler");
    }

    #[test]
    fn the_etag_is_a_hash_of_the_content() {
        let (i, asset) = find("/app.js").unwrap();
        assert_eq!(etag(i), etag_of(asset.body));
        assert_eq!(etag(i).len(), 34);
        assert_ne!(etag_of(b"a"), etag_of(b"b"));
        let response = serve(&get("/app.js")).unwrap();
        assert_eq!(response.header("etag"), Some(etag(i)));
    }

    #[test]
    fn answers_304_when_the_client_has_the_same_version() {
        let tag = serve(&get("/app.css"))
            .unwrap()
            .header("etag")
            .unwrap()
            .to_owned();
        for header in [
            tag.clone(),
            format!("W/{tag}"),
            format!("\"other\", {tag}"),
            "*".to_owned(),
        ] {
            let response = serve(&get("/app.css").with_header("if-none-match", &header)).unwrap();
            assert_eq!(response.status, 304, "{header}");
            assert!(response.body.is_empty());
            assert_eq!(response.header("etag"), Some(tag.as_str()));
            assert_eq!(response.header("cache-control"), Some(CACHE_CONTROL));
        }
        let stale = serve(&get("/app.css").with_header("if-none-match", "\"0123\"")).unwrap();
        assert_eq!(stale.status, 200);
    }

    #[test]
    fn head_answers_the_headers_without_the_body() {
        let response = serve(&HttpRequest::new("HEAD", "/app.js")).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some(JS));
        assert!(response.header("etag").is_some());
        assert!(response.body.is_empty());
    }

    #[test]
    fn unknown_paths_are_a_json_404() {
        for path in [
            "/nope",
            "/app.js/",
            "/favicon.ico",
            "/../etc/passwd",
            "/APP.JS",
        ] {
            let error = serve(&get(path)).unwrap_err();
            assert_eq!(status_for(&error), 404, "{path}");
            let response = HttpResponse::error(&error);
            let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
            assert_eq!(body["error"]["code"], "not_found", "{path}");
        }
    }

    #[test]
    fn other_methods_are_a_405_allowing_get_and_head() {
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let error = serve(&HttpRequest::new(method, "/")).unwrap_err();
            assert_eq!(status_for(&error), 405, "{method}");
            let response = HttpResponse::error(&error);
            assert_eq!(response.header("allow"), Some("GET, HEAD"));
        }
    }
}
