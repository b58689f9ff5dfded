//! Which parser a document needs, from its content type and file name.

use ragspin_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// The content types [`Format::detect`] accepts, canonical spelling first.
///
/// Listed in the message of the `415 unsupported_media_type` error.
pub const SUPPORTED_TYPES: &[&str] = &[
    "text/plain",
    "text/markdown",
    "text/html",
    "application/pdf",
    "text/csv",
    "application/json",
    "application/x-ndjson",
];

/// A document format ragspin can parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Plain text; paragraphs are separated by blank lines.
    Text,
    /// CommonMark with GitHub tables; headings structure the document.
    Markdown,
    /// An HTML page; its main content and headings are kept.
    Html,
    /// A PDF with a text layer; one section per page.
    Pdf,
    /// Comma-, semicolon- or tab-separated values with a header row; one record per row.
    Csv,
    /// A JSON array of objects (or one object); one record per object.
    Json,
    /// JSON Lines: one JSON value per line; one record per line.
    Jsonl,
}

impl Format {
    /// All formats, in [`SUPPORTED_TYPES`] order.
    pub const ALL: [Format; 7] = [
        Format::Text,
        Format::Markdown,
        Format::Html,
        Format::Pdf,
        Format::Csv,
        Format::Json,
        Format::Jsonl,
    ];

    /// Detects the format from a content type (parameters such as `charset` are
    /// ignored) and/or the file name's extension.
    ///
    /// A specific, known content type wins, except `text/plain`, which browsers
    /// and `curl` send for many text files: then a known extension (`.md`,
    /// `.csv`, `.json`, ...) decides. A missing, generic
    /// (`application/octet-stream`) or unknown content type (e.g. Excel's
    /// `application/vnd.ms-excel` for `.csv`) falls back to the extension.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedMediaType`] naming the supported types when neither
    /// the content type nor the extension is known.
    pub fn detect(content_type: Option<&str>, filename: &str) -> Result<Format> {
        let essence = content_type
            .map(|ct| {
                ct.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|ct| !ct.is_empty());
        let by_type = essence.as_deref().and_then(Self::from_content_type);
        let by_ext = Self::from_filename(filename);
        match (by_type, by_ext) {
            (Some(Format::Text), Some(ext)) => Ok(ext),
            (Some(format), _) => Ok(format),
            (None, Some(ext)) => Ok(ext),
            (None, None) => {
                let what = match (&essence, filename.trim()) {
                    (Some(ct), "") => format!("content type {ct}"),
                    (Some(ct), name) => format!("content type {ct} (file {name:?})"),
                    (None, "") => "a document without content type or file name".to_owned(),
                    (None, name) => format!("file {name:?}"),
                };
                Err(Error::UnsupportedMediaType(format!(
                    "cannot ingest {what}; supported types: {} (or extensions .txt, .md, .html, .pdf, .csv, .json, .jsonl)",
                    SUPPORTED_TYPES.join(", ")
                )))
            }
        }
    }

    /// The canonical content type of this format.
    pub fn content_type(&self) -> &'static str {
        match self {
            Format::Text => "text/plain",
            Format::Markdown => "text/markdown",
            Format::Html => "text/html",
            Format::Pdf => "application/pdf",
            Format::Csv => "text/csv",
            Format::Json => "application/json",
            Format::Jsonl => "application/x-ndjson",
        }
    }

    /// Whether records of this format become atomic sections (CSV rows, JSON records).
    pub fn is_structured(&self) -> bool {
        matches!(self, Format::Csv | Format::Json | Format::Jsonl)
    }

    fn from_content_type(essence: &str) -> Option<Format> {
        Some(match essence {
            "text/plain" => Format::Text,
            "text/markdown" | "text/x-markdown" => Format::Markdown,
            "text/html" | "application/xhtml+xml" => Format::Html,
            "application/pdf" | "application/x-pdf" => Format::Pdf,
            "text/csv" | "application/csv" | "text/tab-separated-values" => Format::Csv,
            "application/json" | "text/json" => Format::Json,
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/jsonlines" => Format::Jsonl,
            _ => return None,
        })
    }

    fn from_filename(filename: &str) -> Option<Format> {
        let (_, ext) = filename.trim().rsplit_once('.')?;
        Some(match ext.to_ascii_lowercase().as_str() {
            "txt" | "text" => Format::Text,
            "md" | "markdown" | "mdown" | "mkd" => Format::Markdown,
            "html" | "htm" | "xhtml" => Format::Html,
            "pdf" => Format::Pdf,
            "csv" | "tsv" => Format::Csv,
            "json" => Format::Json,
            "jsonl" | "ndjson" => Format::Jsonl,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_supported_type_and_ignores_parameters() {
        for format in Format::ALL {
            let ct = format!("{}; charset=UTF-8", format.content_type().to_uppercase());
            assert_eq!(Format::detect(Some(&ct), "").unwrap(), format);
        }
        assert_eq!(
            SUPPORTED_TYPES,
            Format::ALL.map(|f| f.content_type()).as_slice()
        );
    }

    #[test]
    fn falls_back_to_the_extension_for_missing_generic_or_unknown_types() {
        assert_eq!(Format::detect(None, "notes.MD").unwrap(), Format::Markdown);
        assert_eq!(
            Format::detect(Some("application/octet-stream"), "a.pdf").unwrap(),
            Format::Pdf
        );
        assert_eq!(
            Format::detect(Some("application/vnd.ms-excel"), "r.csv").unwrap(),
            Format::Csv
        );
        assert_eq!(Format::detect(Some(""), "x.jsonl").unwrap(), Format::Jsonl);
    }

    #[test]
    fn lets_a_known_extension_refine_text_plain() {
        assert_eq!(
            Format::detect(Some("text/plain"), "guide.md").unwrap(),
            Format::Markdown
        );
        assert_eq!(
            Format::detect(Some("text/plain"), "notes").unwrap(),
            Format::Text
        );
        assert_eq!(
            Format::detect(Some("text/html"), "page.txt").unwrap(),
            Format::Html
        );
    }

    #[test]
    fn rejects_unknown_types_with_415_listing_the_supported_ones() {
        let err = Format::detect(Some("image/png"), "cat.png").unwrap_err();
        assert_eq!(ragspin_core::status_for(&err), 415);
        let message = err.to_string();
        for ct in SUPPORTED_TYPES {
            assert!(message.contains(ct), "{message}");
        }
        assert!(message.contains("image/png"), "{message}");
        assert!(Format::detect(None, "").is_err());
        assert!(Format::detect(None, "README").is_err());
    }
}
