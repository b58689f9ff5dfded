//! The one error type of the core, its HTTP status and its JSON body.
//!
//! Every layer (services, ports, adapters) reports failures as [`Error`]. The
//! HTTP status of an error is decided in exactly one place, [`status_for`], and
//! the machine-readable code in exactly one place, [`Error::code`], so that
//! every component answers the same failure the same way.

use serde::{Deserialize, Serialize};

/// Everything that can go wrong in ragspin, grouped by how a client should react.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The request is malformed (bad JSON, missing or mistyped field): 400.
    #[error("{}", with_field(field.as_deref(), message))]
    BadRequest {
        /// The offending field, when one can be named.
        field: Option<String>,
        /// What is wrong, for humans.
        message: String,
    },
    /// The request is well formed but semantically invalid: 422.
    #[error("{}", with_field(field.as_deref(), message))]
    Validation {
        /// The offending field, when one can be named.
        field: Option<String>,
        /// What is wrong, for humans.
        message: String,
    },
    /// The addressed resource (or route) does not exist: 404.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method: 405 (with an `allow` header).
    #[error("method {method} not allowed; allowed: {}", allow.join(", "))]
    MethodNotAllowed {
        /// The method the client used.
        method: String,
        /// The methods the route accepts.
        allow: Vec<String>,
    },
    /// The request conflicts with the current state of the resource: 409.
    #[error("{0}")]
    Conflict(String),
    /// Missing or invalid credentials: 401.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials without the needed permission: 403.
    #[error("{0}")]
    Forbidden(String),
    /// The request body is larger than allowed: 413.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The request body's content type is not accepted: 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too many requests; retry after the given number of seconds: 429.
    #[error("rate limited; retry after {retry_after_s} s")]
    RateLimited {
        /// Seconds until a retry may succeed (sent as `retry-after`).
        retry_after_s: u64,
    },
    /// The route is planned but not built yet: 501.
    #[error("{0}")]
    NotImplemented(String),
    /// A dependency is (temporarily) unavailable or the service is not ready: 503.
    #[error("{0}")]
    Unavailable(String),
    /// An upstream service (Azure OpenAI, ...) failed or answered nonsense: 502.
    #[error("upstream error: {0}")]
    Upstream(String),
    /// An upstream service did not answer in time: 504.
    #[error("upstream timeout: {0}")]
    Timeout(String),
    /// The key-value store or the database failed: 500.
    #[error("storage error: {0}")]
    Storage(String),
    /// A bug or an unexpected state: 500.
    #[error("internal error: {0}")]
    Internal(String),
}

fn with_field(field: Option<&str>, message: &str) -> String {
    match field {
        Some(field) => format!("{field}: {message}"),
        None => message.to_owned(),
    }
}

/// The result type of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A 400 without a specific field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            field: None,
            message: message.into(),
        }
    }

    /// A 400 about one field.
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// A 422 about one field.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// The stable, snake_case machine code of this error (the `error.code` field).
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "bad_request",
            Self::Validation { .. } => "validation_failed",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::RateLimited { .. } => "rate_limited",
            Self::NotImplemented(_) => "not_implemented",
            Self::Unavailable(_) => "unavailable",
            Self::Upstream(_) => "upstream_error",
            Self::Timeout(_) => "upstream_timeout",
            Self::Storage(_) => "storage_error",
            Self::Internal(_) => "internal_error",
        }
    }

    /// The message shown to clients.
    ///
    /// Storage and internal errors can carry SQL, keys or paths; clients get a
    /// generic sentence and the details stay in the server's logs.
    pub fn public_message(&self) -> String {
        match self {
            Self::Storage(_) => "a storage operation failed".to_owned(),
            Self::Internal(_) => "an internal error occurred".to_owned(),
            other => other.to_string(),
        }
    }
}

/// The error for a failed SQLite statement with `message`: a write that
/// waited out the busy timeout behind another writer is
/// [`Error::Unavailable`] (503, retry shortly), anything else
/// [`Error::Storage`].
pub fn sql_failure(message: String) -> Error {
    let lower = message.to_ascii_lowercase();
    if lower.contains("database is locked") || lower.contains("database is busy") {
        Error::Unavailable(format!(
            "the database is busy with other writes; retry in a moment ({message})"
        ))
    } else {
        Error::Storage(message)
    }
}

