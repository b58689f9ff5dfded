//! The ingest component's HTTP API, as a pure function of the request and
//! the ports: decode → [`IndexService`] → encode. Tested natively; the
//! component only supplies Spin adapters.
//!
//! | route | does |
//! |---|---|
//! | `GET /v1/indexes` | list indexes |
//! | `PUT /v1/indexes/{index}` | create (201) or update (200) settings |
//! | `GET /v1/indexes/{index}` | settings, stats, versions |
//! | `DELETE /v1/indexes/{index}` | delete everything (204) |
//! | `POST /v1/indexes/{index}/documents` | JSON or multipart upload (201 created / 200 unchanged / 202 resumable) |
//! | `GET /v1/indexes/{index}/documents` | page of documents (`?limit=&cursor=`) |
//! | `GET/PUT/DELETE /v1/indexes/{index}/documents/{id}` | status, replace, delete |
//! | `POST /v1/indexes/{index}/versions` | build (or continue) a new version (201 ready / 202 building) |
//! | `POST /v1/indexes/{index}/versions/{v}/activate` | swap the active version, or roll back |

use ragspin_core::{Clock, Embedder, Error, HttpRequest, HttpResponse, Result, Sql};
use serde::Deserialize;

use crate::model::{IndexSettings, IngestOutcome, NewDocument};
use crate::service::IndexService;

/// Largest request body the API accepts (several documents in one upload).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// What the API needs besides the database.
pub struct Context<'a, S: Sql, C: Clock, F> {
    pub sql: &'a S,
    pub clock: &'a C,
    /// Builds the embedder for an index's settings; `None` = offline mode.
    pub embedder: F,
    /// Time one request may spend embedding before answering 202.
    pub budget_ms: u64,
    /// Which indexes the caller may see in `GET /v1/indexes` (`None` = all).
    pub visible: Option<&'a dyn Fn(&str) -> bool>,
}

/// What a route needs from the caller, for the component's access check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading indexes and documents (readers).
    Read,
    /// Writing documents, settings and versions (editors).
    Write,
    /// Deleting a whole index (admins).
    Admin,
}

/// The access a request needs and the index it names (`None` for the
/// index listing, which is filtered per caller instead).
pub fn required_access<'p>(method: &str, path: &'p str) -> Result<(Access, Option<&'p str>)> {
    Ok(match (route(path)?, method) {
        (Route::ListIndexes, _) => (Access::Read, None),
        (Route::Index(i), "DELETE") => (Access::Admin, Some(i)),
        (Route::Index(i), "GET") => (Access::Read, Some(i)),
        (Route::Index(i), _) => (Access::Write, Some(i)),
        (Route::Documents(i) | Route::Document(i, _), "GET") => (Access::Read, Some(i)),
        (
            Route::Documents(i)
            | Route::Document(i, _)
            | Route::Versions(i)
            | Route::Activate(i, _),
            _,
        ) => (Access::Write, Some(i)),
    })
}

