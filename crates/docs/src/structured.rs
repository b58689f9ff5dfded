//! Structured formats: CSV rows and JSON records become atomic sections.
//!
//! A record's text is `field: value` lines of the mapped text fields (so the
//! field names help retrieval: `review_text: battery lasts two days`); its
//! metadata holds the mapped metadata fields, typed, plus `record_id` (from
//! [`FieldMapping::id_field`]) and where it came from: `row` (CSV, 1-based
//! data row), `record` (JSON, 1-based) or `line` (JSON Lines).

use crate::builder::{Builder, no_text};
use crate::text::decode;
use crate::{FieldMapping, Metadata, ParsedDocument};
use ragspin_core::{Error, Result};
use serde_json::Value;

/// Parses CSV with a header row; the delimiter (`,`, `;` or tab) is detected from the header.
pub(crate) fn parse_csv(bytes: &[u8], mapping: &FieldMapping) -> Result<ParsedDocument> {
    let text = decode(bytes)?;
    let first_line = text.lines().next().unwrap_or_default();
    let delimiter = [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|d| (first_line.bytes().filter(|b| b == d).count(), *d == b','))
        .unwrap_or(b',');
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(csv_error)?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    if headers.iter().all(String::is_empty) {
        return Err(Error::bad_field(
            "content",
            "CSV has no header row; the first line must name the columns",
        ));
    }
    let column = |name: &str| headers.iter().position(|h| h == name);
    let check = |field: &str, names: &mut dyn Iterator<Item = &String>| -> Result<Vec<usize>> {
        names
            .map(|name| {
                column(name).ok_or_else(|| {
                    Error::validation(
                        field,
                        format!(
                            "column {name:?} is not in the CSV header (columns: {})",
                            headers.join(", ")
                        ),
                    )
                })
            })
            .collect()
    };
    let text_columns = check("text_fields", &mut mapping.text_fields.iter())?;
    let metadata_columns = check("metadata_fields", &mut mapping.metadata_fields.iter())?;
    let id_column = check("id_field", &mut mapping.id_field.iter())?.pop();

    let mut doc = Builder::default();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(csv_error)?;
        let value = |i: usize| record.get(i).unwrap_or_default().trim();
        let mut text = String::new();
        let mut line = |name: &str, value: &str| {
            if !value.is_empty() {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(name);
                text.push_str(": ");
                text.push_str(value);
            }
        };
        if text_columns.is_empty() {
            for (i, name) in headers.iter().enumerate() {
                let v = value(i);
                if matches!(typed(v), Some(Value::String(_))) {
                    line(name, v);
                }
            }
        } else {
            for &i in &text_columns {
                line(&headers[i], value(i));
            }
        }
        let mut metadata = Metadata::new();
        for &i in &metadata_columns {
            if let Some(v) = typed(value(i)) {
                metadata.insert(headers[i].clone(), v);
            }
        }
        if let Some(i) = id_column
            && !value(i).is_empty()
        {
            metadata.insert("record_id".into(), Value::String(value(i).to_owned()));
        }
        metadata
            .entry("row")
            .or_insert_with(|| Value::from(index + 1));
        doc.section(&text, &[], None, metadata, true);
    }
    doc.finish_or(no_text(" (no row has a value in the text fields)"))
}

fn csv_error(error: csv::Error) -> Error {
    let line = error.position().map(|p| p.line());
    let message = match (error.kind(), line) {
        (
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            },
            Some(line),
        ) => format!("CSV line {line} has {len} fields but the header has {expected_len}"),
        (csv::ErrorKind::Utf8 { .. }, Some(line)) => {
            format!("CSV line {line} is not valid UTF-8")
        }
        (_, Some(line)) => format!("CSV line {line}: {error}"),
        (_, None) => format!("malformed CSV: {error}"),
    };
    Error::bad_field("content", message)
}