/// The HTTP status for an error. The only place statuses are decided.
pub fn status_for(error: &Error) -> u16 {
    match error {
        Error::BadRequest { .. } => 400,
        Error::Unauthorized(_) => 401,
        Error::Forbidden(_) => 403,
        Error::NotFound(_) => 404,
        Error::MethodNotAllowed { .. } => 405,
        Error::Conflict(_) => 409,
        Error::PayloadTooLarge(_) => 413,
        Error::UnsupportedMediaType(_) => 415,
        Error::Validation { .. } => 422,
        Error::RateLimited { .. } => 429,
        Error::Storage(_) | Error::Internal(_) => 500,
        Error::NotImplemented(_) => 501,
        Error::Upstream(_) => 502,
        Error::Unavailable(_) => 503,
        Error::Timeout(_) => 504,
    }
}

/// The JSON body of every error response: `{"error":{"code":"...","message":"..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The single top-level field.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable snake_case machine code.
    pub code: String,
    /// Human-readable message; never contains secrets.
    pub message: String,
}

impl ErrorBody {
    /// A body with an explicit code, for failures that are not an [`Error`]
    /// (e.g. readiness' `not_ready`).
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

impl From<&Error> for ErrorBody {
    fn from(error: &Error) -> Self {
        Self::new(error.code(), error.public_message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_variants() -> Vec<(Error, u16, &'static str)> {
        vec![
            (Error::bad_request("not json"), 400, "bad_request"),
            (
                Error::validation("top_k", "must be ≤ 50"),
                422,
                "validation_failed",
            ),
            (Error::NotFound("no such index".into()), 404, "not_found"),
            (
                Error::MethodNotAllowed {
                    method: "POST".into(),
                    allow: vec!["GET".into()],
                },
                405,
                "method_not_allowed",
            ),
            (Error::Conflict("exists".into()), 409, "conflict"),
            (Error::Unauthorized("no token".into()), 401, "unauthorized"),
            (Error::Forbidden("admin only".into()), 403, "forbidden"),
            (
                Error::PayloadTooLarge("too big".into()),
                413,
                "payload_too_large",
            ),
            (
                Error::UnsupportedMediaType("text/csv".into()),
                415,
                "unsupported_media_type",
            ),
            (Error::RateLimited { retry_after_s: 7 }, 429, "rate_limited"),
            (
                Error::NotImplemented("later".into()),
                501,
                "not_implemented",
            ),
            (Error::Unavailable("not ready".into()), 503, "unavailable"),
            (
                Error::Upstream("500 from azure".into()),
                502,
                "upstream_error",
            ),
            (Error::Timeout("chat".into()), 504, "upstream_timeout"),
            (Error::Storage("disk full".into()), 500, "storage_error"),
            (Error::Internal("bug".into()), 500, "internal_error"),
        ]
    }

    #[test]
    fn maps_every_variant_to_its_documented_status() {
        for (error, status, _) in all_variants() {
            assert_eq!(status_for(&error), status, "{error:?}");
        }
    }

    #[test]
    fn gives_every_variant_its_documented_code() {
        for (error, _, code) in all_variants() {
            assert_eq!(error.code(), code, "{error:?}");
        }
    }

    #[test]
    fn codes_are_unique_snake_case() {
        let mut codes: Vec<_> = all_variants().iter().map(|(e, _, _)| e.code()).collect();
        for code in &codes {
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code}"
            );
        }
        codes.sort_unstable();
        let before = codes.len();
        codes.dedup();
        assert_eq!(codes.len(), before);
    }

    #[test]
    fn serializes_error_body_in_the_exact_contract_shape() {
        let body = ErrorBody::from(&Error::NotFound("no route for GET /x".into()));
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":{"code":"not_found","message":"no route for GET /x"}}"#
        );
    }

    #[test]
    fn names_the_field_in_bad_request_messages() {
        let error = Error::bad_field("question", "must not be empty");
        assert_eq!(error.to_string(), "question: must not be empty");
        assert_eq!(Error::bad_request("not json").to_string(), "not json");
    }

    #[test]
    fn hides_storage_and_internal_details_from_clients() {
        let body = ErrorBody::from(&Error::Storage("SELECT * FROM secret_table".into()));
        assert_eq!(body.error.code, "storage_error");
        assert!(!body.error.message.contains("secret_table"));
        let body = ErrorBody::from(&Error::Internal("/home/x/.ssh".into()));
        assert!(!body.error.message.contains(".ssh"));
    }

    #[test]
    fn a_locked_database_is_a_retryable_503_and_other_sql_failures_a_500() {
        let busy = sql_failure("sqlite: io: database is locked".into());
        assert_eq!(status_for(&busy), 503);
        let response = crate::HttpResponse::error(&busy);
        assert_eq!(response.header("retry-after"), Some("1"));
        let other = sql_failure("no such table: x".into());
        assert_eq!(status_for(&other), 500);
    }
}