/// One route, parsed from method and path.
#[derive(Debug, PartialEq, Eq)]
enum Route<'p> {
    ListIndexes,
    Index(&'p str),
    Documents(&'p str),
    Document(&'p str, &'p str),
    Versions(&'p str),
    Activate(&'p str, &'p str),
}

fn route(path: &str) -> Result<Route<'_>> {
    let rest = path
        .strip_prefix("/v1/indexes")
        .ok_or_else(|| Error::NotFound(format!("no route for {path}")))?;
    let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    Ok(match parts.as_slice() {
        [] => Route::ListIndexes,
        [index] => Route::Index(index),
        [index, "documents"] => Route::Documents(index),
        [index, "documents", id] => Route::Document(index, id),
        [index, "versions"] => Route::Versions(index),
        [index, "versions", v, "activate"] => Route::Activate(index, v),
        _ => return Err(Error::NotFound(format!("no route for {path}"))),
    })
}

fn not_allowed(method: &str, allow: &[&str]) -> Error {
    Error::MethodNotAllowed {
        method: method.to_string(),
        allow: allow.iter().map(|s| s.to_string()).collect(),
    }
}

/// Handles one request; every failure is a JSON error with its status.
pub async fn handle<S, C, F, E>(request: &HttpRequest, ctx: &Context<'_, S, C, F>) -> HttpResponse
where
    S: Sql,
    C: Clock,
    F: Fn(&IndexSettings) -> Option<E>,
    E: Embedder,
{
    match dispatch(request, ctx).await {
        Ok(response) => response,
        Err(e) => HttpResponse::error(&e),
    }
}

async fn dispatch<S, C, F, E>(
    request: &HttpRequest,
    ctx: &Context<'_, S, C, F>,
) -> Result<HttpResponse>
where
    S: Sql,
    C: Clock,
    F: Fn(&IndexSettings) -> Option<E>,
    E: Embedder,
{
    let route = route(request.path())?;
    let method = request.method.as_str();
    let svc = IndexService::new(ctx.sql, ctx.clock);
    svc.migrate().await?;
    let deadline = ctx.clock.now_unix_ms().saturating_add(ctx.budget_ms);
    match (route, method) {
        (Route::ListIndexes, "GET") => {
            let mut indexes = svc.list_indexes().await?;
            if let Some(visible) = ctx.visible {
                indexes.retain(|i| visible(&i.name));
            }
            Ok(HttpResponse::json(
                200,
                &serde_json::json!({ "indexes": indexes }),
            ))
        }
        (Route::ListIndexes, m) => Err(not_allowed(m, &["GET"])),
        (Route::Index(name), "PUT") => {
            let settings: IndexSettings = if request.body.iter().all(u8::is_ascii_whitespace) {
                IndexSettings::default()
            } else {
                json_body(request)?
            };
            let (info, created) = svc.put_index(name, settings).await?;
            Ok(HttpResponse::json(if created { 201 } else { 200 }, &info))
        }
        (Route::Index(name), "GET") => Ok(HttpResponse::json(200, &svc.get_index(name).await?)),
        (Route::Index(name), "DELETE") => {
            svc.delete_index(name).await?;
            Ok(HttpResponse::new(204, "application/json", Vec::new()))
        }
        (Route::Index(_), m) => Err(not_allowed(m, &["GET", "PUT", "DELETE"])),
        (Route::Documents(index), "POST") => {
            let settings = svc.get_index(index).await?.settings;
            let embedder = (ctx.embedder)(&settings);
            let docs = decode_documents(request)?;
            let single = docs.len() == 1 && !is_multipart(request);
            let mut outcomes = Vec::new();
            for doc in docs {
                outcomes.push(svc.ingest(index, doc, embedder.as_ref(), deadline).await?);
            }
            let status = outcome_status(&outcomes);
            if single {
                Ok(HttpResponse::json(status, &outcomes[0]))
            } else {
                Ok(HttpResponse::json(
                    status,
                    &serde_json::json!({ "documents": outcomes }),
                ))
            }
        }
        (Route::Documents(index), "GET") => {
            let query = parse_query(request.query().unwrap_or(""));
            let limit = match query.iter().find(|(k, _)| k == "limit") {
                Some((_, v)) => v.parse().map_err(|_| {
                    Error::validation("limit", "must be a number between 1 and 200")
                })?,
                None => 50,
            };
            let cursor = query
                .iter()
                .find(|(k, _)| k == "cursor")
                .map(|(_, v)| v.as_str());
            Ok(HttpResponse::json(
                200,
                &svc.list_documents(index, cursor, limit).await?,
            ))
        }
        (Route::Documents(_), m) => Err(not_allowed(m, &["GET", "POST"])),
        (Route::Document(index, id), "GET") => {
            Ok(HttpResponse::json(200, &svc.get_document(index, id).await?))
        }
        (Route::Document(index, id), "PUT") => {
            let settings = svc.get_index(index).await?.settings;
            let embedder = (ctx.embedder)(&settings);
            let mut docs = decode_documents(request)?;
            if docs.len() != 1 {
                return Err(Error::bad_request("PUT takes exactly one document"));
            }
            let mut doc = docs.remove(0);
            doc.id = Some(id.to_string());
            let outcome = svc.ingest(index, doc, embedder.as_ref(), deadline).await?;
            Ok(HttpResponse::json(
                outcome_status(std::slice::from_ref(&outcome)),
                &outcome,
            ))
        }
        (Route::Document(index, id), "DELETE") => {
            svc.delete_document(index, id).await?;
            Ok(HttpResponse::new(204, "application/json", Vec::new()))
        }
        (Route::Document(..), m) => Err(not_allowed(m, &["GET", "PUT", "DELETE"])),
        (Route::Versions(index), "POST") => {
            let settings = svc.get_index(index).await?.settings;
            let embedder = (ctx.embedder)(&settings);
            let progress = svc
                .build_version(index, embedder.as_ref(), deadline)
                .await?;
            let status = if progress.state == "ready" { 201 } else { 202 };
            Ok(HttpResponse::json(status, &progress))
        }
        (Route::Versions(_), m) => Err(not_allowed(m, &["POST"])),
        (Route::Activate(index, v), "POST") => {
            let version: i64 = v
                .parse()
                .map_err(|_| Error::bad_field("version", "must be a version number"))?;
            Ok(HttpResponse::json(
                200,
                &svc.activate_version(index, version).await?,
            ))
        }
        (Route::Activate(..), m) => Err(not_allowed(m, &["POST"])),
    }
}

fn outcome_status(outcomes: &[IngestOutcome]) -> u16 {
    if outcomes.iter().any(|o| o.pending) {
        202
    } else if outcomes.iter().any(|o| o.created) {
        201
    } else {
        200
    }
}

fn json_body<T: for<'de> Deserialize<'de>>(request: &HttpRequest) -> Result<T> {
    if let Some(ct) = request.header("content-type")
        && !ct.to_ascii_lowercase().starts_with("application/json")
    {
        return Err(Error::UnsupportedMediaType(format!(
            "expected application/json, got {ct}"
        )));
    }
    serde_json::from_slice(&request.body)
        .map_err(|e| Error::bad_request(format!("invalid JSON body: {e}")))
}

fn is_multipart(request: &HttpRequest) -> bool {
    request
        .header("content-type")
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// JSON upload: `{filename, content | content_base64, content_type, metadata, id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonDocument {
    filename: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    content_base64: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    id: Option<String>,
}

fn decode_documents(request: &HttpRequest) -> Result<Vec<NewDocument>> {
    if request.body.len() > MAX_BODY_BYTES {
        return Err(Error::PayloadTooLarge(format!(
            "request body exceeds {MAX_BODY_BYTES} bytes"
        )));
    }
    if is_multipart(request) {
        return crate::multipart::documents(request);
    }
    let doc: JsonDocument = json_body(request)?;
    let content = match (doc.content, doc.content_base64) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(b64)) => crate::multipart::base64_decode(&b64)
            .ok_or_else(|| Error::bad_field("content_base64", "is not valid base64"))?,
        _ => {
            return Err(Error::bad_field(
                "content",
                "give exactly one of `content` (text) or `content_base64`",
            ));
        }
    };
    Ok(vec![NewDocument {
        id: doc.id,
        filename: doc.filename,
        content_type: doc.content_type,
        content,
        metadata: doc.metadata,
    }])
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                crate::multipart::percent_decode(k),
                crate::multipart::percent_decode(v),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        assert_eq!(route("/v1/indexes").unwrap(), Route::ListIndexes);
        assert_eq!(route("/v1/indexes/").unwrap(), Route::ListIndexes);
        assert_eq!(route("/v1/indexes/a").unwrap(), Route::Index("a"));
        assert_eq!(
            route("/v1/indexes/a/documents/x").unwrap(),
            Route::Document("a", "x")
        );
        assert_eq!(
            route("/v1/indexes/a/versions/2/activate").unwrap(),
            Route::Activate("a", "2")
        );
        assert!(route("/v1/indexes/a/b/c/d/e").is_err());
    }

    #[test]
    fn reads_writes_and_index_deletes_need_different_access() {
        assert_eq!(
            required_access("GET", "/v1/indexes").unwrap(),
            (Access::Read, None)
        );
        assert_eq!(
            required_access("GET", "/v1/indexes/a/documents/x").unwrap(),
            (Access::Read, Some("a"))
        );
        assert_eq!(
            required_access("POST", "/v1/indexes/a/documents").unwrap(),
            (Access::Write, Some("a"))
        );
        assert_eq!(
            required_access("PUT", "/v1/indexes/a").unwrap(),
            (Access::Write, Some("a"))
        );
        assert_eq!(
            required_access("POST", "/v1/indexes/a/versions/2/activate").unwrap(),
            (Access::Write, Some("a"))
        );
        assert_eq!(
            required_access("DELETE", "/v1/indexes/a").unwrap(),
            (Access::Admin, Some("a"))
        );
        assert!(required_access("GET", "/elsewhere").is_err());
    }
}