/// Parses a JSON array of records (objects, or strings used as text) or one object.
pub(crate) fn parse_json(bytes: &[u8], mapping: &FieldMapping) -> Result<ParsedDocument> {
    let text = decode(bytes)?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::bad_field("content", format!("invalid JSON: {e}")))?;
    let records = match value {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        other => {
            return Err(Error::bad_field(
                "content",
                format!(
                    "expected a JSON array of objects or one object, got {}",
                    kind(&other)
                ),
            ));
        }
    };
    let mut records_out = Records::new(mapping);
    for (i, record) in records.iter().enumerate() {
        records_out.push(record, ("record", i + 1), &|| format!("record {}", i + 1))?;
    }
    records_out.finish()
}

/// Parses JSON Lines: one record per non-blank line.
pub(crate) fn parse_jsonl(bytes: &[u8], mapping: &FieldMapping) -> Result<ParsedDocument> {
    let text = decode(bytes)?;
    let mut records = Records::new(mapping);
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let number = i + 1;
        let record: Value = serde_json::from_str(line).map_err(|e| {
            let message = e.to_string();
            let message = message
                .rfind(" at line ")
                .map_or(message.as_str(), |at| &message[..at]);
            Error::bad_field(
                "content",
                format!("JSON Lines line {number}, column {}: {message}", e.column()),
            )
        })?;
        records.push(&record, ("line", number), &|| format!("line {number}"))?;
    }
    records.finish()
}

/// Turns JSON records into sections and checks that every mapped field was seen.
struct Records<'a> {
    mapping: &'a FieldMapping,
    doc: Builder,
    seen: Vec<bool>,
    count: usize,
}

impl<'a> Records<'a> {
    fn new(mapping: &'a FieldMapping) -> Self {
        let fields = mapping.text_fields.len()
            + mapping.metadata_fields.len()
            + usize::from(mapping.id_field.is_some());
        Self {
            mapping,
            doc: Builder::default(),
            seen: vec![false; fields],
            count: 0,
        }
    }

    fn push(
        &mut self,
        record: &Value,
        origin: (&str, usize),
        name: &dyn Fn() -> String,
    ) -> Result<()> {
        self.count += 1;
        let record = match record {
            Value::Object(_) => record,
            Value::String(text) => {
                let mut metadata = Metadata::new();
                metadata.insert(origin.0.into(), Value::from(origin.1));
                self.doc.section(text, &[], None, metadata, true);
                return Ok(());
            }
            other => {
                return Err(Error::bad_field(
                    "content",
                    format!("{} is {}, expected an object", name(), kind(other)),
                ));
            }
        };
        let mapping = self.mapping;
        let mut seen = self.seen.iter_mut();
        let mut text = String::new();
        let mut line = |path: &str, value: &str| {
            if !value.is_empty() {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(path);
                text.push_str(": ");
                text.push_str(value);
            }
        };
        if mapping.text_fields.is_empty() {
            let mut strings = Vec::new();
            string_leaves(record, "", &mut strings, 0);
            for (path, value) in strings {
                line(&path, &value);
            }
        } else {
            for path in &mapping.text_fields {
                let value = lookup(record, path);
                mark(&mut seen, value.is_some());
                if let Some(value) = value {
                    line(path, &render(value));
                }
            }
        }
        let mut metadata = Metadata::new();
        for path in &mapping.metadata_fields {
            let value = lookup(record, path);
            mark(&mut seen, value.is_some());
            let typed = match value {
                Some(Value::String(s)) => typed(s),
                Some(Value::Null) | None => None,
                Some(other) => Some(other.clone()),
            };
            if let Some(typed) = typed {
                metadata.insert(path.clone(), typed);
            }
        }
        if let Some(path) = &mapping.id_field {
            let value = lookup(record, path);
            mark(&mut seen, value.is_some());
            match value {
                Some(id @ (Value::String(_) | Value::Number(_))) => {
                    metadata.insert("record_id".into(), id.clone());
                }
                Some(Value::Null) | None => {}
                Some(other) => {
                    metadata.insert("record_id".into(), Value::String(other.to_string()));
                }
            }
        }
        metadata
            .entry(origin.0)
            .or_insert_with(|| Value::from(origin.1));
        self.doc.section(&text, &[], None, metadata, true);
        Ok(())
    }

