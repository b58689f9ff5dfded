//! The compiled web component over real HTTP: the page and its assets with
//! their content types, the page's CSP, ETag revalidation, HEAD, and the
//! JSON 404 / 405. The browser test of the page itself is `make e2e`
//! (tests/e2e).

mod common;

use common::{app, client, get_json, start};
use reqwest::blocking::Response;

const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn header(res: &Response, name: &str) -> String {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn the_root_serves_the_page_as_html_under_a_same_origin_csp() {
    let host = start(app(&["web"]));
    let res = client().get(host.url("/")).send().unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "content-type"), "text/html; charset=utf-8");
    let csp = header(&res, "content-security-policy");
    assert_eq!(csp, PAGE_CSP);
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(header(&res, "x-content-type-options"), "nosniff");
    assert_eq!(header(&res, "x-frame-options"), "DENY");
    assert_eq!(header(&res, "referrer-policy"), "no-referrer");
    assert_eq!(header(&res, "cache-control"), "no-cache");
    let body = res.text().unwrap();
    assert!(body.starts_with("<!doctype html>"), "{body}");
    assert!(body.contains(r#"<script type="module" src="/app.js"></script>"#));
    assert!(body.contains(r#"<link rel="stylesheet" href="/app.css">"#));
}

#[test]
fn every_asset_is_served_with_its_content_type_and_the_page_csp() {
    let host = start(app(&["web"]));
    for (path, content_type, needle) in [
        ("/index.html", "text/html; charset=utf-8", "<!doctype html>"),
        (
            "/app.js",
            "text/javascript; charset=utf-8",
            "import { readEvents }",
        ),
        (
            "/sse.js",
            "text/javascript; charset=utf-8",
            "export class SseParser",
        ),
        ("/app.css", "text/css; charset=utf-8", ":root"),
        ("/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let res = client().get(host.url(path)).send().unwrap();
        assert_eq!(res.status().as_u16(), 200, "{path}");
        assert_eq!(header(&res, "content-type"), content_type, "{path}");
        assert_eq!(header(&res, "content-security-policy"), PAGE_CSP, "{path}");
        assert!(header(&res, "etag").starts_with('"'), "{path}");
        let body = res.text().unwrap();
        assert!(body.contains(needle), "{path}: {body}");
    }
}

#[test]
fn every_local_reference_of_the_page_resolves() {
    let host = start(app(&["web"]));
    let page = client().get(host.url("/")).send().unwrap().text().unwrap();
    let mut refs: Vec<String> = ["src=\"/", "href=\"/"]
        .iter()
        .flat_map(|attr| {
            page.match_indices(attr).map(|(i, _)| {
                let rest = &page[i + attr.len() - 1..];
                rest[..rest.find('"').unwrap()].to_string()
            })
        })
        .collect();
    refs.sort();
    refs.dedup();
    assert!(refs.len() >= 3, "{refs:?}");
    let script = client()
        .get(host.url("/app.js"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(script.contains("from './sse.js'"));
    refs.push("/sse.js".into());
    for path in refs {
        let res = client().get(host.url(&path)).send().unwrap();
        assert_eq!(res.status().as_u16(), 200, "{path}");
    }
}

#[test]
fn if_none_match_with_the_etag_answers_304_without_a_body() {
    let host = start(app(&["web"]));
    for path in ["/", "/app.js", "/app.css"] {
        let first = client().get(host.url(path)).send().unwrap();
        let etag = header(&first, "etag");
        assert_eq!(etag.len(), 34, "{etag}");
        let again = client()
            .get(host.url(path))
            .header("if-none-match", &etag)
            .send()
            .unwrap();
        assert_eq!(again.status().as_u16(), 304, "{path}");
        assert_eq!(header(&again, "etag"), etag);
        assert_eq!(header(&again, "cache-control"), "no-cache");
        assert!(again.bytes().unwrap().is_empty());
        let stale = client()
            .get(host.url(path))
            .header("if-none-match", "\"0000\"")
            .send()
            .unwrap();
        assert_eq!(stale.status().as_u16(), 200, "{path}");
        assert_eq!(header(&stale, "etag"), etag);
    }
}

#[test]
fn head_answers_the_headers_without_the_body() {
    let host = start(app(&["web"]));
    let res = client().head(host.url("/app.js")).send().unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        header(&res, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert!(header(&res, "etag").starts_with('"'));
    assert!(res.bytes().unwrap().is_empty());
}

#[test]
fn an_unknown_path_is_a_json_404() {
    let host = start(app(&["web"]));
    for path in ["/nope", "/favicon.ico", "/app.js/x", "/v2/query"] {
        let (status, body) = get_json(&host.url(path));
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(path),
            "{body}"
        );
    }
}

#[test]
fn methods_other_than_get_and_head_are_a_json_405() {
    let host = start(app(&["web"]));
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let res = client()
            .request(method.parse().unwrap(), host.url("/"))
            .body("x")
            .send()
            .unwrap();
        assert_eq!(res.status().as_u16(), 405, "{method}");
        assert_eq!(header(&res, "allow"), "GET, HEAD");
        let body: serde_json::Value = res.json().unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    }
}

#[test]
fn the_page_does_not_shadow_the_api_routes() {
    let host = start(app(&["web", "health"]));
    let (status, body) = get_json(&host.url("/healthz"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    let res = client().get(host.url("/")).send().unwrap();
    assert_eq!(header(&res, "content-type"), "text/html; charset=utf-8");
}
