//! Spin's HTTP route matching: exact routes, `:name` segments and a trailing
//! `/...` wildcard. An exact route beats a pattern; among patterns the one
//! with the most literal segments (the longest prefix) wins.

use anyhow::{Result, bail};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Named(String),
}

#[derive(Debug, Clone)]
struct Route {
    raw: String,
    segments: Vec<Segment>,
    wildcard: bool,
    component: String,
}

/// A successful match, with what Spin passes to the component as headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub component: String,
    /// The route as written in `spin.toml` (`spin-matched-route`, `spin-raw-component-route`).
    pub raw_route: String,
    /// The route without its trailing `/...` (`spin-component-route`).
    pub route_prefix: String,
    /// The part of the path the wildcard matched (`spin-path-info`).
    pub path_info: String,
    /// `:name` segments (`spin-path-match-<name>`).
    pub named: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

fn split(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

impl Router {
    pub fn build<'a>(triggers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut routes: Vec<Route> = Vec::new();
        for (raw, component) in triggers {
            if !raw.starts_with('/') {
                bail!("route {raw:?} must start with '/'");
            }
            let (body, wildcard) = match raw.strip_suffix("/...") {
                Some(body) => (body, true),
                None if raw == "/..." => ("", true),
                None => (raw, false),
            };
            if body.contains("...") {
                bail!("route {raw:?}: '...' is only allowed as the last segment");
            }
            let segments = split(body)
                .into_iter()
                .map(|s| match s.strip_prefix(':') {
                    Some(name) => Segment::Named(name.to_string()),
                    None => Segment::Literal(s.to_string()),
                })
                .collect();
            let route = Route {
                raw: raw.to_string(),
                segments,
                wildcard,
                component: component.to_string(),
            };
            if let Some(dup) = routes
                .iter()
                .find(|r| r.segments == route.segments && r.wildcard == route.wildcard)
            {
                bail!(
                    "duplicate route {raw:?} (components {:?} and {component:?})",
                    dup.component
                );
            }
            routes.push(route);
        }
        Ok(Self { routes })
    }

    /// Finds the component for `path` (the URI path, without query).
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let parts = split(path);
        let mut best: Option<((bool, usize, usize), RouteMatch)> = None;
        for route in &self.routes {
            let n = route.segments.len();
            if parts.len() < n || (!route.wildcard && parts.len() != n) {
                continue;
            }
            let mut named = Vec::new();
            let matched = route
                .segments
                .iter()
                .zip(&parts)
                .all(|(segment, part)| match segment {
                    Segment::Literal(l) => l == part,
                    Segment::Named(name) => {
                        named.push((name.clone(), (*part).to_string()));
                        true
                    }
                });
            if !matched {
                continue;
            }
            let literals = route
                .segments
                .iter()
                .filter(|s| matches!(s, Segment::Literal(_)))
                .count();
            // Exact beats wildcard, then more literal segments, then more segments.
            let rank = (!route.wildcard, literals, n);
            if best.as_ref().is_some_and(|(r, _)| *r >= rank) {
                continue;
            }
            let path_info = if route.wildcard {
                let rest = parts[n..].join("/");
                let trailing = path.ends_with('/') && !rest.is_empty();
                match (rest.is_empty(), trailing) {
                    (true, _) => String::new(),
                    (false, true) => format!("/{rest}/"),
                    (false, false) => format!("/{rest}"),
                }
            } else {
                String::new()
            };
            let route_prefix = route
                .raw
                .strip_suffix("/...")
                .map(str::to_string)
                .unwrap_or_else(|| route.raw.clone());
            best = Some((
                rank,
                RouteMatch {
                    component: route.component.clone(),
                    raw_route: route.raw.clone(),
                    route_prefix,
                    path_info,
                    named,
                },
            ));
        }
        best.map(|(_, m)| m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::build([
            ("/healthz", "health"),
            ("/v1/indexes", "ingest"),
            ("/v1/indexes/...", "ingest"),
            ("/v1/query", "query"),
            ("/users/:id/...", "users"),
            ("/...", "web"),
        ])
        .unwrap()
    }

    #[test]
    fn exact_route_matches_only_its_path() {
        let m = router().route("/healthz").unwrap();
        assert_eq!(m.component, "health");
        assert_eq!(m.path_info, "");
        assert_eq!(router().route("/healthz/x").unwrap().component, "web");
    }

    #[test]
    fn longest_wildcard_prefix_wins() {
        let m = router().route("/v1/indexes/docs/documents/7").unwrap();
        assert_eq!(m.component, "ingest");
        assert_eq!(m.raw_route, "/v1/indexes/...");
        assert_eq!(m.route_prefix, "/v1/indexes");
        assert_eq!(m.path_info, "/docs/documents/7");
    }

    #[test]
    fn exact_route_beats_wildcard_on_the_same_path() {
        let m = router().route("/v1/indexes").unwrap();
        assert_eq!(m.raw_route, "/v1/indexes");
    }

    #[test]
    fn root_wildcard_catches_everything_else() {
        let m = router().route("/").unwrap();
        assert_eq!(m.component, "web");
        assert_eq!(m.path_info, "");
        let m = router().route("/static/app.js").unwrap();
        assert_eq!(m.component, "web");
        assert_eq!(m.path_info, "/static/app.js");
    }

    #[test]
    fn named_segments_are_captured() {
        let m = router().route("/users/42/profile").unwrap();
        assert_eq!(m.component, "users");
        assert_eq!(m.named, vec![("id".to_string(), "42".to_string())]);
        assert_eq!(m.path_info, "/profile");
    }

    #[test]
    fn no_match_without_catch_all() {
        let r = Router::build([("/a", "a")]).unwrap();
        assert!(r.route("/b").is_none());
    }

    #[test]
    fn rejects_duplicate_routes() {
        assert!(Router::build([("/a/...", "a"), ("/a/...", "b")]).is_err());
    }
}