    fn finish(self) -> Result<ParsedDocument> {
        if self.count > 0 {
            let mapping = self.mapping;
            let fields = mapping
                .text_fields
                .iter()
                .map(|f| ("text_fields", f))
                .chain(
                    mapping
                        .metadata_fields
                        .iter()
                        .map(|f| ("metadata_fields", f)),
                )
                .chain(mapping.id_field.iter().map(|f| ("id_field", f)));
            for ((setting, path), seen) in fields.zip(&self.seen) {
                if !seen {
                    return Err(Error::validation(
                        setting,
                        format!("field {path:?} is in none of the {} records", self.count),
                    ));
                }
            }
        }
        self.doc
            .finish_or(no_text(" (no record has a value in the text fields)"))
    }
}

fn mark<'a>(seen: &mut impl Iterator<Item = &'a mut bool>, found: bool) {
    if let Some(seen) = seen.next() {
        *seen |= found;
    }
}

/// Finds `path` in `value`: an exact key first, then a dot path
/// (`specs.battery`, `tags.0`).
fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    if let Some(found) = value.get(path) {
        return Some(found);
    }
    let mut current = value;
    for segment in path.split('.') {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// A field's value as text: strings as they are, arrays joined with `, `.
fn render(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.trim().to_owned(),
        Value::Array(items) => items
            .iter()
            .map(render)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// Every string in `value` with its dot path; arrays of strings joined.
fn string_leaves(value: &Value, path: &str, out: &mut Vec<(String, String)>, depth: usize) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::String(s) => out.push((path.to_owned(), s.trim().to_owned())),
        Value::Object(map) if depth < 32 => {
            for (key, value) in map {
                string_leaves(value, &join(key), out, depth + 1);
            }
        }
        Value::Array(items) if items.iter().all(|v| matches!(v, Value::String(_))) => {
            out.push((path.to_owned(), render(value)));
        }
        Value::Array(items) if depth < 32 => {
            for (i, item) in items.iter().enumerate() {
                string_leaves(item, &join(&i.to_string()), out, depth + 1);
            }
        }
        _ => {}
    }
}

