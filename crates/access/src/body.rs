//! Reading small JSON request bodies field by field.
//!
//! serde's messages quote the offending value ("invalid type: string
//! \"hunter2\""), which could echo a password back; these helpers name the
//! field and the expected type, never the value.

use ragspin_core::{Error, HttpRequest, Result};
use serde_json::{Map, Value};

/// Largest body the auth routes read.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A JSON object body.
#[derive(Debug, Clone, Default)]
pub struct JsonBody(Map<String, Value>);

/// Parse `request`'s body as a JSON object (empty body = `{}`).
///
/// 413 above [`MAX_BODY_BYTES`]; 415 for a non-JSON `content-type`; 400 for
/// anything that is not a JSON object.
pub fn parse(request: &HttpRequest) -> Result<JsonBody> {
    if request.body.len() > MAX_BODY_BYTES {
        return Err(Error::PayloadTooLarge(format!(
            "request body exceeds {MAX_BODY_BYTES} bytes"
        )));
    }
    if let Some(content_type) = request.header("content-type") {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(Error::UnsupportedMediaType(
                "content-type must be application/json".into(),
            ));
        }
    }
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(JsonBody::default());
    }
    match serde_json::from_slice::<Value>(&request.body) {
        Ok(Value::Object(map)) => Ok(JsonBody(map)),
        Ok(_) => Err(Error::bad_request("request body must be a JSON object")),
        Err(_) => Err(Error::bad_request("request body is not valid JSON")),
    }
}

impl JsonBody {
    /// From a JSON object (tests).
    pub fn from_value(value: Value) -> Self {
        match value {
            Value::Object(map) => Self(map),
            _ => Self::default(),
        }
    }

    /// 400 if the body has a field not in `allowed`.
    pub fn only(&self, allowed: &[&str]) -> Result<()> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(field) => {
                let shown: String = field.chars().take(40).collect();
                Err(Error::bad_field(
                    shown,
                    format!("unknown field; expected one of: {}", allowed.join(", ")),
                ))
            }
            None => Ok(()),
        }
    }

    /// An optional string field (`null` = absent).
    pub fn string(&self, name: &str) -> Result<Option<&str>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Error::bad_field(name, "must be a string")),
        }
    }

    /// A required string field.
    pub fn required_string(&self, name: &str) -> Result<&str> {
        self.string(name)?
            .ok_or_else(|| Error::bad_field(name, "is required"))
    }

    /// An optional boolean field.
    pub fn bool(&self, name: &str) -> Result<Option<bool>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Error::bad_field(name, "must be true or false")),
        }
    }

    /// An optional array of strings (at most `max` entries).
    pub fn strings(&self, name: &str, max: usize) -> Result<Option<Vec<String>>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => {
                if items.len() > max {
                    return Err(Error::bad_field(name, format!("at most {max} entries")));
                }
                items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        _ => Err(Error::bad_field(name, "must be an array of strings")),
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(Some)
            }
            Some(_) => Err(Error::bad_field(name, "must be an array of strings")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str) -> HttpRequest {
        HttpRequest::new("POST", "/auth/token")
            .with_header("content-type", "application/json; charset=utf-8")
            .with_body(body)
    }

    fn status(e: &Error) -> u16 {
        ragspin_core::status_for(e)
    }

    #[test]
    fn parses_objects_and_treats_an_empty_body_as_empty_object() {
        let body = parse(&request(r#"{"username":"a"}"#)).unwrap();
        assert_eq!(body.string("username").unwrap(), Some("a"));
        assert!(
            parse(&request("  "))
                .unwrap()
                .string("x")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn rejects_non_objects_bad_json_wrong_type_and_huge_bodies() {
        assert_eq!(status(&parse(&request("[1]")).unwrap_err()), 400);
        assert_eq!(status(&parse(&request("{\"a\":")).unwrap_err()), 400);
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES));
        assert_eq!(status(&parse(&request(&big)).unwrap_err()), 413);
        let form = HttpRequest::new("POST", "/")
            .with_header("content-type", "application/x-www-form-urlencoded")
            .with_body("a=b");
        assert_eq!(status(&parse(&form).unwrap_err()), 415);
    }

    #[test]
    fn names_the_field_but_never_echoes_its_value() {
        let body =
            JsonBody::from_value(serde_json::json!({"password": 12345678, "role": "hunter2"}));
        let e = body.required_string("password").unwrap_err();
        assert_eq!(e.to_string(), "password: must be a string");
        let e = body.bool("role").unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        assert!(body.required_string("username").is_err());
    }

    #[test]
    fn refuses_unknown_fields() {
        let body = JsonBody::from_value(serde_json::json!({"username": "a", "is_admin": true}));
        let e = body.only(&["username", "password"]).unwrap_err();
        assert_eq!(status(&e), 400);
        assert!(e.to_string().starts_with("is_admin:"));
    }

    #[test]
    fn reads_string_arrays_with_a_bound() {
        let body = JsonBody::from_value(serde_json::json!({"indexes": ["a", "b"], "bad": [1]}));
        assert_eq!(
            body.strings("indexes", 5).unwrap(),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert!(body.strings("indexes", 1).is_err());
        assert!(body.strings("bad", 5).is_err());
    }
}