/// A metadata value typed from text: integers and decimals as numbers,
/// `true`/`false` as booleans, else the string; `None` when empty.
///
/// Integers with a leading zero (`02139`, a ZIP code) stay strings.
pub(crate) fn typed(value: &str) -> Option<Value> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    let numeric = digits.starts_with(|c: char| c.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    let leading_zero = digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0.");
    if numeric && !leading_zero {
        if let Ok(int) = value.parse::<i64>() {
            return Some(Value::from(int));
        }
        if let Some(number) = value
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            return Some(Value::Number(number));
        }
    }
    if value.eq_ignore_ascii_case("true") {
        return Some(Value::Bool(true));
    }
    if value.eq_ignore_ascii_case("false") {
        return Some(Value::Bool(false));
    }
    Some(Value::String(value.to_owned()))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping(text: &[&str], meta: &[&str], id: Option<&str>) -> FieldMapping {
        FieldMapping {
            text_fields: text.iter().map(|s| s.to_string()).collect(),
            metadata_fields: meta.iter().map(|s| s.to_string()).collect(),
            id_field: id.map(str::to_owned),
        }
    }

    #[test]
    fn types_metadata_values_from_text() {
        assert_eq!(typed("4"), Some(json!(4)));
        assert_eq!(typed(" -12.50 "), Some(json!(-12.5)));
        assert_eq!(typed("1e3"), Some(json!(1000.0)));
        assert_eq!(typed("TRUE"), Some(json!(true)));
        assert_eq!(typed("02139"), Some(json!("02139")));
        assert_eq!(typed("0.5"), Some(json!(0.5)));
        assert_eq!(typed("NaN"), Some(json!("NaN")));
        assert_eq!(typed("inf"), Some(json!("inf")));
        assert_eq!(typed("12 GB"), Some(json!("12 GB")));
        assert_eq!(typed("  "), None);
    }

    #[test]
    fn makes_one_atomic_section_per_csv_row_with_typed_metadata() {
        let csv = "name,rating,price,note\nAurora,4,199.99,\"Great, really\"\nPulse,5,49,\n";
        let doc = parse_csv(
            csv.as_bytes(),
            &mapping(&["name", "note"], &["rating", "price"], Some("name")),
        )
        .unwrap();
        assert_eq!(doc.sections.len(), 2);
        let first = &doc.sections[0];
        assert!(first.atomic);
        assert_eq!(first.text, "name: Aurora\nnote: Great, really");
        assert_eq!(
            Value::Object(first.metadata.clone()),
            json!({"rating": 4, "price": 199.99, "record_id": "Aurora", "row": 1})
        );
        assert_eq!(doc.sections[1].text, "name: Pulse");
    }

    #[test]
    fn uses_all_string_columns_when_no_text_fields_are_mapped() {
        let doc = parse_csv(b"a;b;c\nx;2;y z\n", &FieldMapping::default()).unwrap();
        assert_eq!(doc.sections[0].text, "a: x\nc: y z");
    }

    #[test]
    fn rejects_csv_rows_with_the_wrong_number_of_fields_naming_the_line() {
        let err = parse_csv(b"a,b\n1,2\n3\n", &FieldMapping::default()).unwrap_err();
        assert_eq!(ragspin_core::status_for(&err), 400);
        assert_eq!(
            err.to_string(),
            "content: CSV line 3 has 1 fields but the header has 2"
        );
    }

    #[test]
    fn rejects_mapped_columns_missing_from_the_header() {
        let err = parse_csv(b"a,b\n1,2\n", &mapping(&["review"], &[], None)).unwrap_err();
        assert_eq!(ragspin_core::status_for(&err), 422);
        assert!(
            err.to_string()
                .starts_with("text_fields: column \"review\""),
            "{err}"
        );
    }

    #[test]
    fn reads_json_records_with_dot_paths() {
        let json = br#"[{"id": 7, "title": "Nimbus", "specs": {"battery": "10 h", "price": "999.00"}, "tags": ["laptop", "ultrabook"]},
                       {"id": 8, "title": "Aurora", "specs": {"battery": null}}]"#;
        let doc = parse_json(
            json,
            &mapping(
                &["title", "specs.battery", "tags"],
                &["specs.price"],
                Some("id"),
            ),
        )
        .unwrap();
        assert_eq!(
            doc.sections[0].text,
            "title: Nimbus\nspecs.battery: 10 h\ntags: laptop, ultrabook"
        );
        assert_eq!(
            Value::Object(doc.sections[0].metadata.clone()),
            json!({"specs.price": 999.0, "record_id": 7, "record": 1})
        );
        assert_eq!(doc.sections[1].text, "title: Aurora");
    }

    #[test]
    fn uses_all_string_leaves_of_a_single_object_when_unmapped() {
        let doc = parse_json(
            br#"{"a": "x", "n": 1, "o": {"b": "y", "l": ["p", "q"]}}"#,
            &FieldMapping::default(),
        )
        .unwrap();
        assert_eq!(doc.sections[0].text, "a: x\no.b: y\no.l: p, q");
    }

    #[test]
    fn rejects_json_that_is_not_records() {
        let err = parse_json(b"[1, 2]", &FieldMapping::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "content: record 1 is a number, expected an object"
        );
        let err = parse_json(b"{\"a\": ", &FieldMapping::default()).unwrap_err();
        assert!(
            err.to_string().starts_with("content: invalid JSON: "),
            "{err}"
        );
        let err = parse_json(b"[]", &FieldMapping::default()).unwrap_err();
        assert_eq!(ragspin_core::status_for(&err), 422);
    }

    #[test]
    fn rejects_mapped_json_fields_that_no_record_has() {
        let err = parse_json(br#"[{"a": "x"}]"#, &mapping(&["a"], &["price"], None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "metadata_fields: field \"price\" is in none of the 1 records"
        );
    }

    #[test]
    fn reads_json_lines_and_names_the_bad_line() {
        let jsonl = b"{\"t\": \"one\"}\n\n{\"t\": \"two\"}\n";
        let doc = parse_jsonl(jsonl, &mapping(&["t"], &[], None)).unwrap();
        assert_eq!(doc.sections.len(), 2);
        assert_eq!(doc.sections[1].metadata["line"], json!(3));
        let err =
            parse_jsonl(b"{\"t\": \"one\"}\n{\"t\": }\n", &FieldMapping::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "content: JSON Lines line 2, column 7: expected value"
        );
    }
}
